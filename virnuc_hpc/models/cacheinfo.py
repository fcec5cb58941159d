"""Where the model cache is and how its entries are identified, readable without torch (the
run report and `status` use it; `models.cache` builds on it). An entry is a directory per
model holding its files and a MANIFEST written last."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..core.fsio import sha256_bytes

MANIFEST = "MANIFEST.json"


def default_root() -> Path:
    return Path(os.environ.get("VIRNUC_HPC_CACHE") or Path.home() / ".cache" / "virnuc_hpc")


def read_manifest(entry_dir: Path) -> dict | None:
    """An entry's MANIFEST, or None when the entry is absent or unreadable."""
    try:
        return json.loads((Path(entry_dir) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def manifest_fingerprint(files: dict) -> str:
    """The fingerprint of an entry from its MANIFEST's `files` (name -> {sha256, size})."""
    return listing_fingerprint(sorted((name, rec["sha256"]) for name, rec in files.items()))


def listing_fingerprint(listing: list[tuple[str, str]]) -> str:
    """A short id of exactly which bytes a model is: from (file name, sha256) pairs."""
    return sha256_bytes(json.dumps(listing).encode())[:16]

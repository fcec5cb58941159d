"""Test helpers: golden paths, a CLI runner, a FASTA record reader."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The original tool's outputs, vendored in tests/golden (VIRNUC_SHARED=DIR: DIR/golden instead)
SHARED = Path(os.environ["VIRNUC_SHARED"]) if "VIRNUC_SHARED" in os.environ else None
GOLDEN = SHARED / "golden" if SHARED is not None else REPO / "tests" / "golden"


def run_cli(*args, env=None, cwd=None) -> subprocess.CompletedProcess:
    """Run `virnuc-hpc` as a user would, in a fresh interpreter."""
    return subprocess.run([sys.executable, "-m", "virnuc_hpc", *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=cwd)


def read_fasta(path) -> list[tuple[str, str]]:
    """(header, sequence) pairs, for comparing records rather than bytes."""
    records, header, parts = [], None, []
    for line in Path(path).read_text().splitlines():
        if line.startswith(">"):
            if header is not None:
                records.append((header, "".join(parts)))
            header, parts = line[1:], []
        else:
            parts.append(line)
    if header is not None:
        records.append((header, "".join(parts)))
    return records

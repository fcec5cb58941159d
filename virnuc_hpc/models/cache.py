"""The model cache: one directory per model, files published whole and checksummed, a MANIFEST
written last. Readers only ever hash and read (a read-only cache works). A lock makes N tasks
arriving together fetch once, but correctness never depends on it: every file is renamed into
place whole and every entry is verified by checksum before it is used."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from .. import fsio
from ..errors import IntegrityError, UserError
from . import tiny
from .registry import ModelSpec

log = logging.getLogger(__name__)

MANIFEST = "MANIFEST.json"
LOCK_NAME = ".prewarm.lock"
LOCK_TIMEOUT_S = 6 * 3600  # a 3B checkpoint over a slow link
FORMAT = 1


class MissingModelError(UserError):
    """The cache has no published entry for this model."""


def default_root() -> Path:
    return Path(os.environ.get("VIRNUC_HPC_CACHE") or Path.home() / ".cache" / "virnuc_hpc")


@dataclass(frozen=True)
class EntryStatus:
    name: str
    path: Path
    state: str  # 'verified' | 'missing' | 'corrupt'
    size: int
    detail: str = ""


def _fetch_hint(spec: ModelSpec) -> str:
    return f"`virnuc-hpc models fetch --model {spec.name}`"


def _repair_hint(spec: ModelSpec) -> str:
    return f"`virnuc-hpc models fetch --repair --model {spec.name}`"


def publish_file(tmp: Path, final: Path, expect_sha256: str | None = None) -> dict:
    """Publish `tmp` (a temp file beside `final`) as `final` once its sha256 is the expected
    one (fsio.publish: fsync, check, rename, directory fsync). Returns {sha256, size}."""
    record = {}

    def check(path: Path) -> None:
        record["sha256"] = fsio.sha256_file(path)
        if expect_sha256 is not None and record["sha256"] != expect_sha256:
            raise IntegrityError(f"{final}: downloaded sha256 {record['sha256']} != expected "
                                 f"{expect_sha256}; fix: retry `virnuc-hpc models fetch --repair`")

    fsio.publish(tmp, final, check)
    return {**record, "size": final.stat().st_size}


def publish_bytes(final: Path, data: bytes) -> dict:
    tmp = fsio.temp_beside(final)
    try:
        tmp.write_bytes(data)
        return publish_file(tmp, final, fsio.sha256_bytes(data))
    finally:
        tmp.unlink(missing_ok=True)


class ModelCache:
    def __init__(self, root=None):
        self.root = Path(root if root is not None else default_root()).expanduser()

    def entry_dir(self, spec: ModelSpec) -> Path:
        return spec.local_path if spec.source == "path" else self.root / spec.name

    def load_path(self, spec: ModelSpec) -> Path:
        return spec.local_path if spec.source == "path" else spec.load_path(self.entry_dir(spec))

    def manifest(self, spec: ModelSpec) -> dict | None:
        path = self.entry_dir(spec) / MANIFEST
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise IntegrityError(
                f"{path}: unreadable manifest ({exc}); fix: {_repair_hint(spec)}") from exc

    # ------------------------------------------------------------ verification (read-only)

    def verify(self, spec: ModelSpec) -> Path:
        """Re-hash every file of the entry against its MANIFEST; return the path to load.
        Raises MissingModelError (no entry) or IntegrityError (naming the bad file)."""
        if spec.source == "path":
            if not spec.local_path.exists():
                raise MissingModelError(f"{spec.local_path}: model path does not exist")
            return spec.local_path
        manifest = self.manifest(spec)
        if manifest is None:
            raise MissingModelError(
                f"model {spec.name} is not in the cache {self.root}; fix: run {_fetch_hint(spec)}"
                " (on a machine with internet for real models), or set VIRNUC_HPC_CACHE")
        self._check_listing(spec, manifest)
        for name, record in sorted(manifest["files"].items()):
            self._check_file(spec, self.entry_dir(spec) / name, record)
        return self.load_path(spec)

    def _check_listing(self, spec: ModelSpec, manifest: dict) -> None:
        listed = manifest.get("files", {})
        where = self.entry_dir(spec) / MANIFEST
        for name in listed:
            if Path(name).name != name or name.startswith("."):
                raise IntegrityError(f"{where}: bad file name {name!r}; fix: {_repair_hint(spec)}")
        for wanted in spec.files:
            if not wanted.optional and wanted.name not in listed:
                raise IntegrityError(
                    f"{where}: lacks {wanted.name}; fix: {_repair_hint(spec)}")
            if wanted.sha256 and listed.get(wanted.name, {}).get("sha256") != wanted.sha256:
                raise IntegrityError(
                    f"{where}: {wanted.name} is not the published file; fix: {_repair_hint(spec)}")

    def _check_file(self, spec: ModelSpec, path: Path, record: dict) -> None:
        fix = f"fix: {_repair_hint(spec)}"
        if not path.is_file():
            raise IntegrityError(f"{path}: missing from the cache entry; {fix}")
        size = path.stat().st_size
        if size != record["size"]:
            raise IntegrityError(
                f"{path}: {size} bytes, expected {record['size']} (truncated or replaced); {fix}")
        if fsio.sha256_file(path) != record["sha256"]:
            raise IntegrityError(f"{path}: sha256 mismatch (corrupted); {fix}")

    def status(self, spec: ModelSpec) -> EntryStatus:
        directory = self.entry_dir(spec)
        try:
            self.verify(spec)
            state, detail = "verified", ""
        except MissingModelError:
            state, detail = "missing", ""
        except IntegrityError as exc:
            state, detail = "corrupt", str(exc)
        size = sum(p.stat().st_size for p in directory.glob("*") if p.is_file()) \
            if directory.is_dir() else 0
        return EntryStatus(spec.name, directory, state, size, detail)

    def entries(self) -> list[str]:
        """Names of the published entries (directories with a MANIFEST)."""
        if not self.root.is_dir():
            return []
        return sorted(p.parent.name for p in self.root.glob(f"*/{MANIFEST}"))

    # ------------------------------------------------------------ publishing

    def lock(self) -> FileLock:
        self.root.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.root / LOCK_NAME), timeout=LOCK_TIMEOUT_S)

    def prewarm(self, spec: ModelSpec, download: bool = False) -> Path:
        """Return the verified path of `spec`, generating a tiny entry (or, with download=True,
        downloading a real one) first if the cache lacks it. Never repairs a corrupt entry."""
        try:
            return self.verify(spec)
        except MissingModelError:
            if not (spec.generated or download):
                raise
        with self.lock():
            try:
                return self.verify(spec)  # published by another task while we waited
            except MissingModelError:
                self.produce(spec)
        return self.verify(spec)

    def fetch(self, spec: ModelSpec, repair: bool = False) -> Path:
        """`models fetch`: download (or generate) the entry; with repair, re-produce the files
        that fail verification."""
        if not repair or spec.source == "path":
            return self.prewarm(spec, download=True)
        with self.lock():
            try:
                return self.verify(spec)
            except (MissingModelError, IntegrityError) as exc:
                log.warning("repairing %s: %s", spec.name, exc)
                self.produce(spec, previous=self._readable_manifest(spec))
        return self.verify(spec)

    def _readable_manifest(self, spec: ModelSpec) -> dict | None:
        try:
            return self.manifest(spec)
        except IntegrityError:
            return None

    def produce(self, spec: ModelSpec, previous: dict | None = None) -> None:
        """Write every file of the entry (each renamed in whole), then the MANIFEST."""
        directory = self.entry_dir(spec)
        directory.mkdir(parents=True, exist_ok=True)
        if spec.generated:
            records = self._generate(spec, directory)
            revision = f"tiny-seed-{tiny.SEED}"
        elif spec.source.startswith("hf:"):
            revision = (previous or {}).get("revision") or spec.revision
            records, revision = _download_hub(spec, directory, revision)
        else:
            records, revision = _download_urls(spec, directory), None
        manifest = {
            "format": FORMAT, "name": spec.name, "kind": spec.kind, "dim": spec.dim,
            "source": spec.source, "revision": revision,
            "biologically_meaningful": spec.biologically_meaningful, "files": records,
        }
        fsio.atomic_write(directory / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True))
        log.info("published %s in %s", spec.name, directory)

    def _generate(self, spec: ModelSpec, directory: Path) -> dict:
        files = tiny.files_for(spec.kind, chunk_size=spec.chunk_size or 0)
        return {name: publish_bytes(directory / name, data) for name, data in files.items()}


def _offline_error(spec: ModelSpec, exc: Exception) -> UserError:
    return UserError(
        f"cannot download {spec.name} ({type(exc).__name__}: {exc}); fix: run "
        f"{_fetch_hint(spec)} on a machine with internet (HF_HUB_OFFLINE unset) and share the "
        "cache through VIRNUC_HPC_CACHE")


def _download_hub(spec: ModelSpec, directory: Path, revision: str | None) -> tuple[dict, str]:
    """DNABERT-style files from the Hugging Face hub at one resolved commit."""
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    repo = spec.source.removeprefix("hf:")
    staging = Path(tempfile.mkdtemp(dir=directory, prefix=".hub-"))
    try:
        commit = HfApi().model_info(repo, revision=revision).sha
        records = {}
        for wanted in spec.files:
            try:
                got = hf_hub_download(repo, wanted.name, revision=commit, local_dir=staging)
            except EntryNotFoundError:
                if wanted.optional:
                    continue
                raise
            tmp = fsio.temp_beside(directory / wanted.name)
            shutil.copyfile(got, tmp)
            records[wanted.name] = publish_file(tmp, directory / wanted.name, wanted.sha256)
        return records, commit
    except UserError:
        raise
    except Exception as exc:  # network, offline mode, hub errors: one actionable line
        raise _offline_error(spec, exc) from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _download_urls(spec: ModelSpec, directory: Path) -> dict:
    """Direct downloads (fair-esm checkpoints, VirNucPro classifiers)."""
    from torch.hub import download_url_to_file

    if os.environ.get("HF_HUB_OFFLINE") == "1":
        raise _offline_error(spec, RuntimeError("HF_HUB_OFFLINE=1"))
    records = {}
    for wanted in spec.files:
        tmp = fsio.temp_beside(directory / wanted.name)
        try:
            download_url_to_file(wanted.url, str(tmp), progress=True)
            records[wanted.name] = publish_file(tmp, directory / wanted.name, wanted.sha256)
        except UserError:
            raise
        except Exception as exc:
            raise _offline_error(spec, exc) from exc
        finally:
            tmp.unlink(missing_ok=True)
    return records


def model_fingerprint(spec: ModelSpec, path) -> str:
    """A short id of exactly which bytes a model was loaded from: from the entry MANIFEST's
    checksums when there is one, else by hashing the files at `path`."""
    path = Path(path)
    directory = path if path.is_dir() else path.parent
    manifest_path = directory / MANIFEST
    if spec.source != "path" and manifest_path.is_file():
        files = json.loads(manifest_path.read_text())["files"]
        listing = sorted((name, rec["sha256"]) for name, rec in files.items())
    else:
        targets = sorted(p for p in directory.iterdir() if p.is_file() and not
                         p.name.startswith(".")) if path.is_dir() else [path]
        listing = [(p.name, fsio.sha256_file(p)) for p in targets]
    return fsio.sha256_bytes(json.dumps(listing).encode())[:16]

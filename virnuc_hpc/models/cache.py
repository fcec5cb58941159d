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
import time
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from ..core import fsio
from .cacheinfo import MANIFEST, default_root, listing_fingerprint, manifest_fingerprint
from ..core.errors import ConfigError, IntegrityError, UserError
from .registry import REGISTRY, ModelSpec
from .stamps import Stamps, identity

log = logging.getLogger(__name__)

LOCK_NAME = ".prewarm.lock"
LOCK_TIMEOUT_S = 6 * 3600  # a 3B checkpoint over a slow link
FORMAT = 1
TRUE_VALUES = {"1", "ON", "YES", "TRUE"}  # as huggingface_hub reads HF_HUB_OFFLINE


class MissingModelError(UserError):
    """The cache has no published entry for this model."""


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
    """Verification hashes each file against the MANIFEST, unless a node-local stamp
    (stamps.py) says this very file (same inode, size, mtime, ctime) hashed right here."""

    def __init__(self, root=None, stamps: Stamps | None = None):
        self.root = Path(root if root is not None else default_root()).expanduser()
        self.hashed: dict[str, dict[str, tuple]] = {}  # model -> identity of each file hashed
        self.stamps = stamps or Stamps()

    def identities(self, spec: ModelSpec) -> dict[str, tuple]:
        """The current identity of every file the entry's MANIFEST lists."""
        files = (self.manifest(spec) or {}).get("files", {}) if spec.source != "path" else {}
        try:
            return {name: identity(self.entry_dir(spec) / name) for name in sorted(files)}
        except OSError:
            return {}

    def check_unchanged(self, spec: ModelSpec) -> None:
        """After loading: if a file of the entry was replaced or rewritten since `verify`
        hashed it, what was loaded may not be what was verified, so the entry is verified
        again (another task publishing the same bytes passes; other bytes raise)."""
        if self.identities(spec) == self.hashed.get(spec.name, {}):
            return
        try:
            self.verify(spec)
        except (IntegrityError, MissingModelError) as exc:
            raise IntegrityError(f"a file of {spec.name} changed while it was verified and "
                                 f"loaded: {exc}") from exc

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
        hashed = {}
        for name, record in sorted(manifest["files"].items()):
            hashed[name] = self._check_file(spec, self.entry_dir(spec) / name, record)
        self.hashed[spec.name] = hashed
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

    def _check_file(self, spec: ModelSpec, path: Path, record: dict) -> tuple:
        """The file's identity as it was hashed, once its size and sha256 are as recorded."""
        fix = f"fix: {_repair_hint(spec)}"
        if not path.is_file():
            raise IntegrityError(f"{path}: missing from the cache entry; {fix}")
        try:
            ident, digest = self._hash(path)
        except OSError as exc:
            raise IntegrityError(f"{path}: unreadable ({exc.strerror or exc}); {fix}") from exc
        if ident[2] != record["size"]:
            raise IntegrityError(f"{path}: {ident[2]} bytes, expected {record['size']} "
                                 f"(truncated or replaced); {fix}")
        if digest != record["sha256"]:
            raise IntegrityError(f"{path}: sha256 mismatch (corrupted); {fix}")
        return ident

    def _hash(self, path: Path) -> tuple[tuple, str]:
        """(identity, sha256): the stamp's when this node hashed this very file, else hashed
        now (and stamped)."""
        ident = identity(path)
        known = self.stamps.lookup(path, ident)
        if known is not None:
            return ident, known
        started = time.time_ns()
        digest = fsio.sha256_file(path)
        if identity(path) == ident:   # unchanged while it was read
            self.stamps.record(path, ident, digest, started)
        return ident, digest

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
        fsio.make_dirs(self.root)
        return FileLock(str(self.root / LOCK_NAME), timeout=LOCK_TIMEOUT_S)

    def prewarm(self, spec: ModelSpec, download: bool = False,
                revision: str | None = None) -> Path:
        """Return the verified path of `spec`, generating a tiny entry (or, with download=True,
        downloading a real one, at `revision` for hub models) first if the cache lacks it.
        Never repairs a corrupt entry."""
        try:
            return self.verify(spec)
        except MissingModelError:
            if not (spec.generated or download):
                raise
        try:
            with self.lock():
                try:
                    return self.verify(spec)  # published by another task while we waited
                except MissingModelError:
                    self.produce(spec, revision=revision)
        except OSError as exc:
            raise UserError(f"cannot write {spec.name} into the model cache {self.root} "
                            f"({exc.strerror or exc}: {exc.filename}); fix: set VIRNUC_HPC_CACHE "
                            f"to a writable cache, or run {_fetch_hint(spec)} where the cache "
                            "is writable") from exc
        return self.verify(spec)

    def fetch(self, spec: ModelSpec, repair: bool = False, revision: str | None = None) -> Path:
        """`models fetch`: download (or generate) the entry, at `revision` (a hub branch, tag or
        commit) when given. A verified entry is kept; one at another revision is an error.
        With repair, an entry that fails verification or is at another revision is fetched
        again (at its recorded commit unless `revision` is given)."""
        check_revision(spec, revision)
        if not repair or spec.source == "path":
            path = self.prewarm(spec, download=True, revision=revision)
            if not self._at_revision(spec, revision):
                raise UserError(
                    f"{self.entry_dir(spec)} holds {spec.name} at revision "
                    f"{self.manifest(spec).get('revision')}, not {revision}; fix: add --repair "
                    f"to replace it: `virnuc-hpc models fetch --repair --revision {revision} "
                    f"--model {spec.name}`")
            return path
        with self.lock():
            try:
                path = self.verify(spec)
                if self._at_revision(spec, revision):
                    return path
                log.warning("replacing %s by its revision %s", spec.name, revision)
            except (MissingModelError, IntegrityError) as exc:
                log.warning("repairing %s: %s", spec.name, exc)
            self.produce(spec, previous=self._readable_manifest(spec), revision=revision)
        return self.verify(spec)

    def _at_revision(self, spec: ModelSpec, revision: str | None) -> bool:
        """Whether the (verified) entry is at `revision`: its recorded commit or the branch,
        tag or commit it was fetched as."""
        manifest = self.manifest(spec) or {}
        return revision is None or revision in (manifest.get("revision"),
                                                manifest.get("requested_revision"))

    def _readable_manifest(self, spec: ModelSpec) -> dict | None:
        try:
            return self.manifest(spec)
        except IntegrityError:
            return None

    def produce(self, spec: ModelSpec, previous: dict | None = None,
                revision: str | None = None) -> None:
        """Write every file of the entry (each renamed in whole), then the MANIFEST. Hub
        models: at `revision`, else at the commit `previous` (the old MANIFEST) records, else
        at the registry's revision."""
        directory = self.entry_dir(spec)
        fsio.make_dirs(directory)
        previous = previous or {}
        requested = None
        if spec.generated:
            records, commit = self._generate(spec, directory)
        elif spec.source.startswith("hf:"):
            requested = revision or previous.get("requested_revision") or spec.revision
            records, commit = _download_hub(
                spec, directory, revision or previous.get("revision") or spec.revision)
        else:
            records, commit = _download_urls(spec, directory), None
        manifest = {
            "format": FORMAT, "name": spec.name, "kind": spec.kind, "dim": spec.dim,
            "source": spec.source, "revision": commit, "requested_revision": requested,
            "biologically_meaningful": spec.biologically_meaningful, "files": records,
        }
        fsio.atomic_write(directory / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True))
        log.info("published %s in %s", spec.name, directory)

    def _generate(self, spec: ModelSpec, directory: Path) -> tuple[dict, str]:
        from . import tiny# torch: only when a tiny entry is made

        files = tiny.files_for(spec.kind, chunk_size=spec.chunk_size or 0)
        records = {name: publish_bytes(directory / name, data) for name, data in files.items()}
        return records, f"tiny-seed-{tiny.SEED}"


def offline_mode() -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) set true, read as huggingface_hub reads it."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.upper() in TRUE_VALUES


def check_revision(spec: ModelSpec, revision: str | None) -> None:
    """A revision (branch, tag or commit) can only be asked of Hugging Face hub models."""
    if revision is not None and not spec.source.startswith("hf:"):
        hub = sorted(name for name, s in REGISTRY.items() if s.source.startswith("hf:"))
        raise ConfigError(f"--revision applies to Hugging Face hub models only "
                          f"({', '.join(hub)}), not to {spec.name} ({spec.source})")


def _one_line(exc: Exception) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())


def _offline_error(spec: ModelSpec, exc: Exception) -> UserError:
    return UserError(
        f"cannot download {spec.name} ({_one_line(exc)}); fix: run "
        f"{_fetch_hint(spec)} on a machine with internet (HF_HUB_OFFLINE unset) and share the "
        "cache through VIRNUC_HPC_CACHE")


def _download_hub(spec: ModelSpec, directory: Path, revision: str | None) -> tuple[dict, str]:
    """DNABERT-style files from the Hugging Face hub at the one commit `revision` (a branch,
    tag or commit) resolves to."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RevisionNotFoundError

    staging = Path(tempfile.mkdtemp(dir=directory, prefix=".hub-"))
    try:
        commit = HfApi().model_info(spec.source.removeprefix("hf:"), revision=revision).sha
        records = {}
        for wanted in spec.files:
            got = _hub_file(spec, wanted, commit, staging)
            if got is not None:
                tmp = fsio.temp_beside(directory / wanted.name)
                shutil.copyfile(got, tmp)
                records[wanted.name] = publish_file(tmp, directory / wanted.name, wanted.sha256)
        return records, commit
    except RevisionNotFoundError as exc:
        raise UserError(f"{spec.source} has no revision {revision!r}; fix: give a branch, tag or "
                        "commit of that repository") from exc
    except UserError:
        raise
    except Exception as exc:  # network, offline mode, hub errors: one actionable line
        raise _offline_error(spec, exc) from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _hub_file(spec: ModelSpec, wanted, commit: str, staging: Path) -> str | None:
    """One file of the hub repository at `commit`; None for an optional file it lacks."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    try:
        return hf_hub_download(spec.source.removeprefix("hf:"), wanted.name, revision=commit,
                               local_dir=staging)
    except EntryNotFoundError as exc:
        if wanted.optional:
            return None
        raise UserError(f"{spec.source} at commit {commit} has no {wanted.name}; fix: fetch a "
                        f"revision of {spec.name} that has it (--revision)") from exc


def _download_urls(spec: ModelSpec, directory: Path) -> dict:
    """Direct downloads (fair-esm checkpoints, VirNucPro classifiers)."""
    if offline_mode():
        raise _offline_error(spec, RuntimeError("HF_HUB_OFFLINE is set"))
    records = {}
    for wanted in spec.files:
        tmp = fsio.temp_beside(directory / wanted.name)
        try:
            _http_get(wanted.url, tmp)
            records[wanted.name] = publish_file(tmp, directory / wanted.name, wanted.sha256)
        except UserError:
            raise
        except Exception as exc:
            raise _offline_error(spec, exc) from exc
        finally:
            tmp.unlink(missing_ok=True)
    return records


def _http_get(url: str, dest: Path) -> None:
    """GET `url` into `dest`. A body of another length than its Content-Length raises: urllib
    reads a dropped connection as a normal end of the body."""
    from urllib.request import Request, urlopen

    with urlopen(Request(url, headers={"User-Agent": "virnuc-hpc"}), timeout=60) as response:
        expected = response.headers.get("Content-Length")
        log.info("downloading %s (%s bytes)", url, expected or "unknown")
        with open(dest, "wb") as out:
            shutil.copyfileobj(response, out, fsio.CHUNK)
            size = out.tell()
    if expected is not None and size != int(expected):
        raise OSError(f"{url}: connection dropped after {size} of {expected} bytes")


def model_fingerprint(spec: ModelSpec, path) -> str:
    """A short id of exactly which bytes a model was loaded from: from the entry MANIFEST's
    checksums when there is one, else by hashing the files at `path`."""
    path = Path(path)
    directory = path if path.is_dir() else path.parent
    manifest_path = directory / MANIFEST
    if spec.source != "path" and manifest_path.is_file():
        return manifest_fingerprint(json.loads(manifest_path.read_text())["files"])
    targets = sorted(p for p in directory.iterdir() if p.is_file() and not
                     p.name.startswith(".")) if path.is_dir() else [path]
    return listing_fingerprint([(p.name, fsio.sha256_file(p)) for p in targets])


def profile_fingerprints(profile: str, chunk_size: int,
                         cache: ModelCache | None = None) -> dict[str, str]:
    """The models a run will use, by checksum (verifies, and pre-warms, the cache)."""
    from .registry import resolve_profile

    cache = cache or ModelCache()
    return {spec.name: model_fingerprint(spec, cache.prewarm(spec))
            for spec in resolve_profile(profile, chunk_size).specs()}

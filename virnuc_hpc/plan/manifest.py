"""Shard manifests. A shard is a contiguous range of the run's rows: its manifest
(`shards/shard-NNNNN.manifest.json`) names its first ordinal, its slices of `rows.bin` (per
sequence: length, chunks, bases, digest, where its ID ends) and of `ids.txt` (IDs, one per
line) with their sha256, and how many sequences of each sample it holds. Written by `plan`,
read back checked by tasks and reduce, each reading only its own slices."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np

from ..core.errors import IntegrityError
from ..core.fsio import fsync_dir, sha256_bytes
from ..core.rundir import RunDir, check_record_paths, contained
from ..parts import Expectation
from .planfile import FORMAT, Plan, check_format
from .external_sort import PAIR_DTYPE
from .duplicates import Duplicates
from .route import Slice
from .scan import ROW_DTYPE

DUPLICATES, REPRESENTATIVES = RunDir(".").duplicates.name, RunDir(".").representatives.name


def write_manifests(run: RunDir, plan: Plan, slices: list[Slice], dups: Duplicates) -> None:
    """One manifest per shard, then everything in shards/ made durable (until plan.json
    exists the folder is scratch: a crashed plan's is removed by the next one)."""
    for shard, part in zip(plan.shards, slices):
        record = {**_manifest(run, plan, shard.index, part), **_dup_slices(dups, part)}
        data = json.dumps(record, indent=1, sort_keys=True)
        run.manifest(shard.index).write_text(data + "\n", encoding="utf-8")
        shard.manifest = run.relative(run.manifest(shard.index))
        shard.manifest_sha256 = sha256_bytes((data + "\n").encode())
    for path in sorted(run.shards.iterdir()):
        _fsync(path)
    fsync_dir(run.shards)


def _manifest(run: RunDir, plan: Plan, index: int, part: Slice) -> dict:
    width = ROW_DTYPE.itemsize
    return {"format": FORMAT, "index": index, "plan_fingerprint": plan.fingerprint,
            "sequences": part.count, "chunks": part.chunks, "bases": part.bases,
            "first": part.first, "samples": sorted([s, n] for s, n in part.spans.items()),
            "rows": {"file": run.rows.name, "offset": part.first * width,
                     "bytes": part.count * width, "sha256": part.rows_hash.hexdigest()},
            "ids": {"file": run.ids.name, "offset": part.ids_start,
                    "bytes": part.ids_end - part.ids_start, "sha256": part.ids_hash.hexdigest()}}


def _dup_slices(dups: Duplicates, part: Slice) -> dict:
    """The shard's duplicates (each with its representative) and the representatives it
    computes for duplicates elsewhere, as slices of the run's two files."""
    if not len(dups.pairs) and not len(dups.reps):
        return {}
    (plo, phi), (rlo, rhi) = dups.pairs_in(part.first, part.count), \
        dups.reps_in(part.first, part.count)
    return {"duplicates": _record(DUPLICATES, plo, phi, dups.pairs),
            "representatives": _record(REPRESENTATIVES, rlo, rhi, dups.reps)}


def _record(name: str, lo: int, hi: int, array: np.ndarray) -> dict:
    width = array.dtype.itemsize
    return {"file": name, "offset": lo * width, "bytes": (hi - lo) * width,
            "sha256": sha256_bytes(np.asarray(array[lo:hi]).tobytes())}


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class Manifest:
    """The sequences of one shard, in ordinal order; `duplicates` (ordinal, representative)
    are those its task does not compute, `representatives` those it computes for duplicates
    (here or in later shards)."""

    index: int
    first: int
    rows: np.ndarray
    samples: np.ndarray
    ids: list[str]
    plan_fingerprint: str
    duplicates: np.ndarray = field(default_factory=lambda: np.empty(0, PAIR_DTYPE))
    representatives: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))

    @property
    def computed(self) -> np.ndarray:
        """True for the rows its task computes (not duplicates)."""
        keep = np.ones(len(self.rows), bool)
        keep[self.duplicates["ordinal"] - self.first] = False
        return keep

    @property
    def ordinals(self) -> np.ndarray:
        return np.arange(self.first, self.first + len(self.rows), dtype=np.int64)

    @property
    def lengths(self) -> np.ndarray:
        return self.rows["length"].astype(np.int64)

    @property
    def chunks(self) -> np.ndarray:
        return self.rows["chunks"].astype(np.int64)

    @property
    def digests(self) -> np.ndarray:
        return self.rows["digest"]

    def computed_rows(self) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
        """(ordinals, IDs, lengths, chunks) of the sequences its task computes."""
        keep = self.computed
        return self.ordinals[keep], [i for i, k in zip(self.ids, keep.tolist()) if k], \
            self.lengths[keep], self.chunks[keep]

    def expectation(self, widths: Mapping[str, int] | None = None,
                    fingerprints: Mapping[str, str] | None = None) -> Expectation:
        """What its task writes: the sequences it computes, duplicates aside."""
        _, ids, lengths, chunks = self.computed_rows()
        return Expectation(ids, lengths.tolist(), chunks.tolist(), widths, fingerprints)


def read_manifest_json(run_dir: str | os.PathLike, index: int) -> dict:
    """The small JSON part of a shard manifest (counts, slices and checksums)."""
    return json.loads(RunDir(run_dir).manifest(index).read_text(encoding="utf-8"))


def load_manifest(run_dir: str | os.PathLike, index: int) -> Manifest:
    """A shard's manifest with its rows and IDs, each slice checked against its sha256."""
    run = RunDir(run_dir)
    contained(run.root, run.manifest(index))
    try:
        meta = read_manifest_json(run, index)
        check_format(run.manifest(index), meta.get("format"))
        _check_names(run, index, meta)
        rows, ids = (read_slice(run, index, meta[key]) for key in ("rows", "ids"))
        dups, reps = (read_slice(run, index, meta[key]) if key in meta else b""
                      for key in ("duplicates", "representatives"))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(f"shard {index}: manifest unreadable ({exc}); re-plan the run"
                             ) from None
    samples = np.repeat([s for s, _ in meta["samples"]], [n for _, n in meta["samples"]])
    return Manifest(index, meta["first"], np.frombuffer(rows, ROW_DTYPE), samples.astype(
        np.int64), ids.decode("utf-8").splitlines(), meta["plan_fingerprint"],
        np.frombuffer(dups, PAIR_DTYPE), np.frombuffer(reps, np.int64))


def read_slice(run: RunDir, index: int, record: dict) -> bytes:
    """The bytes of one slice a manifest names, checked against its sha256."""
    path = contained(run.root, run.shards / record["file"])
    with open(path, "rb") as handle:
        handle.seek(int(record["offset"]))
        data = handle.read(int(record["bytes"]))
    if len(data) != record["bytes"] or sha256_bytes(data) != record["sha256"]:
        raise IntegrityError(f"shard {index}: {path.name} changed since planning; re-plan the "
                             "run")
    return data


def _check_names(run: RunDir, index: int, meta: dict) -> None:
    """A manifest names the run's rows and IDs files in shards/, nothing else (never
    `../../etc/passwd`)."""
    check_record_paths(meta, run.manifest(index), "re-plan the run")
    names = (meta.get("rows", {}).get("file"), meta.get("ids", {}).get("file"),
             meta.get("duplicates", {}).get("file", DUPLICATES),
             meta.get("representatives", {}).get("file", REPRESENTATIVES))
    if names != (run.rows.name, run.ids.name, DUPLICATES, REPRESENTATIVES):
        raise IntegrityError(f"{run.manifest(index)}: names {names}, not the run's rows and "
                             "IDs in the run dir; refused; fix: re-plan the run")

"""Feature parts of one array task: written atomically, verified by content, resumable.

A task writes its kept frames in parts of K rows. Each part is one safetensors file (no
pickle) published with `fsio.atomic_open`: tensor `scores` [n, 2] float32 always, and, as the
run's `features` option asks, `dnabert` [n, Dd] and `esm` [n, De] in float32 (fp32) or float16
(fp16, rounded at write time from the float32 features the scores came from) or not at all
(none). Then a JSON sidecar (sha256, rows, first row, IDs and their digest, widths, model
fingerprints, features), then - after the per-sequence accounting file - a DONE record listing
the exact sha256 of every part. The bytes of a part depend only on its content (no times, no
pids, one metadata key), so two processes racing on the same index either publish identical
files or leave a mismatch that `verify_task` rejects: a shard is never silently mixed.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from safetensors.numpy import save as save_tensors

from ..core.config import DEFAULT_FEATURES, check_features
from ..core.errors import ConfigError, IntegrityError
from ..core.faults import fault_point
from ..core.fsio import atomic_write, make_dirs, sha256_bytes, sha256_file
from ..core.rundir import TaskDir
from .accounting import iter_accounting
from .layout import (FORMAT, full_widths, ids_digest, json_bytes, read_record, stored_features,
                     stored_tensors, tensor_dtype)


@dataclass(frozen=True)
class PartInfo:
    """A published, verified part (what its sidecar says)."""

    index: int
    sha256: str
    bytes: int
    rows: int
    row_start: int
    ids: tuple[str, ...]

    def listing(self) -> dict:
        return {"index": self.index, "sha256": self.sha256, "bytes": self.bytes, "rows": self.rows}


@dataclass(frozen=True)
class ResumePoint:
    """How far a task got: `parts` complete verified parts holding `rows` frames."""

    parts: int
    rows: int
    last_id: str | None
    infos: tuple[PartInfo, ...] = ()


def _sidecar_info(task: TaskDir, k: int, sidecar: dict) -> PartInfo:
    return PartInfo(k, sidecar["sha256"], sidecar["bytes"], sidecar["rows"], sidecar["row_start"],
                    tuple(sidecar["ids"]))


def _complete_part(task: TaskDir, k: int, row_start: int,
                   declared: Mapping | None) -> PartInfo | None:
    """The part's info if its sidecar exists, matches the file's sha256 and continues the rows
    (never through a symlink out of the task dir: the writer then replaces the link)."""
    try:
        sidecar = read_record(task, task.sidecar(k))
    except IntegrityError:
        return None
    if sidecar is None or not task.part(k).is_file() or not task.holds(task.part(k)):
        return None
    recorded = {**sidecar, "features": stored_features(sidecar)}
    if declared is not None and any(recorded.get(k) != value for k, value in declared.items()):
        return None
    if sidecar.get("row_start") != row_start or sha256_file(task.part(k)) != sidecar.get("sha256"):
        return None
    return _sidecar_info(task, k, sidecar)


def _scan(task: TaskDir, declared: Mapping | None) -> list[PartInfo]:
    infos: list[PartInfo] = []
    while (info := _complete_part(task, len(infos), sum(i.rows for i in infos), declared)):
        infos.append(info)
    return infos


def resume_point(task_dir: str | os.PathLike, widths: Mapping[str, int] | None = None,
                 fingerprints: Mapping[str, str] | None = None,
                 features: str | None = None) -> ResumePoint:
    """Complete verified parts 0..n-1 (sidecar present, sha256 equal, rows contiguous and, when
    given, the same widths, fingerprints and feature storage: an fp32 run never resumes from
    an fp16 or scores-only part). Temp files and later or unsidecarred parts are ignored: the
    writer overwrites them."""
    declared = _declared(widths, fingerprints, features)
    infos = _scan(TaskDir(task_dir), declared)
    last = infos[-1].ids[-1] if infos else None
    return ResumePoint(len(infos), sum(i.rows for i in infos), last, tuple(infos))


def _declared(widths, fingerprints, features) -> dict | None:
    declared = {}
    if widths is not None:
        declared["widths"] = full_widths(widths)
    if fingerprints is not None:
        declared["fingerprints"] = dict(fingerprints)
    if features is not None:
        declared["features"] = features
    return declared or None


def _as_rows(name: str, array, rows: int, width: int) -> np.ndarray:
    array = np.ascontiguousarray(array, dtype=np.float32)
    if array.shape != (rows, width):
        raise ValueError(f"{name}: shape {array.shape}, expected ({rows}, {width})")
    return array


def _as_stored(name: str, array, rows: int, width: int, dtype: np.dtype) -> np.ndarray:
    """The fp32 rows as stored: rounded to fp16 where asked (refused, naming the fix, if a
    value is beyond fp16's range: a part must never hold an infinity its fp32 lacked)."""
    exact = _as_rows(name, array, rows, width)
    with np.errstate(over="ignore"):  # an overflow is refused below, in words
        stored = exact.astype(dtype)
    if dtype != exact.dtype and not np.isfinite(stored).all() and np.isfinite(exact).all():
        raise ConfigError(f"{name} features beyond {dtype.name}'s range (±"
                          f"{np.finfo(dtype).max:g}); fix: plan the input again in a new run "
                          "dir with --features fp32")
    return stored


class PartWriter:
    """Writes the parts of one task, resuming after its complete verified parts.

    `widths` gives the feature widths (`{"dnabert": 768, "esm": 2560}` for the real models);
    `fingerprints` identifies the models (name -> checksum); `features` what is kept of the
    features (fp32, fp16, none). Parts written by another configuration are not resumed
    from. Creating a writer removes a stale DONE.
    """

    def __init__(self, task_dir: str | os.PathLike, widths: Mapping[str, int],
                 fingerprints: Mapping[str, str], features: str = DEFAULT_FEATURES):
        check_features(features)
        self.task = TaskDir(task_dir)
        self.widths = full_widths(widths)
        self.fingerprints = dict(fingerprints)
        self.features = features
        make_dirs(self.task.root)
        self.task.done.unlink(missing_ok=True)
        self.task.rejected.unlink(missing_ok=True)
        resumed = resume_point(task_dir, self.widths, self.fingerprints, features)
        self.parts: list[PartInfo] = list(resumed.infos)

    @property
    def next_part(self) -> int:
        return len(self.parts)

    @property
    def rows_done(self) -> int:
        return sum(info.rows for info in self.parts)

    def write_part(self, k: int, ids: Sequence[str], dnabert, esm, scores) -> PartInfo:
        """Publish part `k` (must be `next_part`): the tensors the run keeps, then the sidecar.
        `dnabert` and `esm` are the float32 features the scores came from: stored as
        they are (fp32), rounded (fp16), or not kept at all (none; they may then be None)."""
        if k != self.next_part:
            raise ValueError(f"part {k} written out of order: the next part is {self.next_part}")
        rows = len(ids)
        if rows == 0:
            raise ValueError("a part needs at least one row")
        tensors = self._stored(rows, {"dnabert": dnabert, "esm": esm, "scores": scores})
        digest = ids_digest(ids)
        meta = {"format": FORMAT, "part": k, "row_start": self.rows_done, "ids_digest": digest}
        data = save_tensors(tensors, metadata={"virnuc_hpc": json.dumps(meta, sort_keys=True)})
        fault_point("part.writing", self.task.part(k))
        atomic_write(self.task.part(k), data)
        fault_point("part.written", self.task.part(k))
        sidecar = {**meta, "sha256": sha256_bytes(data), "bytes": len(data), "rows": rows,
                   "ids": list(ids), "widths": self.widths, "fingerprints": self.fingerprints,
                   "features": self.features}
        atomic_write(self.task.sidecar(k), json_bytes(sidecar))
        self.parts.append(_sidecar_info(self.task, k, sidecar))
        return self.parts[-1]

    def _stored(self, rows: int, arrays: Mapping[str, object]) -> dict[str, np.ndarray]:
        return {name: _as_stored(name, arrays[name], rows, self.widths[name],
                                 tensor_dtype(name, self.features))
                for name in stored_tensors(self.features)}

    def write_done(self, summary: Mapping | None = None, **run_info) -> dict:
        """Write DONE last: the parts' sha256 list, totals and the accounting's digest, and
        `run_info` (when the task started, its GPU, its rate: the report's timeline).
        The accounting must be written first and account for exactly the rows written."""
        kept, sequences, ids = 0, 0, hashlib.sha256()
        for row in iter_accounting(self.task.root):  # streamed: a shard may be very long
            kept, sequences = kept + row.kept_frames, sequences + 1
            ids.update(f"{row.id}\n".encode())  # as ids_digest
        if kept != self.rows_done:
            raise ValueError(f"accounting lists {kept} kept frames but {self.rows_done} rows "
                             "were written")
        self._remove_leftover_parts()
        record = {
            "format": FORMAT, "parts": [info.listing() for info in self.parts],
            "rows": self.rows_done, "sequences": sequences,
            "accounting_sha256": sha256_file(self.task.accounting),
            "sequence_ids_digest": ids.hexdigest(),
            "widths": self.widths, "fingerprints": self.fingerprints, "features": self.features,
            "summary": dict(summary or {}), "time": time.time(), "host": socket.gethostname(),
            "pid": os.getpid(), **run_info,
        }
        atomic_write(self.task.done, json_bytes(record))
        return record

    def _remove_leftover_parts(self) -> None:
        for k in self.task.part_indices():
            if k >= self.next_part:
                self.task.part(k).unlink(missing_ok=True)
                self.task.sidecar(k).unlink(missing_ok=True)

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
import re
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
from safetensors.numpy import load as load_tensors
from safetensors.numpy import save as save_tensors

from ..core.faults import fault_point
from ..core.fsio import atomic_open, atomic_write, make_dirs, sha256_bytes, sha256_file
from ..core.errors import ConfigError, IntegrityError
from ..core.rundir import TaskDir, check_record_paths, parse_index
from ..core.config import DEFAULT_FEATURES, FEATURES, check_features

FORMAT = 1
TENSORS = ("dnabert", "esm", "scores")
LEGACY_FEATURES = "fp32"  # what parts and DONEs written before the choice existed kept
FEATURE_DTYPES = {"fp32": np.dtype(np.float32), "fp16": np.dtype(np.float16)}
SCORES_DTYPE = np.dtype(np.float32)
ACCOUNTING_COLUMNS = ("id", "length", "chunks", "kept_frames", "skip_reason")
PartHook = Callable[[int, Sequence[str], Mapping[str, np.ndarray]], None]
FRAME_SUFFIX = re.compile(r"_chunk_([1-9][0-9]*)[FR][123]\Z")


def ids_digest(ids: Iterable[str]) -> str:
    """sha256 of the IDs, one per line: the same digest wherever IDs are compared."""
    return sha256_bytes("".join(f"{i}\n" for i in ids).encode())


def _json_bytes(obj) -> bytes:
    return (json.dumps(obj, sort_keys=True, indent=1) + "\n").encode()


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None


def stored_tensors(features: str) -> tuple[str, ...]:
    """The tensors a part holds: the scores always, the two feature tensors unless `none`."""
    return ("scores",) if features == "none" else TENSORS


def tensor_dtype(name: str, features: str) -> np.dtype:
    """Scores stay float32 whatever is kept of the features (every results file comes from
    them, so it is the same for every choice)."""
    return SCORES_DTYPE if name == "scores" else FEATURE_DTYPES[features]


def stored_features(record: Mapping) -> str:
    """A sidecar's or DONE's feature storage (fp32 for those written before the choice)."""
    return record.get("features", LEGACY_FEATURES)


def part_layout(features: str, widths: Mapping[str, int]) -> dict:
    """What every part of a run holds (features_index.json): the choice, each tensor's dtype
    and width, and the bytes of tensor data per frame (the parts' few hundred header bytes
    and the sidecars' frame IDs come on top)."""
    full = full_widths(widths)
    tensors = {name: {"dtype": tensor_dtype(name, features).name, "width": full[name]}
               for name in stored_tensors(features)}
    per_frame = sum(tensor_dtype(name, features).itemsize * full[name] for name in tensors)
    dtype = FEATURE_DTYPES[features].name if features in FEATURE_DTYPES else None
    return {"stored": features, "dtype": dtype, "tensors": tensors, "bytes_per_frame": per_frame}


def rerun_hint(task: TaskDir) -> str:
    """The command that reruns this task's shard."""
    try:
        index = parse_index(task.root.name)
    except ValueError:
        return "rerun its task"
    return f"`virnuc-hpc resubmit {task.root.parent.parent} --indices {index}`"


def _read_record(task: TaskDir, path: Path) -> dict | None:
    """A JSON record of the task (DONE, a sidecar): None when absent or unreadable;
    IntegrityError when it is a symlink out of the task dir or names a path outside the run."""
    if os.path.lexists(path) and not task.holds(path):
        raise IntegrityError(f"{path}: a symlink out of its task dir; refused; fix: remove it, "
                             f"then {rerun_hint(task)}")
    record = _read_json(path)
    if isinstance(record, dict):
        check_record_paths(record, path, f"remove it, then {rerun_hint(task)}")
    return record


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


@dataclass
class Expectation:
    """What a shard must contain: its sequences in input order (from the manifest), and
    optionally the feature widths, model fingerprints and feature storage (the plan's
    `features`) every part must declare."""

    ids: Sequence[str]
    lengths: Sequence[int] | None = None
    chunks: Sequence[int] | None = None
    widths: Mapping[str, int] | None = None
    fingerprints: Mapping[str, str] | None = None
    features: str | None = None


def _sidecar_info(task: TaskDir, k: int, sidecar: dict) -> PartInfo:
    return PartInfo(k, sidecar["sha256"], sidecar["bytes"], sidecar["rows"], sidecar["row_start"],
                    tuple(sidecar["ids"]))


def _complete_part(task: TaskDir, k: int, row_start: int,
                   declared: Mapping | None) -> PartInfo | None:
    """The part's info if its sidecar exists, matches the file's sha256 and continues the rows
    (never through a symlink out of the task dir: the writer then replaces the link)."""
    try:
        sidecar = _read_record(task, task.sidecar(k))
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


def full_widths(widths: Mapping[str, int]) -> dict[str, int]:
    """Widths of the three stored tensors from the encoders' widths."""
    return {"dnabert": int(widths["dnabert"]), "esm": int(widths["esm"]), "scores": 2}


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
        atomic_write(self.task.sidecar(k), _json_bytes(sidecar))
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
        atomic_write(self.task.done, _json_bytes(record))
        return record

    def _remove_leftover_parts(self) -> None:
        for k in self.task.part_indices():
            if k >= self.next_part:
                self.task.part(k).unlink(missing_ok=True)
                self.task.sidecar(k).unlink(missing_ok=True)


def read_done(task_dir: str | os.PathLike) -> dict | None:
    """The DONE record, or None when it is absent or unreadable; IntegrityError when it is a
    symlink out of the task dir or names a path outside the run dir."""
    task = TaskDir(task_dir)
    return _read_record(task, task.done)


def write_heartbeat(task_dir: str | os.PathLike, rows_done: int, rows_total: int | None,
                    rate: float | None, ended: bool = False, **extra) -> None:
    """Atomically record progress: rows (the task's work unit) done of total, rows/s, time.
    The task's last heartbeat (after DONE, or on its way out after a failure) says
    `ended=True`: without DONE, status then reports `failed` at once instead of `running`."""
    record = {"time": time.time(), "rows_done": rows_done, "rows_total": rows_total,
              "rate": rate, "ended": ended, "pid": os.getpid(), "host": socket.gethostname(),
              **extra}
    atomic_write(TaskDir(task_dir).heartbeat, _json_bytes(record))


def read_heartbeat(task_dir: str | os.PathLike) -> dict | None:
    return _read_json(TaskDir(task_dir).heartbeat)


def mark_failed(task_dir: str | os.PathLike, reason: str) -> None:
    """Written by a task (or its executor) that gives up: status reports `failed`."""
    record = {"time": time.time(), "reason": reason, "pid": os.getpid(),
              "host": socket.gethostname()}
    atomic_write(TaskDir(task_dir).failed, _json_bytes(record))


def read_failed(task_dir: str | os.PathLike) -> dict | None:
    return _read_json(TaskDir(task_dir).failed)


def _done_digest(task: TaskDir) -> str | None:
    try:
        return sha256_file(task.done)
    except OSError:
        return None


def mark_rejected(task_dir: str | os.PathLike, problems: Sequence[str]) -> bool:
    """Record why `reduce` refused this shard's DONE (status shows it `corrupt`, resubmit and
    run-task rerun it). Bound to that DONE's bytes: a new DONE voids it. False without DONE
    (then there is nothing to hold against)."""
    task = TaskDir(task_dir)
    digest = _done_digest(task)
    if digest is None:
        return False
    record = {"time": time.time(), "by": "reduce", "problems": list(problems),
              "done_sha256": digest, "host": socket.gethostname()}
    atomic_write(task.rejected, _json_bytes(record))
    return True


def read_rejection(task_dir: str | os.PathLike) -> dict | None:
    """reduce's verdict on the current DONE, or None (no verdict, or one on an older DONE)."""
    task = TaskDir(task_dir)
    record = _read_json(task.rejected)
    if record is None or record.get("done_sha256") != _done_digest(task):
        return None
    return record


# --- per-sequence accounting ------------------------------------------------------------

@dataclass(frozen=True)
class AccountRow:
    """One input sequence of a shard: how many chunks and kept frames, or why it was skipped."""

    id: str
    length: int
    chunks: int
    kept_frames: int
    skip_reason: str = ""


def _account_row(row) -> AccountRow:
    if isinstance(row, AccountRow):
        return row
    return AccountRow(str(row["id"]), int(row["length"]), int(row["chunks"]),
                      int(row["kept_frames"]), str(row.get("skip_reason") or ""))


def write_accounting(task_dir: str | os.PathLike, rows: Iterable[Mapping | AccountRow]) -> Path:
    """Atomically write the shard's accounting: id, length, chunks, kept_frames, skip_reason
    per input sequence, in input order (dicts as `Prepared.accounting()` returns them)."""
    with AccountingWriter(task_dir) as writer:
        for row in rows:
            writer.add(row)
    return TaskDir(task_dir).accounting


class AccountingWriter:
    """Streams the accounting to a temp file as sequences pass (memory stays flat however
    many sequences a shard has); published whole when the block ends without error."""

    def __init__(self, task_dir: str | os.PathLike):
        self.path, self.sequences, self.skipped = TaskDir(task_dir).accounting, 0, 0

    def __enter__(self) -> "AccountingWriter":
        self._context = atomic_open(self.path)
        self._handle = self._context.__enter__()
        self._handle.write(("\t".join(ACCOUNTING_COLUMNS) + "\n").encode())
        return self

    def add(self, row: Mapping | AccountRow) -> None:
        row = _account_row(row)
        self._handle.write(f"{row.id}\t{row.length}\t{row.chunks}\t{row.kept_frames}\t"
                           f"{row.skip_reason}\n".encode())
        self.sequences += 1
        self.skipped += bool(row.skip_reason)

    def __exit__(self, *exc) -> bool:
        return bool(self._context.__exit__(*exc))


def iter_accounting(task_dir: str | os.PathLike) -> Iterator[AccountRow]:
    """Stream the accounting rows; raises ValueError on a malformed file."""
    with open(TaskDir(task_dir).accounting, encoding="utf-8") as handle:
        if handle.readline().rstrip("\n").split("\t") != list(ACCOUNTING_COLUMNS):
            raise ValueError("accounting.tsv: unexpected header")
        for number, line in enumerate(handle, 2):
            fields = line.rstrip("\n").split("\t")
            if len(fields) != len(ACCOUNTING_COLUMNS):
                raise ValueError(f"accounting.tsv line {number}: {len(fields)} fields")
            yield AccountRow(fields[0], int(fields[1]), int(fields[2]), int(fields[3]), fields[4])


def read_accounting(task_dir: str | os.PathLike) -> list[AccountRow]:
    return list(iter_accounting(task_dir))


# --- verification -----------------------------------------------------------------------

@dataclass
class _Check:
    task: TaskDir
    expected: Expectation
    done: dict
    problems: list[str] = field(default_factory=list)
    on_part: PartHook | None = None

    def fail(self, message: str) -> None:
        self.problems.append(message)


def verify_task(task_dir: str | os.PathLike, expected: Expectation,
                on_part: PartHook | None = None) -> list[str]:
    """Every problem that stops this shard from being merged; [] when it is complete.

    Checks: DONE present; the accounting matches DONE's digest and the expected sequences
    (IDs, order, lengths, chunks); every listed part exists with DONE's sha256 and byte count,
    its sidecar agrees, it holds exactly the tensors its feature storage keeps, with the
    declared widths, dtypes and finite values; the frame IDs follow the accounting (each
    sequence's kept frames, in order); the same widths, fingerprints and feature storage
    everywhere (and as expected, when given). `on_part(k, frame IDs,
    tensors)` is told each part that passes, from the same read (reduce merges from it).
    """
    task = TaskDir(task_dir)
    try:
        done = read_done(task.root)
    except IntegrityError as exc:
        return [str(exc)]
    if done is None:
        return ["DONE missing or unreadable (the task did not finish)"]
    check = _Check(task, expected, done, on_part=on_part)
    _check_declared(check)
    accounting = _check_accounting(check)
    frame_ids = _check_parts(check)
    if accounting is not None and frame_ids is not None:
        _check_frames(check, accounting, frame_ids)
    return check.problems


def _check_declared(check: _Check) -> None:
    widths, prints = check.done.get("widths"), check.done.get("fingerprints")
    if check.expected.widths is not None:
        want = {"dnabert": check.expected.widths["dnabert"], "esm": check.expected.widths["esm"]}
        if {k: (widths or {}).get(k) for k in want} != want:
            check.fail(f"feature widths {widths} differ from the models' {want}")
    if check.expected.fingerprints is not None and prints != dict(check.expected.fingerprints):
        want = dict(check.expected.fingerprints)
        check.fail(f"model fingerprints {prints} differ from the plan's {want}")
    stored = stored_features(check.done)
    if check.expected.features is not None and stored != check.expected.features:
        check.fail(f"features stored as {stored}, the plan keeps {check.expected.features} "
                   "(written with other options)")


def _check_accounting(check: _Check) -> list[AccountRow] | None:
    path = check.task.accounting
    if path.is_file() and not check.task.holds(path):
        check.fail(f"{path}: a symlink out of the task dir; refused")
        return None
    if not path.is_file() or sha256_file(path) != check.done.get("accounting_sha256"):
        check.fail("accounting.tsv missing or changed since DONE")
        return None
    try:
        rows = read_accounting(check.task.root)
    except ValueError as exc:
        check.fail(str(exc))
        return None
    _compare_sequences(check, rows)
    return rows


def _compare_sequences(check: _Check, rows: list[AccountRow]) -> None:
    expected = check.expected
    ids = [row.id for row in rows]
    if ids != list(expected.ids):
        check.fail(f"accounting lists {len(ids)} sequences that differ from the manifest's "
                   f"{len(expected.ids)} (IDs or order){_first_difference(ids, expected.ids)}")
        return
    for name in ("length", "chunks"):
        want = getattr(expected, "lengths" if name == "length" else "chunks")
        if want is not None and [getattr(r, name) for r in rows] != [int(w) for w in want]:
            check.fail(f"accounting {name} values differ from the manifest")
    bad = [r.id for r in rows if (r.kept_frames == 0) != bool(r.skip_reason)]
    if bad:
        check.fail(f"sequence {bad[0]!r}: a skip reason must be given exactly when no frame "
                   "is kept")


def _first_difference(got: Sequence[str], want: Sequence[str]) -> str:
    for position, (a, b) in enumerate(zip(got, want)):
        if a != b:
            return f"; first at position {position}: {a!r} instead of {b!r}"
    return ""


def _check_parts(check: _Check) -> list[str] | None:
    listed = check.done.get("parts") or []
    if [entry.get("index") for entry in listed] != list(range(len(listed))):
        check.fail("DONE does not list parts 0..n-1")
        return None
    frame_ids: list[str] = []
    for entry in listed:
        ids = _check_part(check, entry, len(frame_ids))
        if ids is None:
            return None
        frame_ids.extend(ids)
    if len(frame_ids) != check.done.get("rows"):
        check.fail(f"parts hold {len(frame_ids)} rows, DONE says {check.done.get('rows')}")
    return frame_ids


def _check_part(check: _Check, entry: dict, row_start: int) -> list[str] | None:
    k, task = entry["index"], check.task
    if os.path.lexists(task.part(k)) and not task.holds(task.part(k)):
        check.fail(f"part {k}: a symlink out of the task dir; refused")
        return None
    try:
        data = task.part(k).read_bytes()
    except OSError:
        check.fail(f"part {k}: file missing")
        return None
    if len(data) != entry.get("bytes") or sha256_bytes(data) != entry.get("sha256"):
        check.fail(f"part {k}: sha256 or size differs from DONE (truncated or changed)")
        return None
    try:
        sidecar = _read_record(task, task.sidecar(k))
    except IntegrityError as exc:
        check.fail(str(exc))
        return None
    if not _sidecar_agrees(check, k, sidecar, entry, row_start):
        return None
    tensors = _checked_tensors(check, k, data, entry["rows"])
    if tensors is None:
        return None
    if check.on_part is not None:
        check.on_part(k, sidecar["ids"], tensors)
    return sidecar["ids"]


def _sidecar_agrees(check: _Check, k: int, sidecar: dict | None, entry: dict,
                    row_start: int) -> bool:
    if sidecar is None:
        check.fail(f"part {k}: sidecar missing or unreadable")
        return False
    ids = sidecar.get("ids", ())
    agree = (sidecar.get("sha256") == entry["sha256"] and sidecar.get("rows") == entry["rows"]
             and sidecar.get("row_start") == row_start and len(ids) == entry["rows"]
             and sidecar.get("ids_digest") == ids_digest(ids))
    if not agree:
        check.fail(f"part {k}: sidecar disagrees with the part (sha256, rows, first row or IDs)")
    elif sidecar.get("widths") != check.done.get("widths") or \
            sidecar.get("fingerprints") != check.done.get("fingerprints") or \
            stored_features(sidecar) != stored_features(check.done):
        check.fail(f"part {k}: widths, model fingerprints or feature storage differ from the "
                   "rest of the shard")
        agree = False
    return agree


def _checked_tensors(check: _Check, k: int, data: bytes, rows: int) -> dict | None:
    """The part's tensors when they are those its storage keeps, with the declared shapes,
    dtypes and finite values, else None."""
    try:
        tensors = load_tensors(data)
    except Exception as exc:  # safetensors raises its own error type on a bad header
        check.fail(f"part {k}: unreadable safetensors ({exc})")
        return None
    widths, features = check.done.get("widths") or {}, stored_features(check.done)
    if not _holds_what_is_kept(check, k, sorted(tensors), features):
        return None
    for name in stored_tensors(features):
        array, dtype = tensors[name], tensor_dtype(name, features)
        if array.dtype != dtype or array.shape != (rows, widths.get(name)):
            check.fail(f"part {k}: tensor {name} is {(array.shape, str(array.dtype))}, "
                       f"expected {dtype.name} ({rows}, {widths.get(name)})")
            return None
        if not np.isfinite(array).all():
            check.fail(f"part {k}: tensor {name} has NaN or infinite values")
            return None
    return tensors


def _holds_what_is_kept(check: _Check, k: int, names: list[str], features: str) -> bool:
    """Exactly the tensors the shard's storage keeps: a scores-only part that holds features,
    or an fp32 one without them, was written by something else."""
    if features not in FEATURES:
        check.fail(f"part {k}: unknown feature storage {features!r}")
        return False
    if names != sorted(stored_tensors(features)):
        check.fail(f"part {k}: tensors {names}, but features {features} keeps "
                   f"{sorted(stored_tensors(features))}")
        return False
    return True


def frame_key(frame_id: str, sequence_id: str) -> tuple[int, str] | None:
    """(chunk number, frame name) of `<sequence_id>_chunk_<n><F|R><1-3>`, else None."""
    match = FRAME_SUFFIX.search(frame_id)
    if not match or frame_id[:match.start()] != sequence_id:
        return None
    return int(match[1]), frame_id[-2:]


def _check_frames(check: _Check, accounting: list[AccountRow], frame_ids: list[str]) -> None:
    kept = sum(row.kept_frames for row in accounting)
    if kept != len(frame_ids):
        check.fail(f"accounting lists {kept} kept frames, the parts hold {len(frame_ids)} rows")
        return
    position = 0
    for row in accounting:
        keys = [frame_key(f, row.id) for f in frame_ids[position:position + row.kept_frames]]
        if None in keys or keys != sorted(set(keys)) or (keys and keys[-1][0] > row.chunks):
            check.fail(f"rows {position}..{position + row.kept_frames - 1}: frame IDs are not the "
                       f"kept frames of sequence {row.id!r} in chunk and frame order")
            return
        position += row.kept_frames

"""What makes a shard mergeable: `verify_task` checks DONE, the accounting, every part and its
sidecar, the tensors and the frame IDs against what the plan expects, by content."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
from safetensors.numpy import load as load_tensors

from ..core.config import FEATURES
from ..core.errors import IntegrityError
from ..core.fsio import sha256_bytes, sha256_file
from ..core.rundir import TaskDir
from .accounting import AccountRow, read_accounting
from .layout import (PartHook, frame_key, ids_digest, read_record, stored_features,
                     stored_tensors, tensor_dtype)
from .markers import read_done


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
        sidecar = read_record(task, task.sidecar(k))
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

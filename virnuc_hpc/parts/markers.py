"""The markers of a task's state on disk: DONE (written last, listing every part), FAILED, the
heartbeat, and REJECTED (reduce's verdict on a DONE, bound to its bytes)."""

from __future__ import annotations

import os
import socket
import time
from typing import Sequence

from ..core.fsio import atomic_write, sha256_file
from ..core.rundir import TaskDir
from .layout import json_bytes, read_json, read_record


def read_done(task_dir: str | os.PathLike) -> dict | None:
    """The DONE record, or None when it is absent or unreadable; IntegrityError when it is a
    symlink out of the task dir or names a path outside the run dir."""
    task = TaskDir(task_dir)
    return read_record(task, task.done)


def write_heartbeat(task_dir: str | os.PathLike, rows_done: int, rows_total: int | None,
                    rate: float | None, ended: bool = False, **extra) -> None:
    """Atomically record progress: rows (the task's work unit) done of total, rows/s, time.
    The task's last heartbeat (after DONE, or on its way out after a failure) says
    `ended=True`: without DONE, status then reports `failed` at once instead of `running`."""
    record = {"time": time.time(), "rows_done": rows_done, "rows_total": rows_total,
              "rate": rate, "ended": ended, "pid": os.getpid(), "host": socket.gethostname(),
              **extra}
    atomic_write(TaskDir(task_dir).heartbeat, json_bytes(record))


def read_heartbeat(task_dir: str | os.PathLike) -> dict | None:
    return read_json(TaskDir(task_dir).heartbeat)


def mark_failed(task_dir: str | os.PathLike, reason: str) -> None:
    """Written by a task (or its executor) that gives up: status reports `failed`."""
    record = {"time": time.time(), "reason": reason, "pid": os.getpid(),
              "host": socket.gethostname()}
    atomic_write(TaskDir(task_dir).failed, json_bytes(record))


def read_failed(task_dir: str | os.PathLike) -> dict | None:
    return read_json(TaskDir(task_dir).failed)


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
    atomic_write(task.rejected, json_bytes(record))
    return True


def read_rejection(task_dir: str | os.PathLike) -> dict | None:
    """reduce's verdict on the current DONE, or None (no verdict, or one on an older DONE)."""
    task = TaskDir(task_dir)
    record = read_json(task.rejected)
    if record is None or record.get("done_sha256") != _done_digest(task):
        return None
    return record

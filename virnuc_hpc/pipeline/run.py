"""Run a planned run's shards on this machine, and rerun the bad ones: `run`, `resubmit`."""

from __future__ import annotations

import os
from pathlib import Path

from ..core.rundir import RunDir, driver_lock
from ..executors import backend_of_run
from ..executors.base import Outcome, default_task_argv
from ..executors.local import LocalExecutor
from ..plan import load_plan
from ..views.live import make_view
from ..views.status import pending_indices


def run_local(run_dir: str | Path, parallel: int = 1, indices: list[int] | None = None,
              progress: str = "auto", interval: float = 30.0) -> Outcome:
    """Run `indices` (default: every shard not done) as local processes, K at a time, showing
    their progress (`progress`: auto or quiet, see live.py); raise TasksFailed naming the
    failed indices."""
    todo = pending_indices(run_dir) if indices is None else indices
    view = make_view(run_dir, todo, progress, interval)
    outcome = LocalExecutor(parallel=parallel).run(run_dir, todo, default_task_argv(run_dir),
                                                   monitor=view)
    outcome.check(run_dir)
    return outcome


def run_pending(run_dir: str | os.PathLike, parallel: int = 1, indices: list[int] | None = None,
                progress: str = "auto", interval: float = 30.0) -> Outcome:
    """`run`: the planned run's pending shards (or `indices`) here, one driver at a time."""
    load_plan(run_dir)  # a run dir with a plan, or the error that says how to make one
    with driver_lock(RunDir(run_dir), "run"):
        return run_local(run_dir, parallel=parallel, indices=indices, progress=progress,
                         interval=interval)


def resubmit(run_dir: str | Path, indices: list[int] | None = None, parallel: int = 1,
             progress: str = "auto", interval: float = 30.0) -> list[int]:
    """Rerun only failed, corrupt or missing shards (or `indices`) with the run's backend.
    Every DONE shard is re-verified by checksum first, so a damaged one is rerun too."""
    load_plan(run_dir)
    with driver_lock(RunDir(run_dir), "resubmit"):
        todo = pending_indices(run_dir, deep=True) if indices is None else indices
        if not todo:
            return []
        backend = backend_of_run(run_dir)
        if not backend.foreground:
            return backend.resubmit(run_dir, todo)  # queued again by its scheduler
        run_local(run_dir, parallel=parallel, indices=todo, progress=progress,
                  interval=interval)
        return todo

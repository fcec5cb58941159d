"""Run a planned run's shards with an executor, and rerun the bad ones: `run`, `resubmit`."""

from __future__ import annotations

from pathlib import Path

from ..executors.base import Outcome, default_task_argv, read_record
from ..executors.local import LocalExecutor
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


def resubmit(run_dir: str | Path, indices: list[int] | None = None, parallel: int = 1,
             progress: str = "auto", interval: float = 30.0) -> list[int]:
    """Rerun only failed, corrupt or missing shards (or `indices`) with the run's executor.
    Every DONE shard is re-verified by checksum first, so a damaged one is rerun too."""
    todo = pending_indices(run_dir, deep=True) if indices is None else indices
    if not todo:
        return []
    record = read_record(run_dir) or {}
    if record.get("executor") == "slurm":
        from ..executors.slurm.executor import resubmit_run

        submission = resubmit_run(run_dir, todo)  # leaves out what SLURM still runs
        return submission.indices if submission is not None else []
    run_local(run_dir, parallel=parallel, indices=todo, progress=progress, interval=interval)
    return todo

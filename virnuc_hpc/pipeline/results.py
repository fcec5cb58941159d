"""Reduce, then the report: what `reduce` and `predict` end with."""

from __future__ import annotations

import os
import sys
from typing import Callable

from ..core.rundir import RunDir
from ..plan import load_plan
from ..reduce.folders import task_folders
from ..reduce.merge import reduce_run
from ..views.report import report_after_reduce

TINY_NOTE = ("note: the tiny model profile is random weights: these results are NOT "
             "biologically meaningful (use --models real)")


def reduce_and_report(run_dir: str | os.PathLike, report: bool = True,
                      say: Callable[[str], None] = print,
                      tasks: list[str | os.PathLike] | None = None) -> int:
    """Verify and merge every shard into RUN/results/, then draw the report; 0, or 1 with
    the bad shards and the fix on stderr. A report that cannot be drawn is a warning: the
    results stand. `tasks`: task folders written elsewhere (reduce/folders.py), read where
    they are; the other shards are read from RUN/tasks/."""
    plan = load_plan(run_dir)
    run = RunDir(run_dir, task_folders(tasks, plan) if tasks else None)
    result = reduce_run(run, fingerprints=plan.models or None)
    if not result.ok:
        print(result.report(), file=sys.stderr)
        return 1
    say(result.report())
    summary = result.summary or {}
    say(f"{summary.get('input_sequences')} input sequences: {summary.get('predicted')} "
        f"predicted ({summary.get('virus_sequences')} virus), {summary.get('skipped')} skipped "
        f"{summary.get('skipped_by_reason', {})}"
        + (f", in {len(summary['samples'])} samples" if "samples" in summary else ""))
    if plan.profile == "tiny":
        say(TINY_NOTE)
    if not report:
        say(f"report: skipped (--no-report); write it with `virnuc-hpc report {run_dir}`")
        return 0
    warning = report_after_reduce(run)
    if warning:
        print(warning, file=sys.stderr)
    else:
        say(f"report: {run.report}")
    return 0

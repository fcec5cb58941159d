"""`submit`: check the request with the profile's backend, plan (or reuse the plan), then send
the shards that are not done or queued to its scheduler, with a reduce job after them; with
`wait`, stay until the results are published."""

from __future__ import annotations

import logging
import os
import shlex
from typing import Callable

from ..core.errors import UserError
from ..core.rundir import RunDir, driving
from ..executors import backend, reduce_argv_for, task_argv_for
from ..executors.base import Backend, Executor, Submission
from ..executors.profiles import Profile
from ..plan import Plan
from ..plan.devices import Target, settle_precision
from ..plan.sizing import over_limit
from ..views.live import make_view
from ..views.status import pending_indices, results_published
from .planning import PlanRequest, plan_or_resume, target_for

log = logging.getLogger(__name__)
Say = Callable[[str], None]


def submit(request: PlanRequest, run_dir: str | os.PathLike, profile: Profile,
           wait: bool = False, dry_run: bool = False, say: Say = print) -> int:
    """Submit RUN's pending shards with `profile` (0; `wait`: once the results are
    published). The request is checked before anything is written or queued: one no node
    could run is refused, naming the flags to lower. `dry_run` prints the plan table, what
    would be sent and the check's outcome, and writes nothing."""
    run_dir = str(run_dir)
    scheduler = backend(profile.executor)
    fit = scheduler.check(profile)
    if dry_run:
        return _dry_run(request, run_dir, profile, scheduler, fit, say)
    if fit is not None:
        fit.require()                    # refuses before the plan writes RUN
    with driving(RunDir(run_dir), "submit"):
        return _submit(request, run_dir, profile, scheduler, wait, say)


def _planned(request: PlanRequest, run_dir: str, profile: Profile, scheduler: Backend,
             dry_run: bool = False) -> Plan:
    """The plan in RUN if it is of the same request, else a new one for the profile's
    target; warns about what the plan will cost there."""
    target = target_for(request, profile)
    existed = RunDir(run_dir).plan.exists()
    plan = plan_or_resume(request, run_dir, target, dry_run=dry_run)
    if existed:
        _warn_precision(run_dir, plan, target, profile)
    if scheduler.time_limited:
        _warn_over_limit(plan, profile)
    return plan


def _warn_precision(run_dir: str, plan: Plan, target: Target, profile: Profile) -> None:
    """A plan settled at fp32 (no GPU where it was planned) that is sent to GPUs."""
    fast = settle_precision(None, target).precision
    chosen = plan.precision_note.startswith("auto")
    if chosen and plan.precision == "fp32" and fast != "fp32":
        log.warning("%s was planned at fp32 (%s): its tasks run the fp32 reference path on "
                    "the GPUs, many times slower than %s; for the fast path plan a new run dir "
                    "(--precision %s, or plan with --profile %s)", run_dir,
                    plan.precision_note or "no GPU where it was planned", fast, fast,
                    profile.name)


def _warn_over_limit(plan: Plan, profile: Profile) -> None:
    late = over_limit([s.minutes_est for s in plan.shards], profile.time)
    if late:
        names = ", ".join(map(str, late[:10])) + (" ..." if len(late) > 10 else "")
        worst = max(plan.shards[i].minutes_est for i in late)
        log.warning("%d shard(s) are estimated past the %d-minute time limit (up to %.0f "
                    "minutes): %s; they are requeued after the limit, resuming from their last "
                    "part; fewer tasks of less time: re-plan without --shards, or give --time",
                    len(late), profile.time, worst, names)


def _dry_run(request: PlanRequest, run_dir: str, profile: Profile, scheduler: Backend, fit,
             say: Say) -> int:
    plan = _planned(request, run_dir, profile, scheduler, dry_run=True)
    say(plan.table())
    executor = scheduler.executor(profile)
    text = scheduler.dry_run(executor, run_dir, [s.index for s in plan.shards],
                             task_argv_for(profile, run_dir), reduce_argv_for(profile, run_dir))
    say(text.rstrip("\n"))
    if fit is not None:
        say(f"# request check: {fit.outcome}: {fit.line}")
        if fit.outcome == "refused":
            fit.require()
    return 0


def _submit(request: PlanRequest, run_dir: str, profile: Profile, scheduler: Backend,
            wait: bool, say: Say) -> int:
    _planned(request, run_dir, profile, scheduler)  # plans RUN, or checks it is of these
    executor = scheduler.executor(profile)
    busy = scheduler.busy(run_dir)
    todo = [i for i in pending_indices(run_dir) if i not in busy]
    if not todo:
        say(f"nothing to submit: every shard of {run_dir} is done or queued; "
            f"see: virnuc-hpc status {shlex.quote(run_dir)}")
        if wait:
            _wait(executor, run_dir, scheduler.latest(run_dir), say)
        return 0
    submission = executor.submit(run_dir, todo, task_argv_for(profile, run_dir),
                                 reduce_argv_for(profile, run_dir))
    if scheduler.foreground:
        executor.wait(submission, monitor=make_view(run_dir, todo)).check(run_dir)
    say(scheduler.describe(submission, run_dir))
    say(f"follow: virnuc-hpc status {shlex.quote(run_dir)}")
    if wait:
        _wait(executor, run_dir, None if scheduler.foreground else submission, say)
    return 0


class NotPublished(UserError):
    """--wait: the jobs ended but the results are not there (exit code 1, as a failed task)."""

    exit_code = 1

    def __init__(self, run_dir: str, submission: Submission | None):
        log = f" (reduce log: {submission.reduce_log})" if submission is not None and \
            submission.reduce_log else ""
        run = shlex.quote(run_dir)
        super().__init__(f"the jobs of {run_dir} ended but no results were published from "
                         f"every shard{log}; see `virnuc-hpc status {run}`, then "
                         f"`virnuc-hpc resubmit {run}` or `virnuc-hpc reduce {run}`")


def _wait(executor: Executor, run_dir: str, submission: Submission | None, say: Say) -> None:
    """--wait: until `submission`'s tasks and reduce job ended (a failed task raises
    TasksFailed); then the results must be published from the shards on disk."""
    if submission is not None and not results_published(run_dir):
        executor.wait(submission).check(run_dir)
    if not results_published(run_dir):
        raise NotPublished(run_dir, submission)
    say(f"results: {RunDir(run_dir).results}")

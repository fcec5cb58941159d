"""`virnuc-hpc submit`: check the request against the partition's nodes, plan (or reuse the
plan), then send the shards to SLURM as an array."""

from __future__ import annotations

import logging
import shlex

from ..core.errors import UserError
from .plan_cmd import (add_input_arguments, add_plan_options, plan_from_args, profile_target,
                       same_run, study_from)

OVERRIDES = (("--partition", str, "NAME"), ("--account", str, "NAME"), ("--qos", str, "NAME"),
             ("--time", str, "D-HH:MM:SS"), ("--gpus-per-task", int, "N"),
             ("--cpus-per-task", int, "N"), ("--mem", str, "SIZE"),
             ("--array-parallelism", int, "K"), ("--parallel", int, "K"),
             ("--image", str, "IMAGE.sif"), ("--cache", str, "DIR"))
log = logging.getLogger(__name__)


def add_parser(sub) -> None:
    p = sub.add_parser("submit", help="plan and submit the shards as a SLURM array (+ reduce)",
                       description="One array task per shard with one GPU each, and a reduce "
                                   "job after the array (afterany). Profiles: jobs/*.yaml; "
                                   "options given here override the profile. Before anything "
                                   "is written or queued, the request (CPUs, memory, GPUs, "
                                   "time per task) is checked against the partition's nodes "
                                   "and limits (scontrol): a request no node could ever run "
                                   "is refused with one line naming the flags to lower "
                                   "(exit 2); a cluster that cannot be asked gets a warning.")
    add_input_arguments(p)
    add_plan_options(p)
    p.add_argument("--profile", default="slurm", metavar="NAME|FILE.yaml",
                   help="submit profile: slurm, apptainer, local, or a YAML file")
    for flag, kind, metavar in OVERRIDES:
        p.add_argument(flag, type=kind, default=None, metavar=metavar, help="overrides the profile")
    p.add_argument("--wait", action="store_true",
                   help="stay until the array and the reduce job ended (SLURM is polled every "
                        "30 s), then exit 0 only if RUN/results/ was published from every shard "
                        "(for workflow managers: Snakemake, Nextflow); a failed task exits 1 "
                        "naming it and the resubmit command")
    p.add_argument("--dry-run", action="store_true",
                   help="print the plan table, the sbatch script(s) and the request check's "
                        "outcome (ok / warning / refused); submit and write nothing; exit 2 "
                        "when the real submit would be refused")
    p.set_defaults(func=run)


def profile_from_args(args):
    from ..executors.profiles import load_profile

    overrides = {flag[2:].replace("-", "_"): getattr(args, flag[2:].replace("-", "_"))
                 for flag, _, _ in OVERRIDES}
    return load_profile(args.profile, **overrides)


def existing_or_new_plan(args, study, profile):
    """The plan in RUN if it is for the same inputs, models and options; else plan now (for
    the profile's GPUs, time limit and parallelism). Warns about what the plan will cost."""
    from ..core.errors import UserError
    from ..plan import load_plan
    from ..core.rundir import RunDir

    target = profile_target(args, profile)
    if not RunDir(args.run_dir).plan.exists():
        plan = plan_from_args(args, study, args.run_dir, target, dry_run=args.dry_run)
    elif not same_run(args, study, args.run_dir):
        raise UserError(f"{args.run_dir} holds a run of other inputs, models or options; "
                        "give a new --run-dir (or the same arguments to continue this one)")
    else:
        plan = load_plan(args.run_dir)
        _warn_precision(args, plan, target)
    _warn_over_limit(plan, profile)
    return plan


def _warn_precision(args, plan, target) -> None:
    """A plan settled at fp32 (no GPU where it was planned) that is sent to GPUs."""
    from ..plan.devices import settle_precision

    fast = settle_precision(None, target).precision
    chosen = plan.precision_note.startswith("auto")
    if chosen and plan.precision == "fp32" and fast != "fp32":
        log.warning("%s was planned at fp32 (%s): its tasks run the fp32 reference path on "
                    "the GPUs, many times slower than %s; for the fast path plan a new run dir "
                    "(--precision %s, or plan with --profile %s)", args.run_dir,
                    plan.precision_note or "no GPU where it was planned", fast, fast,
                    args.profile)


def _warn_over_limit(plan, profile) -> None:
    from ..plan.sizing import over_limit

    if profile.executor != "slurm":
        return
    late = over_limit([s.minutes_est for s in plan.shards], profile.time)
    if late:
        names = ", ".join(map(str, late[:10])) + (" ..." if len(late) > 10 else "")
        worst = max(plan.shards[i].minutes_est for i in late)
        log.warning("%d shard(s) are estimated past the %d-minute time limit (up to %.0f "
                    "minutes): %s; they are requeued after the limit, resuming from their last "
                    "part; fewer tasks of less time: re-plan without --shards, or give --time",
                    len(late), profile.time, worst, names)


def run(args) -> int:
    from ..core.rundir import RunDir, driving

    profile = profile_from_args(args)
    study = study_from(args)             # every input and sheet row checked, nothing written
    fit = request_check(profile)
    if args.dry_run:
        return _dry_run(args, study, profile, fit)
    if fit is not None:
        fit.require()                    # refuses before the plan writes RUN
    with driving(RunDir(args.run_dir), "submit"):
        return _submit(args, study, profile)


def _dry_run(args, study, profile, fit) -> int:
    from ..executors import make_executor, reduce_argv_for, task_argv_for

    plan, executor = existing_or_new_plan(args, study, profile), make_executor(profile)
    print(plan.table())
    _print_dry_run(executor, args.run_dir, [s.index for s in plan.shards],
                   task_argv_for(profile, args.run_dir), reduce_argv_for(profile, args.run_dir))
    if fit is not None:
        print(f"# request check: {fit.outcome}: {fit.line}")
        if fit.outcome == "refused":
            fit.require()
    return 0


def _submit(args, study, profile) -> int:
    from ..executors import make_executor, reduce_argv_for, task_argv_for

    existing_or_new_plan(args, study, profile)  # plans RUN, or checks it is of these arguments
    executor = make_executor(profile)
    task_argv, reduce_argv = task_argv_for(profile, args.run_dir), \
        reduce_argv_for(profile, args.run_dir)
    todo = _todo(args.run_dir, profile)
    if not todo:
        print(f"nothing to submit: every shard of {args.run_dir} is done or queued; "
              f"see: virnuc-hpc status {shlex.quote(args.run_dir)}")
        if args.wait:
            _wait(executor, args.run_dir, _latest_submission(args.run_dir, profile))
        return 0
    submission = executor.submit(args.run_dir, todo, task_argv, reduce_argv)
    if profile.executor == "local":
        from ..views.live import make_view

        executor.wait(submission, monitor=make_view(args.run_dir, todo)).check(args.run_dir)
    _print_submission(submission, args.run_dir)
    if args.wait:
        _wait(executor, args.run_dir, submission if profile.executor == "slurm" else None)
    return 0


def _latest_submission(run_dir: str, profile):
    """The run's latest SLURM submission (what may still be queued), or None."""
    from ..executors import read_record, submissions

    if profile.executor != "slurm":
        return None
    mine = [s for s in submissions(read_record(run_dir)) if s.executor == "slurm"]
    return mine[-1] if mine else None


class NotPublished(UserError):
    """--wait: the jobs ended but the results are not there (exit code 1, as a failed task)."""

    exit_code = 1

    def __init__(self, run_dir: str, submission):
        log = f" (reduce log: {submission.reduce_log})" if submission is not None and \
            submission.reduce_log else ""
        run = shlex.quote(run_dir)
        super().__init__(f"the jobs of {run_dir} ended but no results were published from "
                         f"every shard{log}; see `virnuc-hpc status {run}`, then "
                         f"`virnuc-hpc resubmit {run}` or `virnuc-hpc reduce {run}`")


def _wait(executor, run_dir: str, submission) -> None:
    """--wait: until `submission`'s tasks and reduce job ended (a failed task raises
    TasksFailed); then the results must be published from the shards on disk."""
    from ..core.rundir import RunDir
    from ..views.status import results_published

    if submission is not None and not results_published(run_dir):
        executor.wait(submission).check(run_dir)
    if not results_published(run_dir):
        raise NotPublished(run_dir, submission)
    print(f"results: {RunDir(run_dir).results}")


def request_check(profile):
    """slurm_check's Fit for a SLURM profile (None for local runs)."""
    if profile.executor != "slurm":
        return None
    from ..executors.slurm.check import check_profile

    return check_profile(profile)


def _todo(run_dir: str, profile) -> list[int]:
    from ..views.status import pending_indices

    todo = pending_indices(run_dir)
    if profile.executor == "slurm":
        from ..executors.slurm.executor import active_indices

        busy = active_indices(run_dir)
        todo = [i for i in todo if i not in busy]
    return todo


def _print_dry_run(executor, run_dir, indices, task_argv, reduce_argv) -> None:
    if executor.name == "slurm":
        print(executor.dry_run(run_dir, indices, task_argv, reduce_argv), end="")
        return
    print(f"# local executor: {executor.parallel} at a time, GPUs {executor.gpus or 'none'}")
    for i in indices:
        print(shlex.join(task_argv(i)))
    print(shlex.join(reduce_argv))


def _print_submission(sub, run_dir: str) -> None:
    if sub.executor == "slurm":
        for array in sub.arrays:
            idx = array["indices"]
            print(f"array job {array['job_id']}: {len(idx)} task(s), shard indices "
                  f"{idx[0]}..{idx[-1]} (array task a runs the a-th of them)")
        print(f"reduce job {sub.reduce_job} (after the array(s), whatever their outcome)")
        first = sub.logs[sub.indices[0]]
        print(f"logs: {first} (one per array task)")
    else:
        print(f"{len(sub.jobs)} shard(s) ran locally; reduce log: {sub.reduce_log}")
    print(f"follow: virnuc-hpc status {shlex.quote(run_dir)}")

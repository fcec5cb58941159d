"""`virnuc-hpc predict`: plan + local run + reduce, for one machine or one container."""

from __future__ import annotations

from .plan_cmd import (add_input_arguments, add_plan_options, local_target, plan_from_args,
                       same_run, study_from)
from .reduce_cmd import add_report_option, reduce_and_report
from .run_cmd import add_progress_options, progress_options


def add_parser(sub) -> None:
    p = sub.add_parser("predict", help="plan, run locally and reduce in one command",
                       description="The one-machine path: results land in OUT/results/ "
                                   "(OUT/results/<sample>/ for several samples).")
    add_input_arguments(p)
    p.add_argument("-o", "--out", required=True, metavar="OUT", help="run directory")
    add_plan_options(p, run_dir_required=False)
    p.add_argument("--parallel", type=int, default=1, metavar="K")
    add_progress_options(p)
    add_report_option(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..core.rundir import RunDir, driving
    from ..pipeline.run import run_local

    study = study_from(args)
    with driving(RunDir(args.out), "predict"):
        _plan_or_resume(args, study)
        run_local(args.out, parallel=args.parallel, **progress_options(args))
        return reduce_and_report(args.out, report=args.report)


def _plan_or_resume(args, study) -> None:
    """Plan OUT, or resume it when it is a run of the same inputs, models and options."""
    from ..core.errors import UserError
    from ..core.rundir import RunDir

    if not RunDir(args.out).plan.exists():
        plan_from_args(args, study, args.out, local_target(args, args.parallel))
    elif not same_run(args, study, args.out):
        raise UserError(f"{args.out} holds a run of other inputs, models or options; "
                        "give a new -o/--out (or the same arguments to resume it)")

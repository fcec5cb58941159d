"""`virnuc-hpc predict`: plan + local run + reduce, for one machine or one container."""

from __future__ import annotations

from .plan_cmd import add_plan_options, plan_from_args
from .reduce_cmd import reduce_and_report
from .run_cmd import add_progress_options, progress_options


def add_parser(sub) -> None:
    p = sub.add_parser("predict", help="plan, run locally and reduce in one command",
                       description="The one-machine path: results land in OUT/results/.")
    p.add_argument("input", help="FASTA or FASTQ file: plain, gzip/bgzip, bzip2, xz or zstd")
    p.add_argument("-o", "--out", required=True, metavar="OUT", help="run directory")
    add_plan_options(p, run_dir_required=False)
    p.add_argument("--parallel", type=int, default=1, metavar="K")
    add_progress_options(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..rundir import RunDir, driving
    from ..runner import run_local

    with driving(RunDir(args.out), "predict"):
        _plan_or_resume(args)
        run_local(args.out, parallel=args.parallel, **progress_options(args))
        return reduce_and_report(args.out)


def _plan_or_resume(args) -> None:
    """Plan OUT, or resume it when it is a run of the same inputs, models and options."""
    from ..errors import UserError
    from ..plan import load_plan
    from ..rundir import RunDir

    if not RunDir(args.out).plan.exists():
        plan_from_args(args, args.out)
    elif plan_from_args(args, args.out, dry_run=True).fingerprint != \
            load_plan(args.out).fingerprint:
        raise UserError(f"{args.out} holds a run of other inputs, models or options; "
                        "give a new -o/--out (or the same arguments to resume it)")

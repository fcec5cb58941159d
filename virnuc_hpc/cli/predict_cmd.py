"""`virnuc-hpc predict`: plan + local run + reduce, for one machine or one container."""

from __future__ import annotations

from .options import (add_input_arguments, add_plan_options, add_progress_options,
                      add_report_option, plan_request, progress_options)


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
    from ..pipeline.predict import predict

    return predict(plan_request(args), args.out, parallel=args.parallel,
                   report=args.report, **progress_options(args))

"""`virnuc-hpc reduce`: verify every shard, then merge features and predictions."""

from __future__ import annotations

from .options import add_report_option


def add_parser(sub) -> None:
    p = sub.add_parser("reduce", help="verify every shard, then merge results",
                       description="Refuses partial output: any bad shard is named with its "
                                   "reason and the resubmit command.")
    p.add_argument("run_dir", metavar="RUN")
    p.add_argument("--tasks", nargs="+", metavar="PATH", default=None,
                   help="task folders written outside RUN/tasks/ (`run-task --out`), or folders "
                        "of them; each is matched to its shard by its DONE")
    add_report_option(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..pipeline.results import reduce_and_report

    return reduce_and_report(args.run_dir, report=args.report, tasks=args.tasks)

"""`virnuc-hpc reduce`: verify every shard, then merge features and predictions."""

from __future__ import annotations

import sys


def add_parser(sub) -> None:
    p = sub.add_parser("reduce", help="verify every shard, then merge results",
                       description="Refuses partial output: any bad shard is named with its "
                                   "reason and the resubmit command.")
    p.add_argument("run_dir", metavar="RUN")
    add_report_option(p)
    p.set_defaults(func=run)


def add_report_option(p) -> None:
    """--no-report (reduce, predict)."""
    p.add_argument("--no-report", dest="report", action="store_false",
                   help="skip report.html and prediction.png (a stale pair is removed); "
                        "`virnuc-hpc report RUN` writes them later")


def reduce_and_report(run_dir, report: bool = True) -> int:
    """Reduce, then write the run report (unless `report` is false); print the written files,
    or the bad shards and the fix (exit code 1). A report that cannot be drawn is a warning:
    the results stand."""
    from ..plan import load_plan
    from ..reduce.merge import reduce_run

    result = reduce_run(run_dir, fingerprints=load_plan(run_dir).models or None)
    if not result.ok:
        print(result.report(), file=sys.stderr)
        return 1
    print(result.report())
    summary = result.summary or {}
    print(f"{summary.get('input_sequences')} input sequences: {summary.get('predicted')} "
          f"predicted ({summary.get('virus_sequences')} virus), {summary.get('skipped')} skipped "
          f"{summary.get('skipped_by_reason', {})}"
          + (f", in {len(summary['samples'])} samples" if "samples" in summary else ""))
    if load_plan(run_dir).profile == "tiny":
        print("note: the tiny model profile is random weights: these results are NOT "
              "biologically meaningful (use --models real)")
    if report:
        _report(run_dir)
    else:
        print(f"report: skipped (--no-report); write it with `virnuc-hpc report {run_dir}`")
    return 0


def _report(run_dir) -> None:
    """Write the report and print its path, or the warning when it cannot be drawn."""
    from ..views.report import report_after_reduce
    from ..core.rundir import RunDir

    warning = report_after_reduce(run_dir)
    if warning:
        print(warning, file=sys.stderr)
    else:
        print(f"report: {RunDir(run_dir).report}")


def run(args) -> int:
    return reduce_and_report(args.run_dir, report=args.report)

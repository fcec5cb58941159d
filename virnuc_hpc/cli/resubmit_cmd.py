"""`virnuc-hpc resubmit`: rerun only failed, corrupt or missing shards."""

from __future__ import annotations

from .options import add_progress_options, parse_indices, progress_options


def add_parser(sub) -> None:
    p = sub.add_parser("resubmit", help="rerun only failed, corrupt or missing shards",
                       description="Works from disk; uses the executor the run was submitted "
                                   "with (local unless submitted to SLURM).")
    p.add_argument("run_dir", metavar="RUN")
    p.add_argument("--indices", metavar="I,J", help="these indices (default: every bad one)")
    p.add_argument("--parallel", type=int, default=1, metavar="K", help="local executor only")
    add_progress_options(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..pipeline.run import resubmit

    indices = resubmit(args.run_dir, parse_indices(args.indices), parallel=args.parallel,
                       **progress_options(args))
    print("nothing to resubmit: every shard is done, queued or running" if not indices else
          f"resubmitted shard(s) {','.join(map(str, indices))}")
    return 0

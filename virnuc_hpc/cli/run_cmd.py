"""`virnuc-hpc run`: every pending index as local processes, K at a time."""

from __future__ import annotations

from .options import add_progress_options, parse_indices, progress_options


def add_parser(sub) -> None:
    p = sub.add_parser("run", help="run pending shards locally, K at a time",
                       description="Each shard runs as its own process (its own GPU when "
                                   "there are GPUs). Exits non-zero naming failed indices.")
    p.add_argument("run_dir", metavar="RUN")
    p.add_argument("--executor", choices=("local",), default="local")
    p.add_argument("--parallel", type=int, default=1, metavar="K")
    p.add_argument("--indices", metavar="I,J", help="only these shard indices")
    add_progress_options(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..pipeline.run import run_pending

    outcome = run_pending(args.run_dir, parallel=args.parallel,
                          indices=parse_indices(args.indices), **progress_options(args))
    print(f"{len(outcome.tasks)} shard(s) ran; all succeeded. "
          f"next: virnuc-hpc reduce {args.run_dir}")
    return 0

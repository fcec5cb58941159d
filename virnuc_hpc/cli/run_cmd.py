"""`virnuc-hpc run`: every pending index as local processes, K at a time."""

from __future__ import annotations


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


def add_progress_options(p) -> None:
    """--quiet and --progress-interval (run, predict, resubmit)."""
    p.add_argument("--quiet", action="store_true",
                   help="no progress display (bars on a terminal, periodic lines otherwise)")
    p.add_argument("--progress-interval", type=float, default=30.0, metavar="SECONDS",
                   help="seconds between progress lines when not on a terminal (default 30)")


def progress_options(args) -> dict:
    from ..core.errors import ConfigError

    if args.progress_interval <= 0:
        raise ConfigError(f"--progress-interval must be positive, got {args.progress_interval}")
    return {"progress": "quiet" if args.quiet else "auto", "interval": args.progress_interval}


def parse_indices(text: str | None) -> list[int] | None:
    from ..core.errors import ConfigError

    if not text:
        return None
    try:
        return sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise ConfigError(f"--indices {text!r}: give comma-separated shard numbers, "
                          "e.g. 2,5") from None


def run(args) -> int:
    from ..plan import load_plan
    from ..core.rundir import RunDir, driver_lock
    from ..pipeline.run import run_local

    load_plan(args.run_dir)  # a run dir with a plan, or the error that says how to make one
    with driver_lock(RunDir(args.run_dir), "run"):
        outcome = run_local(args.run_dir, parallel=args.parallel,
                            indices=parse_indices(args.indices), **progress_options(args))
    print(f"{len(outcome.tasks)} shard(s) ran; all succeeded. "
          f"next: virnuc-hpc reduce {args.run_dir}")
    return 0

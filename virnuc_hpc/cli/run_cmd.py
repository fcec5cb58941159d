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
    p.set_defaults(func=run)


def parse_indices(text: str | None) -> list[int] | None:
    from ..errors import ConfigError

    if not text:
        return None
    try:
        return sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise ConfigError(f"--indices {text!r}: give comma-separated shard numbers, "
                          "e.g. 2,5") from None


def run(args) -> int:
    from ..runner import run_local

    outcome = run_local(args.run_dir, parallel=args.parallel, indices=parse_indices(args.indices))
    print(f"{len(outcome.tasks)} shard(s) ran; all succeeded. "
          f"next: virnuc-hpc reduce {args.run_dir}")
    return 0

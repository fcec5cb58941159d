"""`virnuc-hpc run-task`: what one array task runs."""

from __future__ import annotations

import os


def add_parser(sub) -> None:
    p = sub.add_parser("run-task", help="run one shard (what an array task runs)",
                       description="Idempotent: a verified shard is kept; otherwise resume from "
                                   "the last complete part.")
    p.add_argument("run_dir", metavar="RUN",
                   help="the run dir, or a shard's inputs folder (`virnuc-hpc export-shards`)")
    p.add_argument("--index", type=int, default=None,
                   help="shard index (default: $SLURM_ARRAY_TASK_ID)")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="write the task's parts, accounting and DONE into DIR instead of "
                        "RUN/tasks/I (RUN is then only read; `reduce RUN --tasks DIR` merges it)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.set_defaults(func=run)


def task_index(args) -> int:
    from ..core.errors import ConfigError

    if args.index is not None:
        return args.index
    if "SLURM_ARRAY_TASK_ID" in os.environ:
        return int(os.environ["SLURM_ARRAY_TASK_ID"])
    raise ConfigError("no shard index: give --index I (or run inside a SLURM array task)")


def run(args) -> int:
    from ..task.run import run_task, task_options

    result = run_task(args.run_dir, task_index(args), task_options(args.run_dir, args.device),
                      out=args.out)
    print(f"shard {result.index}: {result.status}, {result.rows} frames from "
          f"{result.sequences} sequences")
    return 0

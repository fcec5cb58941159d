"""`virnuc-hpc status`: per-shard state from what is on disk."""

from __future__ import annotations

import json


def add_parser(sub) -> None:
    p = sub.add_parser("status", help="per-shard state, rates and ETA, from disk",
                       description="Per-shard state from the files the tasks leave; on SLURM "
                                   "also the job's state and, for pending tasks, the "
                                   "scheduler's reason (Resources, Priority, ...; reasons "
                                   "that never clear are spelled out with the flags to "
                                   "change). squeue is asked at most every 30 s.")
    p.add_argument("run_dir", metavar="RUN")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--verify", action="store_true",
                   help="re-hash every part of done shards (slower; finds corrupt ones)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..status import format_table, run_status

    report = run_status(args.run_dir, deep=args.verify)
    print(json.dumps(report, indent=1) if args.json else format_table(report))
    return 0

"""`virnuc-hpc status`: per-shard state from what is on disk (and the scheduler's word)."""

from __future__ import annotations



def add_parser(sub) -> None:
    p = sub.add_parser("status", help="per-shard state, rates and ETA, from disk",
                       description="Per-shard state from the files the tasks leave; on SLURM "
                                   "also the job's state and, for pending tasks, the "
                                   "scheduler's reason (Resources, Priority, ...; reasons "
                                   "that never clear are spelled out with the flags to "
                                   "change). squeue is asked at most every 30 s.")
    p.add_argument("run_dir", metavar="RUN")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--by-sample", action="store_true",
                   help="one line per sample instead of per shard: sequences, shards it "
                        "spans, share done and state (from its shards'); with --json, a "
                        "`samples` list beside the shards")
    p.add_argument("--verify", action="store_true",
                   help="re-hash every part of done shards (slower; finds corrupt ones)")
    p.add_argument("--watch", nargs="?", type=float, const=30.0, default=None,
                   metavar="SECONDS",
                   help="redraw every SECONDS (default 30) until every shard is done or "
                        "failed; exit 1 unless all are done")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..views.status import show

    return show(args.run_dir, as_json=args.json, by_sample=args.by_sample, deep=args.verify,
                every=args.watch)

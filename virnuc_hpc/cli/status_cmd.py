"""`virnuc-hpc status`: per-shard state from what is on disk (and the scheduler's word)."""

from __future__ import annotations

import json
import sys
import time
from contextlib import contextmanager


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
    from ..core.errors import ConfigError
    from ..views.status import format_table, run_status, watch

    if args.watch is None:
        report = run_status(args.run_dir, deep=args.verify, by_sample=args.by_sample)
        print(json.dumps(report, indent=1) if args.json else format_table(report))
        return 0
    if args.watch <= 0:
        raise ConfigError(f"--watch must be a positive number of seconds, got {args.watch}")
    with _display(args) as show:
        final = watch(args.run_dir, args.watch, show, deep=args.verify,
                      by_sample=args.by_sample)
    return 0 if all(s["state"] == "done" for s in final["shards"]) else 1


@contextmanager
def _display(args):
    """JSON lines with --json; on a terminal one table redrawn in place; elsewhere a
    timestamped table each time."""
    from ..views.status import format_table

    def text(report: dict) -> str:
        return (f"{args.run_dir} at {time.strftime('%H:%M:%S')}, every {args.watch:g} s "
                f"(Ctrl-C stops watching; the run goes on)\n{format_table(report)}")

    if args.json:
        yield lambda report: print(json.dumps(report), flush=True)
    elif not sys.stdout.isatty():
        yield lambda report: print(text(report) + "\n", flush=True)
    else:
        from rich.live import Live
        from rich.text import Text

        with Live(auto_refresh=False) as live:
            yield lambda report: live.update(Text(text(report)), refresh=True)

"""`virnuc-hpc export-shards`: each shard's inputs as a folder its task can run from alone."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("export-shards", help="each shard's inputs as a folder of its own",
                       description="Writes DIR/<index>/ per shard (its manifest, its slice of "
                                   "the run's sequences, the run's settings) and DIR/shards.tsv "
                                   "(each task's GPU, time limit and memory), so that a task "
                                   "runs where only that folder, an output folder and the "
                                   "model cache are: `virnuc-hpc run-task DIR/00000 --index 0 "
                                   "--out TASK`, then `virnuc-hpc reduce RUN --tasks TASK ...`.")
    p.add_argument("run_dir", metavar="RUN")
    p.add_argument("--to", metavar="DIR", required=True, help="where the folders go")
    p.add_argument("--indices", default=None,
                   help="only these shards, comma-separated (default: all)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..plan.export import export_shards
    from .options import parse_indices

    jobs = export_shards(args.run_dir, args.to,
                         None if args.indices is None else parse_indices(args.indices))
    for job in jobs:
        print(f"shard {job.shard}: {args.to}/{job.inputs} ({job.sequences} sequences, "
              f"~{job.minutes_est:.1f} min; ask {job.runtime_min} min, {job.mem_mb} MB, "
              f"{job.gpus} GPU)")
    return 0

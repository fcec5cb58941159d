"""`virnuc-hpc plan`: cut the input (one file, several, or a sample sheet) into shards of
equal work, sized by GPU time for where the tasks will run."""

from __future__ import annotations

from .options import add_input_arguments, add_plan_options, plan_request


def add_parser(sub) -> None:
    p = sub.add_parser("plan", help="cut the input into shards of equal work (manifests)",
                       description="Read the inputs once and write one manifest per shard and "
                                   "plan.json (with the run's fingerprint). Several files or a "
                                   "sample sheet are packed together and give per-sample "
                                   "results (RUN/results/<sample>/). The run's precision and "
                                   "the shards' size are settled here, for this machine or "
                                   "for the cluster of --profile.")
    add_input_arguments(p)
    add_plan_options(p)
    p.add_argument("--profile", metavar="NAME|FILE.yaml",
                   help="plan for the tasks of this submit profile (its partition's GPUs, time "
                        "limit and array parallelism); default: this machine")
    p.add_argument("--dry-run", action="store_true",
                   help="print the table (samples, then shards), write nothing")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..executors.profiles import load_profile
    from ..pipeline.planning import plan_for

    profile = load_profile(args.profile) if args.profile is not None else None
    plan = plan_for(plan_request(args), args.run_dir, profile, dry_run=args.dry_run)
    print(plan.table())
    if not args.dry_run:
        print(f"planned {len(plan.shards)} shards in {args.run_dir}; next: "
              f"virnuc-hpc run {args.run_dir}  (or: virnuc-hpc submit ... on SLURM)")
    return 0

"""`virnuc-hpc plan`: bin-pack the input into shard manifests."""

from __future__ import annotations

from ..sequences import CHUNK_SIZES


def add_parser(sub) -> None:
    p = sub.add_parser("plan", help="bin-pack the input by cost into shard manifests",
                       description="Read the input once and write one manifest per shard and "
                                   "plan.json (with the run's fingerprint).")
    p.add_argument("input", help="FASTA or FASTQ file: plain, gzip/bgzip, bzip2, xz or zstd")
    add_plan_options(p)
    p.add_argument("--dry-run", action="store_true", help="print the table, write nothing")
    p.set_defaults(func=run)


def add_plan_options(p, run_dir_required: bool = True) -> None:
    """Options shared by plan, submit and predict."""
    if run_dir_required:
        p.add_argument("--run-dir", required=True, metavar="RUN")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--shards", type=int, metavar="N")
    size.add_argument("--sequences-per-shard", type=int, metavar="K")
    p.add_argument("--chunk-size", type=int, choices=CHUNK_SIZES, default=500)
    p.add_argument("--models", default="real", metavar="PROFILE",
                   help="model profile: real (the published weights) or tiny (tests, demo)")
    p.add_argument("--config", metavar="FILE.yaml",
                   help="run options (precision, tokens_per_batch, part_rows, compile); "
                        "flags win")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"))
    p.add_argument("--tokens-per-batch", type=int, metavar="N")
    p.add_argument("--compile", action="store_true", default=None,
                   help="torch.compile the ESM-2 layers (bf16/fp16 only; GPU runs)")


def plan_from_args(args, run_dir, dry_run: bool = False):
    from ..runconfig import load_config
    from ..plan import plan_input

    from ..models.cache import profile_fingerprints

    config = load_config(args.config, precision=args.precision,
                         tokens_per_batch=args.tokens_per_batch, compile=args.compile)
    return plan_input(args.input, run_dir, shards=args.shards,
                      sequences_per_shard=args.sequences_per_shard, chunk_size=args.chunk_size,
                      profile=args.models, config=config.as_dict(), dry_run=dry_run,
                      model_identities=profile_fingerprints(args.models, args.chunk_size))


def run(args) -> int:
    plan = plan_from_args(args, args.run_dir, dry_run=args.dry_run)
    print(plan.table())
    if not args.dry_run:
        print(f"planned {len(plan.shards)} shards in {args.run_dir}; next: "
              f"virnuc-hpc run {args.run_dir}  (or: virnuc-hpc submit ... on SLURM)")
    return 0

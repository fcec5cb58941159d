"""`virnuc-hpc plan`: bin-pack the input (one file, several, or a sample sheet) into shard
manifests."""

from __future__ import annotations

from ..sequences import CHUNK_SIZES


def add_parser(sub) -> None:
    p = sub.add_parser("plan", help="bin-pack the input by cost into shard manifests",
                       description="Read the inputs once and write one manifest per shard and "
                                   "plan.json (with the run's fingerprint). Several files or a "
                                   "sample sheet are packed together and give per-sample "
                                   "results (RUN/results/<sample>/).")
    add_input_arguments(p)
    add_plan_options(p)
    p.add_argument("--dry-run", action="store_true",
                   help="print the table (samples, then shards), write nothing")
    p.set_defaults(func=run)


def add_input_arguments(p) -> None:
    """The inputs of plan, submit and predict: files, or a sample sheet."""
    p.add_argument("inputs", nargs="*", metavar="INPUT",
                   help="FASTA or FASTQ file(s): plain, gzip/bgzip, bzip2, xz or zstd; several "
                        "files are several samples, each named by its file name without "
                        "extensions")
    p.add_argument("--samplesheet", metavar="SAMPLES.csv",
                   help="the samples in a CSV sheet (nf-core style): a header line with "
                        "columns sample,fasta (other columns are kept as metadata), then one "
                        "sample per line; relative paths are read from the sheet's folder")


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


def study_from(args):
    """The samples the command line names, every file and sheet row checked (nothing is
    written before this)."""
    from ..samples import study_from_args

    return study_from_args(args.inputs, args.samplesheet)


def _options(args) -> dict:
    from ..models.cache import profile_fingerprints
    from ..runconfig import load_config

    config = load_config(args.config, precision=args.precision,
                         tokens_per_batch=args.tokens_per_batch, compile=args.compile)
    return {"chunk_size": args.chunk_size, "profile": args.models, "config": config.as_dict(),
            "model_identities": profile_fingerprints(args.models, args.chunk_size)}


def plan_from_args(args, study, run_dir, dry_run: bool = False):
    from ..plan import plan_input

    return plan_input(study, run_dir, shards=args.shards,
                      sequences_per_shard=args.sequences_per_shard, dry_run=dry_run,
                      **_options(args))


def same_run(args, study, run_dir) -> bool:
    """Whether RUN's plan is of these inputs, models and options (the files are hashed,
    not read again)."""
    from ..plan import load_plan, study_fingerprint

    return study_fingerprint(study, **_options(args)) == load_plan(run_dir).fingerprint


def run(args) -> int:
    study = study_from(args)
    plan = plan_from_args(args, study, args.run_dir, dry_run=args.dry_run)
    print(plan.table())
    if not args.dry_run:
        print(f"planned {len(plan.shards)} shards in {args.run_dir}; next: "
              f"virnuc-hpc run {args.run_dir}  (or: virnuc-hpc submit ... on SLURM)")
    return 0

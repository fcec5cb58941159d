"""`virnuc-hpc plan`: cut the input (one file, several, or a sample sheet) into shards of
equal work, sized by GPU time for where the tasks will run."""

from __future__ import annotations

from ..core.config import DEFAULT_FEATURES, FEATURES, PRECISION_CHOICES
from ..sequences import CHUNK_SIZES


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
    p.add_argument("--task-minutes", type=float, metavar="M",
                   help="size shards as tasks of about M minutes of GPU time, model load "
                        "included (default 45; within the time limit; ignored with --shards "
                        "or --sequences-per-shard)")
    p.add_argument("--chunk-size", type=int, choices=CHUNK_SIZES, default=500)
    p.add_argument("--models", default="real", metavar="PROFILE",
                   help="model profile: real (the published weights) or tiny (tests, demo)")
    p.add_argument("--config", metavar="FILE.yaml",
                   help="run options (precision, tokens_per_batch, part_rows, compile, "
                        "features, dedup, invariant, chunk_tokens, group_tokens); flags win")
    p.add_argument("--precision", choices=PRECISION_CHOICES,
                   help="auto (default): bf16 where the tasks' GPUs run it (compute capability "
                        "8.0+), fp16 on older GPUs, fp32 without a GPU; fp32 is the reference "
                        "path, for exact parity with the original tool")
    p.add_argument("--tokens-per-batch", type=int, metavar="N",
                   help="padded tokens per encoder batch (default: sized from the GPU's free "
                        "memory; 4096 on a CPU)")
    p.add_argument("--no-dedup", dest="dedup", action="store_false", default=None,
                   help="compute every read and frame, identical ones included (by default "
                        "identical reads, run-wide, and identical frames are computed once)")
    p.add_argument("--no-invariant", dest="invariant", action="store_false", default=None,
                   help="length-sorted batches instead of fixed shapes: a frame's last bits "
                        "may then depend on what shares its batch (by default they never do: "
                        "README, One answer whatever the cut)")
    p.add_argument("--compile", action="store_true", default=None,
                   help="torch.compile the ESM-2 layers (bf16/fp16 only; GPU runs)")
    p.add_argument("--features", choices=FEATURES,
                   help=f"what the parts keep of each kept frame's 768 + 2560 features "
                        f"(default {DEFAULT_FEATURES}: only the scores, all VirNucPro's files, "
                        "the report and status need): fp32 (13,312 bytes a frame) or fp16 "
                        "(6,656, within 1e-3) to cluster or train on them; the scores and "
                        "every results file are the same for all three")


def study_from(args):
    """The samples the command line names, every file and sheet row checked (nothing is
    written before this)."""
    from ..plan.samples import study_from_args

    return study_from_args(args.inputs, args.samplesheet)


def settled_config(args, target, recorded=None):
    """(RunConfig, Settled): flags over the config file; `auto` settled for `target`."""
    from ..plan.settle import settle_config

    return settle_config(args.config, target, recorded, precision=args.precision,
                         tokens_per_batch=args.tokens_per_batch, compile=args.compile,
                         dedup=args.dedup, invariant=args.invariant,
                         features=args.features)


def _options(args, config) -> dict:
    from ..models.cache import profile_fingerprints

    return {"chunk_size": args.chunk_size, "profile": args.models, "config": config.as_dict(),
            "model_identities": profile_fingerprints(args.models, args.chunk_size)}


def local_target(args, parallel: int | None = None):
    """This machine, as the tasks' target (plan without --profile, predict)."""
    from ..plan.devices import local_target as here

    return here(parallel, args.task_minutes)


def profile_target(args, profile):
    from ..plan.devices import target_for

    return target_for(profile, args.task_minutes)


def plan_from_args(args, study, run_dir, target, dry_run: bool = False):
    from ..plan import plan_input

    config, settled = settled_config(args, target)
    return plan_input(study, run_dir, shards=args.shards,
                      sequences_per_shard=args.sequences_per_shard, dry_run=dry_run,
                      target=target, precision_note=settled.why, **_options(args, config))


def same_run(args, study, run_dir) -> bool:
    """Whether RUN's plan is of these inputs, models and options (the files are hashed,
    not read again); `--precision auto` accepts the precision the plan settled."""
    from ..plan import load_plan, study_fingerprint
    plan = load_plan(run_dir)
    config, _ = settled_config(args, None, recorded=plan.config)
    return study_fingerprint(study, **_options(args, config)) == plan.fingerprint


def run(args) -> int:
    study = study_from(args)
    target = local_target(args)
    if args.profile is not None:
        from ..executors.profiles import load_profile

        target = profile_target(args, load_profile(args.profile))
    plan = plan_from_args(args, study, args.run_dir, target, dry_run=args.dry_run)
    print(plan.table())
    if not args.dry_run:
        print(f"planned {len(plan.shards)} shards in {args.run_dir}; next: "
              f"virnuc-hpc run {args.run_dir}  (or: virnuc-hpc submit ... on SLURM)")
    return 0

"""Arguments shared by several commands (argparse only), and the request they make."""

from __future__ import annotations

from ..core.config import DEFAULT_FEATURES, FEATURES, PRECISION_CHOICES
from ..sequences import CHUNK_SIZES

# The run options that flags give (RunConfig's fields; a config file gives any of them)
RUN_OPTION_FLAGS = ("precision", "tokens_per_batch", "compile", "dedup", "invariant",
                    "features")


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


def plan_request(args):
    """The run the command line asks for (pipeline.planning.PlanRequest): every input file and
    sheet row checked, nothing written."""
    from ..pipeline.planning import PlanRequest
    from ..plan.samples import study_from_args

    return PlanRequest(study_from_args(args.inputs, args.samplesheet), args.chunk_size,
                       args.models, args.shards, args.sequences_per_shard, args.task_minutes,
                       args.config, {name: getattr(args, name) for name in RUN_OPTION_FLAGS})


def add_progress_options(p) -> None:
    """--quiet and --progress-interval (run, predict, resubmit)."""
    p.add_argument("--quiet", action="store_true",
                   help="no progress display (bars on a terminal, periodic lines otherwise)")
    p.add_argument("--progress-interval", type=float, default=30.0, metavar="SECONDS",
                   help="seconds between progress lines when not on a terminal (default 30)")


def progress_options(args) -> dict:
    from ..core.errors import ConfigError

    if args.progress_interval <= 0:
        raise ConfigError(f"--progress-interval must be positive, got {args.progress_interval}")
    return {"progress": "quiet" if args.quiet else "auto", "interval": args.progress_interval}


def parse_indices(text: str | None) -> list[int] | None:
    from ..core.errors import ConfigError

    if not text:
        return None
    try:
        return sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise ConfigError(f"--indices {text!r}: give comma-separated shard numbers, "
                          "e.g. 2,5") from None


def add_report_option(p) -> None:
    """--no-report (reduce, predict)."""
    p.add_argument("--no-report", dest="report", action="store_false",
                   help="skip report.html and prediction.png (a stale pair is removed); "
                        "`virnuc-hpc report RUN` writes them later")

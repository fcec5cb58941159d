"""`virnuc-hpc bench`: encoder throughput on the real architectures with random weights
(the library is virnuc_hpc/models/bench.py)."""

from __future__ import annotations

from ..models.registry import BENCH_MODELS as MODELS


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="encoder throughput with random weights (plan GPU-hours)",
                       description="Tokens/s, sequences/s, peak memory and MFU of ESM-2 or "
                                   "DNABERT-S on synthetic 300/500-bp workloads.")
    p.add_argument("--model", required=True, choices=MODELS, metavar="NAME",
                   help=f"one of: {', '.join(MODELS)}")
    p.add_argument("--random-weights", action="store_true",
                   help="build the architecture with random weights (required: the only mode)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="auto: cuda when a GPU is visible, else cpu")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"),
                   help="default bf16 on cuda, fp32 on cpu")
    p.add_argument("--tokens-per-batch", type=int, metavar="N")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the ESM-2 layers (bf16/fp16; compiled in the warm-up)")
    p.add_argument("--no-invariant", dest="invariant", action="store_false",
                   help="length-sorted batches (the default runs fixed shapes, as runs do)")
    p.add_argument("--chunk-size", type=int, choices=(300, 500), default=300)
    p.add_argument("--sequences", type=int, default=2000, metavar="N")
    p.add_argument("--repeats", type=int, default=3, help="timed passes; the median is reported")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON object instead")
    p.set_defaults(func=run)


def run(args) -> int:
    import json
    from dataclasses import asdict

    import torch

    from ..models.bench import bench
    from ..core.errors import ConfigError

    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if not args.random_weights:
        raise ConfigError("bench needs --random-weights (throughput does not depend on the "
                          "weight values); add --random-weights")
    if args.sequences < 1 or args.repeats < 1:
        raise ConfigError("--sequences and --repeats must be >= 1")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda but no CUDA GPU is visible; run on a GPU node or "
                          "give --device cpu")
    precision = args.precision or ("bf16" if args.device == "cuda" else "fp32")
    result = bench(args.model, args.device, precision, args.tokens_per_batch,
                   args.chunk_size, args.sequences, args.repeats, args.seed, args.compile,
                   args.invariant)
    print(json.dumps(asdict(result)) if args.json else report(result))
    if args.device == "cuda" and args.model in ("esm2-3b", "esm2_t36_3B_UR50D"):
        _record(asdict(result))
    return 0


def _record(result: dict) -> None:
    """A GPU figure for ESM-2 3B becomes the one `plan` estimates GPU hours with."""
    import sys

    from ..plan.throughput import record_measurement

    try:
        path = record_measurement(result)
    except OSError as exc:
        print(f"not recorded for plan's estimates ({exc})", file=sys.stderr)
        return
    print(f"recorded for plan's GPU-hour estimates: {path}", file=sys.stderr)


def report(r) -> str:
    arch = "fused SDPA attention" if r.precision != "fp32" else "reference forward"
    arch += ", torch.compile per layer" if r.compiled else ""
    batches = ("fixed shapes (invariant), attention padding "
               f"{r.attention_padding:.1%}" if r.invariant else "length-sorted")
    passes = ", ".join(f"{s:.3f}" for s in r.pass_s)
    unit = "proteins" if r.model != "dnabert-s" else "token sequences"
    lines = [
        f"model        {r.model}, random weights (throughput only; outputs meaningless)",
        f"device       {r.device}",
        f"precision    {r.precision}, {arch}, tokens_per_batch {r.tokens_per_batch}",
        f"batches      {batches}",
        f"workload     {r.sequences} {unit} from {r.chunk_size}-bp chunks, "
        f"{r.tokens} tokens ({r.residues} without specials), padding {r.padding_fraction:.1%}",
        f"tokenize     {r.tokenize_s:.3f} s (not included below)",
        f"warm-up      {r.warmup_s:.3f} s ({min(r.sequences, 512)} sequences"
        f"{', compilation included' if r.compiled else ''}; not included below)",
        f"passes (s)   {passes} (median used)",
        f"throughput   {r.tokens_per_s:,.0f} tokens/s, {r.residues_per_s:,.0f} residues/s, "
        f"{r.sequences_per_s:,.1f} sequences/s",
        f"compute      {r.useful_tflops:.3f} useful TFLOP/s; MFU {r.mfu:.3f} of the measured "
        f"{r.matmul_dtype} matmul rate {r.matmul_tflops:.3f} TFLOP/s"
        + (" (CPU: fp32 reference, no bf16 peak)" if r.device.startswith("cpu") else ""),
        f"peak memory  {r.peak_memory_gib:.2f} GiB ({r.peak_memory_kind})",
    ]
    return "\n".join(lines)

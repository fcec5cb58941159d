"""The `bench` grid for docs/performance.md: both models x 300/500-bp chunks x token budgets.

    .venv/bin/python bench/bench_models.py --device cuda                # on a GPU node
    .venv/bin/python bench/bench_models.py --device cpu --sequences 64 \\
        --model esm2_t6_8M_UR50D --model dnabert-s --budget 4096         # CPU smoke figures

Prints one markdown row per configuration (the same figures as `virnuc-hpc bench`), with the
targets from docs/gpu-ceilings.md for comparison: ESM-2 3B >= 70,000 residues/s (goal 95,000),
DNABERT-S >= 10,000 sequences/s (goal 15,000), bf16 on one H100.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from virnuc_hpc.models.bench import bench  # noqa: E402
from virnuc_hpc.models.registry import BENCH_MODELS as MODELS  # noqa: E402

HEADER = ("| model | device | precision | chunk | budget | residues/s | tokens/s | seq/s | "
          "MFU (vs matmul) | peak GiB | pad |\n|---|---|---|---|---|---|---|---|---|---|---|")


def row(r) -> str:
    return (f"| {r.model} | {r.device} | {r.precision} | {r.chunk_size} | {r.tokens_per_batch} | "
            f"{r.residues_per_s:,.0f} | {r.tokens_per_s:,.0f} | {r.sequences_per_s:,.1f} | "
            f"{r.mfu:.3f} ({r.matmul_dtype} {r.matmul_tflops:.2f} TFLOP/s) | "
            f"{r.peak_memory_gib:.2f} | {r.padding_fraction:.1%} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda")
    parser.add_argument("--model", action="append", choices=MODELS,
                        help="repeatable; default esm2-3b and dnabert-s")
    parser.add_argument("--precision", action="append", choices=("fp32", "bf16", "fp16"),
                        help="repeatable; default bf16 on cuda, fp32 on cpu")
    parser.add_argument("--budget", action="append", type=int,
                        help="tokens per batch, repeatable; default 8192 32768 65536 on cuda")
    parser.add_argument("--chunk-size", action="append", type=int, choices=(300, 500))
    parser.add_argument("--sequences", type=int, default=4000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    gpu = args.device == "cuda"
    print(HEADER)
    for model in args.model or ["esm2-3b", "dnabert-s"]:
        for precision in args.precision or (["bf16"] if gpu else ["fp32"]):
            for chunk in args.chunk_size or [300, 500]:
                for budget in args.budget or ([8192, 32768, 65536] if gpu else [4096]):
                    result = bench(model, args.device, precision, budget, chunk,
                                   args.sequences, args.repeats)
                    print(row(result), flush=True)


if __name__ == "__main__":
    main()

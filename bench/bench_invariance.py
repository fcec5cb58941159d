"""What fixed-shape (invariant) batches cost against length-sorted ones: padding, and CPU time.

    python bench/bench_invariance.py [--reads 100000] [--timed-reads 5000] [--part-rows 2048]

Two inputs: the bundled example (examples/reads.fa, chunks of 500 bp) and `--reads` reads of
150 bp sampled from the real genomes of tests/data/genomes (a phage, an RNA virus, a bacterium).

1. **Padding**, part by part (parts of `--part-rows` frames, as tasks cut them), for ESM-2
   (tokens: residues + 2, exact) and DNABERT-S (tokens: about one per 4 bp + 2, as `bench`
   assumes; the real tokenizer is not here):
   - sorted: the padded tokens of length-sorted batches of a 32k-token budget (a GPU's);
   - invariant: the padding of the token-wise calls (the last chunk of each batch) and of the
     attention calls (widths rounded up, empty group slots), at the GPU shapes and the CPU ones;
   - the compute either costs, as ESM-2 3B's FLOPs (token-wise 24 E^2 per row, attention
     4 E W per position of width W), over the FLOPs of the unpadded tokens.
2. **CPU time** of the tiny models on `--timed-reads` of the 150-bp reads and on the example:
   frames/s of the whole frame pipeline (both encoders and the classifier) with sorted batches
   (two threads: this machine's default) and invariant ones (one thread, by design), and the
   sorted ones at one thread.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

EXAMPLE = REPO / "examples" / "reads.fa"
ESM_DIM = 2560  # ESM-2 3B's width, for the FLOP model
GPU_BUDGET = 32768


def frames_of(records, chunk_size: int):
    from virnuc_hpc.sequences import prepare

    return [f for p in prepare(records, chunk_size) for f in p.frames]


def example_frames():
    from virnuc_hpc.sequences.reader import iter_records

    return frames_of(iter_records(EXAMPLE), 500)


def short_read_frames(n: int):
    from tests.invariance.genomes import sample_reads
    from virnuc_hpc.sequences.reader import Record

    reads = sample_reads(np.random.default_rng(0), n, 150, 150)
    return frames_of((Record(rid, seq, i, 1) for i, (rid, seq) in enumerate(reads)), 500)


def token_lengths(frames) -> dict[str, list[int]]:
    return {"esm": [len(f.protein) + 2 for f in frames],
            "dnabert": [-(-len(f.nucleotide) // 4) + 2 for f in frames]}


def flops(rows: int, positions: list[tuple[int, int]]) -> float:
    """ESM-2 3B-like FLOPs of `rows` token-wise rows and attention over (width, positions)."""
    return 24 * ESM_DIM**2 * rows + sum(4 * ESM_DIM * w * p for w, p in positions)


def sorted_cost(lengths: list[int], budget: int) -> tuple[float, float]:
    """(padding share, FLOPs over the unpadded FLOPs) of length-sorted batches."""
    from virnuc_hpc.models.encoders import token_batches

    rows, positions = 0, []
    for batch in token_batches(lengths, budget):
        width = max(lengths[i] for i in batch)
        rows += width * len(batch)
        positions.append((width, width * len(batch)))
    return 1 - sum(lengths) / rows, flops(rows, positions) / ideal(lengths)


def ideal(lengths: list[int]) -> float:
    return flops(sum(lengths), [(n, n) for n in lengths])


def invariant_cost(lengths: list[int], shapes, budget: int) -> tuple[float, float, float]:
    """(token-wise padding share, attention padding share, FLOPs over unpadded FLOPs)."""
    from virnuc_hpc.models.encoders import packed_batches
    from virnuc_hpc.models.packed import padding

    batches = packed_batches(lengths, budget, shapes.chunk_tokens)
    gemm, attention = padding(lengths, shapes, batches)
    rows = sum(lengths) / (1 - gemm)
    positions = []
    for batch in batches:
        widths: dict[int, int] = {}
        for i in batch:
            widths[shapes.width(lengths[i])] = widths.get(shapes.width(lengths[i]), 0) + 1
        for width, count in widths.items():
            per = shapes.group_rows(width)
            positions.append((width, -(-count // per) * per * width))
    return gemm, attention, flops(int(rows), positions) / ideal(lengths)


def ladder_cost(lengths: list[int], shapes, budget: int) -> tuple[float, float, float]:
    """The alternative: whole batches of a fixed shape per width, [budget // W, W] (padded
    rows where a batch is short): (token padding share, the same, FLOPs over unpadded)."""
    widths: dict[int, int] = {}
    for n in lengths:
        widths[shapes.width(n)] = widths.get(shapes.width(n), 0) + 1
    rows, positions = 0, []
    for width, count in widths.items():
        per = max(1, budget // width)
        padded = -(-count // per) * per * width
        rows += padded
        positions.append((width, padded))
    pad = 1 - sum(lengths) / rows
    return pad, pad, flops(rows, positions) / ideal(lengths)


def by_parts(lengths: list[int], part_rows: int, cost, *args) -> tuple[float, ...]:
    """`cost` of each part, weighted by its tokens (a task embeds part by part)."""
    parts = [lengths[i:i + part_rows] for i in range(0, len(lengths), part_rows)]
    weights = np.array([sum(p) for p in parts], dtype=float)
    values = np.array([cost(p, *args) for p in parts])
    return tuple((values * weights[:, None]).sum(0) / weights.sum())


def padding_table(name: str, frames, part_rows: int) -> list[str]:
    from virnuc_hpc.core.shapes import CPU_SHAPES, GPU_SHAPES

    rows = []
    for encoder, lengths in token_lengths(frames).items():
        pad, cost = by_parts(lengths, part_rows, sorted_cost, GPU_BUDGET)
        rows.append(f"| {name} | {encoder} | sorted, 32k budget | {pad:.1%} | {pad:.1%} | "
                    f"{cost:.3f} |")
        for label, shapes in (("GPU", GPU_SHAPES), ("CPU", CPU_SHAPES)):
            gemm, attention, cost = by_parts(lengths, part_rows, invariant_cost, shapes,
                                             GPU_BUDGET)
            rows.append(f"| {name} | {encoder} | invariant, {label} shapes "
                        f"({shapes.chunk_tokens}/{shapes.group_tokens}) | {gemm:.1%} | "
                        f"{attention:.1%} | {cost:.3f} |")
        for budget in (8192, GPU_BUDGET):
            gemm, _, cost = by_parts(lengths, part_rows, ladder_cost, GPU_SHAPES, budget)
            rows.append(f"| {name} | {encoder} | alternative: fixed [{budget // 1024}k/W, W] "
                        f"batches | {gemm:.1%} | {gemm:.1%} | {cost:.3f} |")
    return rows


def frames_per_s(frames, shapes, threads: int, repeats: int = 3) -> float:
    import torch

    from virnuc_hpc.models import LoadedModels, resolve_profile
    from virnuc_hpc.core.config import RunConfig
    from virnuc_hpc.task.frames import FramePipeline
    from virnuc_hpc.task.run import TaskOptions

    torch.set_num_threads(threads)
    with LoadedModels(resolve_profile("tiny", 500)) as models:
        config = RunConfig(invariant=shapes is not None,
                           **({} if shapes is None else shapes.__dict__))
        pipeline = FramePipeline(models, TaskOptions(config))
        parts = [frames[i:i + 2048] for i in range(0, len(frames), 2048)]
        pipeline(parts[0][:64])   # warm-up
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            for part in parts:
                pipeline(part)
            best = min(best, time.perf_counter() - start)
    return len(frames) / best


def timing_table(name: str, frames) -> list[str]:
    from virnuc_hpc.core.shapes import CPU_SHAPES

    rows = []
    sorted2 = frames_per_s(frames, None, 2)
    for label, shapes, threads in (("sorted", None, 2), ("sorted", None, 1),
                                   ("invariant, CPU shapes", CPU_SHAPES, 2)):
        rate = sorted2 if (shapes, threads) == (None, 2) else frames_per_s(frames, shapes,
                                                                             threads)
        used = 1 if shapes is not None else threads
        rows.append(f"| {name} | {label} | {used} | {rate:,.0f} | {rate / sorted2:.2f} |")
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=100_000)
    parser.add_argument("--timed-reads", type=int, default=5_000)
    parser.add_argument("--part-rows", type=int, default=2048)
    args = parser.parse_args(argv)
    example, reads = example_frames(), short_read_frames(args.reads)
    print(f"example: {len(example)} kept frames; {args.reads:,} reads of 150 bp: "
          f"{len(reads):,} kept frames; parts of {args.part_rows}\n")
    print("| input | encoder | batches | token-wise padding | attention padding | "
          "ESM-2 3B FLOPs / unpadded |")
    print("|---|---|---|---|---|---|")
    for line in padding_table("example", example, args.part_rows) + \
            padding_table(f"{args.reads:,} x 150 bp", reads, args.part_rows):
        print(line)
    timed = short_read_frames(args.timed_reads)
    print(f"\nCPU, tiny models, whole frame pipeline ({len(timed):,} frames of "
          f"{args.timed_reads:,} reads; example {len(example)} frames), best of 3\n")
    print("| input | batches | threads used | frames/s | vs sorted at 2 threads |")
    print("|---|---|---|---|---|")
    for line in timing_table("example", example) + timing_table(
            f"{args.timed_reads:,} x 150 bp", timed):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""RSS over a long tiny-profile embed run: does memory stay flat after the first batch?

    .venv/bin/python bench/bench_embed_rss.py [--sequences 20000] [--model tiny-esm2|tiny-dnabert-s]

Runs the embedding engine over synthetic 300-bp-sized inputs (proteins of 90-100 aa for ESM,
300-bp DNA for DNABERT-S), reads the process RSS after every batch, and prints the growth after
the first batch (target < 5%). The output rows go into a preallocated, pre-touched array so that
only the engine's own memory can grow. Uses VIRNUC_HPC_CACHE (tiny models are generated there).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from virnuc_hpc.models.encoders import open_encoder

PAGE = 4096


def rss_mib() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * PAGE / 2**20


def workload(model: str, n: int, rng: np.random.Generator) -> list[str]:
    if "esm" in model:
        letters = np.frombuffer(b"ACDEFGHIKLMNPQRSTVWY", dtype=np.uint8)
        sizes = rng.integers(90, 101, size=n)
        return [letters[rng.integers(0, 20, size=s)].tobytes().decode() for s in sizes]
    letters = np.frombuffer(b"ACGT", dtype=np.uint8)
    return [letters[rng.integers(0, 4, size=300)].tobytes().decode() for _ in range(n)]


def measure(model: str, n: int, budget: int) -> None:
    encoder = open_encoder(model, tokens_per_batch=budget)
    tokens = encoder.tokenize(workload(model, n, np.random.default_rng(0)))
    out = np.ones((n, encoder.dim), dtype=np.float32)  # touched now, not during the run
    samples, start = [], time.perf_counter()
    for batch, rows in encoder.iter_embed(tokens):
        out[batch] = rows
        samples.append(rss_mib())
    elapsed = time.perf_counter() - start
    first, peak, last = samples[0], max(samples), samples[-1]
    print(f"{model}: {n} sequences, {len(samples)} batches (budget {budget} tokens), "
          f"{elapsed:.1f} s, {n / elapsed:,.0f} seq/s")
    print(f"  RSS after first batch {first:.1f} MiB, peak {peak:.1f} MiB, last {last:.1f} MiB")
    print(f"  growth after the first batch: peak {100 * (peak / first - 1):+.2f}%, "
          f"last {100 * (last / first - 1):+.2f}% (target < 5%)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=20000)
    parser.add_argument("--model", action="append", choices=("tiny-esm2", "tiny-dnabert-s"))
    parser.add_argument("--tokens-per-batch", type=int, default=4096)
    args = parser.parse_args()
    for model in args.model or ["tiny-esm2", "tiny-dnabert-s"]:
        measure(model, args.sequences, args.tokens_per_batch)


if __name__ == "__main__":
    main()

"""Planner at scale: time, peak memory and shard imbalance for N synthetic reads.

    .venv/bin/python bench/bench_plan.py [N] [--shards S] [--kind fixed|variable|both] [--keep DIR]

Writes a FASTA of N reads (fixed: 150 bp each; variable: log-normal lengths, median ~250 bp,
clipped to 50..20,000 bp, so costs of 1..40 chunks at 500 bp), plans it, and prints planning
seconds, peak RSS of this process (getrusage; the generator streams in blocks so it stays
small; it runs in a child process anyway) and the imbalance (max/mean chunks per shard).
Figures go in the closing note.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from virnuc_hpc.plan import plan_input  # noqa: E402

BLOCK = 50_000
ACGT = np.frombuffer(b"ACGT", dtype=np.uint8)


def read_lengths(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "fixed":
        return np.full(n, 150)
    return np.clip(rng.lognormal(5.5, 0.8, n), 50, 20_000).astype(np.int64)


def write_reads(path: Path, kind: str, n: int, seed: int = 0) -> int:
    """Stream N random reads to a FASTA file (one sequence line each); returns bytes written."""
    rng = np.random.default_rng(seed)
    written = 0
    with open(path, "wb") as out:
        for start in range(0, n, BLOCK):
            lengths = read_lengths(kind, min(BLOCK, n - start), rng)
            bases = ACGT[rng.integers(0, 4, int(lengths.sum()), dtype=np.uint8)].tobytes()
            ends = np.cumsum(lengths).tolist()
            starts = [0, *ends[:-1]]
            chunk = b"".join(b">read%d\n%s\n" % (start + i, bases[a:b])
                             for i, (a, b) in enumerate(zip(starts, ends)))
            out.write(chunk)
            written += len(chunk)
    return written


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench(kind: str, n: int, shards: int, workdir: Path) -> None:
    fasta = workdir / f"{kind}.fa"
    t0 = time.perf_counter()  # generate in a child so that its memory is not counted here
    child = [sys.executable, __file__, str(n), "--kind", kind, "--generate", str(fasta)]
    subprocess.run(child, check=True)
    size = fasta.stat().st_size
    t1 = time.perf_counter()
    rss_before = peak_rss_mib()
    plan = plan_input(fasta, workdir / f"run-{kind}", shards=shards)
    t2 = time.perf_counter()
    print(f"{kind:>8}: {n:,} reads, {size / 2**30:.2f} GiB FASTA (generated in {t1 - t0:.0f} s)")
    print(f"          plan: {t2 - t1:.1f} s ({n / (t2 - t1):,.0f} reads/s), "
          f"{len(plan.shards)} shards, {plan.chunks:,} chunks, "
          f"imbalance max/mean {plan.imbalance:.5f}")
    print(f"          peak RSS {peak_rss_mib():.0f} MiB (before planning {rss_before:.0f} MiB); "
          f"estimate {plan.tokens_est:,} ESM tokens = {plan.gpu_hours_est:.2f} GPU-h")
    fasta.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=10_000_000)
    parser.add_argument("--shards", type=int, default=1000)
    parser.add_argument("--kind", choices=("fixed", "variable", "both"), default="both")
    parser.add_argument("--keep", type=Path, help="work in this directory and keep the run dirs")
    parser.add_argument("--generate", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        write_reads(args.generate, args.kind, args.n)
        return
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="bench-plan-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        for kind in ("fixed", "variable") if args.kind == "both" else (args.kind,):
            bench(kind, args.n, args.shards, workdir)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

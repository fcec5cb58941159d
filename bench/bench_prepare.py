"""Sequence preparation speed: chunks per second per core (issue 3's target: >= 35,000 at 500 bp).

Usage: python bench/bench_prepare.py [--sequences 100000] [--min 150] [--max 3000]
Prints, for 300 and 500 bp: chunks/s of `prepare` alone (in-memory records) and of the whole
`translate` path (read FASTA + prepare + write outputs), and the original per-codon Python
algorithm on a sample for the ratio. One process, so the figures are per core.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from virnuc_hpc.sequences import synthetic# noqa: E402
from virnuc_hpc.sequences import chunk_spans, iter_records, prepare  # noqa: E402
from virnuc_hpc.sequences.prepare import revcomp, translate_frame  # noqa: E402
from virnuc_hpc.sequences.translate import translate_file  # noqa: E402


def original_chunks_per_s(records, size: int) -> float:
    """VirNucPro's per-codon Python loop over the same chunks (without Biopython parsing)."""
    start, count = time.perf_counter(), 0
    for record in records:
        for s, e in chunk_spans(record.length, size):
            seq = record.seq[s:e].upper()
            for strand in (seq, revcomp(seq)):
                for f in range(3):
                    protein = translate_frame(strand, f)
                    _ = "*" not in protein
            count += 1
    return count / (time.perf_counter() - start)


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=100_000)
    parser.add_argument("--min", type=int, default=150)
    parser.add_argument("--max", type=int, default=3000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fasta = synthetic.write_fasta(Path(tmp) / "reads.fa",
                                      synthetic.reads(args.sequences, args.min, args.max, seed=1))
        records = list(iter_records(fasta))
        print(f"{args.sequences} coding-like sequences, lengths {args.min}-{args.max} bp, "
              f"one process (pid {os.getpid()})")
        for size in (300, 500):
            seconds, prepared = timed(lambda size=size: list(prepare(records, size)))
            chunks = sum(len(p.chunks) for p in prepared)
            frames = sum(len(p.frames) for p in prepared)
            full, _ = timed(lambda size=size: translate_file(fasta, size, Path(tmp) / "n.fa",
                                                   Path(tmp) / "p.faa", None, Path(tmp) / "a.tsv"))
            original = original_chunks_per_s(records[:5000], size)
            print(f"{size} bp: {chunks} chunks, {frames} kept frames | prepare "
                  f"{chunks / seconds:,.0f} chunks/s | read+prepare+write {chunks / full:,.0f} "
                  f"chunks/s | original algorithm {original:,.0f} chunks/s | speed-up "
                  f"{chunks / full / original:.1f}x")


if __name__ == "__main__":
    main()

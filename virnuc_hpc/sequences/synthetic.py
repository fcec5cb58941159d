"""Deterministic coding-like DNA for benchmarks, tests and the demo.

Random DNA keeps almost no stop-free frame, so test data must carry open reading frames on
either strand (docs/workload.md) for anything to reach the encoders.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Iterator

from ..core.fsio import atomic_open
from .prepare import STANDARD_CODE, revcomp

SENSE_CODONS = [c for c, a in STANDARD_CODE.items() if a != "*"]


def coding_like(rng: random.Random, length: int) -> str:
    """ORFs on random strands, separated by short random spacers, cut to `length`."""
    parts, total = [], 0
    while total < length:
        orf = "ATG" + "".join(rng.choices(SENSE_CODONS, k=rng.randint(60, 400))) + "TAA"
        orf = revcomp(orf) if rng.random() < 0.5 else orf
        spacer = "".join(rng.choices("ACGT", k=rng.randint(0, 30)))
        parts += [orf, spacer]
        total += len(orf) + len(spacer)
    return "".join(parts)[:length]


def reads(count: int, min_length: int, max_length: int, seed: int = 0) -> Iterator[tuple[str, str]]:
    rng = random.Random(seed)
    for i in range(count):
        yield f"read{i}", coding_like(rng, rng.randint(min_length, max_length))


def write_fasta(path: str | Path, records, width: int = 70) -> Path:
    with atomic_open(path) as handle:
        for rid, seq in records:
            lines = "\n".join(seq[i:i + width] for i in range(0, len(seq), width))
            handle.write(f">{rid}\n{lines}\n".encode())
    return Path(path)

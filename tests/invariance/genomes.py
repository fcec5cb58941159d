"""Reads of real genomes (tests/data/genomes: a phage, an RNA virus, a bacterium), as a user's
reads would come: random positions, both strands, the case the genome came in."""

from __future__ import annotations

import gzip
from functools import lru_cache
from pathlib import Path

import numpy as np

from tests.helpers_study import write_sample

GENOMES = Path(__file__).resolve().parents[1] / "data" / "genomes"
COMPLEMENT = str.maketrans("ACGTacgtNn", "TGCAtgcaNn")


@lru_cache(maxsize=None)
def genomes() -> dict[str, str]:
    """Name -> sequence of every bundled genome."""
    out = {}
    for path in sorted(GENOMES.glob("*.fa.gz")):
        lines = gzip.decompress(path.read_bytes()).decode().splitlines()
        out[path.name.removesuffix(".fa.gz")] = "".join(lines[1:])
    return out


def read_at(genome: str, start: int, length: int, reverse: bool) -> str:
    """`length` bases of `genome` from `start` (wrapping round), reverse-complemented if
    `reverse`."""
    seq = genomes()[genome]
    piece = (seq * (1 + (start + length) // len(seq)))[start:start + length]
    return piece.translate(COMPLEMENT)[::-1] if reverse else piece


def sample_reads(rng: np.random.Generator, n: int, low: int = 150, high: int = 3000,
                 prefix: str = "read") -> list[tuple[str, str]]:
    """`n` (id, sequence) reads of uniform length in [low, high] from random genomes."""
    names = sorted(genomes())
    reads = []
    for i in range(n):
        name = names[int(rng.integers(len(names)))]
        length = int(rng.integers(low, high + 1))
        start = int(rng.integers(len(genomes()[name])))
        reads.append((f"{prefix}{i}_{name.split('_')[0]}_{start}",
                       read_at(name, start, length, bool(rng.integers(2)))))
    return reads


def write_fasta(path: Path, reads: list[tuple[str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f">{rid} sampled from a real genome\n{seq}\n" for rid, seq in reads))
    return path


def study_sheet(folder, rng, sizes, duplicate_share=0.0, lengths=(100, 1500)):
    """Samples of real reads (100-1,500 bp); `duplicate_share` of the reads repeat a read of
    this or an earlier sample under a new ID."""
    folder.mkdir(parents=True, exist_ok=True)
    pool, lines = [], ["sample,fasta"]
    for k, size in enumerate(sizes):
        records = []
        for rid, seq in sample_reads(rng, size, *lengths, prefix=f"s{k}r"):
            if pool and rng.random() < duplicate_share:
                seq = pool[int(rng.integers(len(pool)))]
            records.append((rid, seq))
            pool.append(seq)
        path = write_sample(folder / f"s{k}.fa", records)
        lines.append(f"s{k},{path.name}")
    sheet = folder / "samples.csv"
    sheet.write_text("\n".join(lines) + "\n")
    return sheet

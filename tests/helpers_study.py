"""Synthetic studies: samples of short reads in FASTA, FASTQ and gzip, and their sheet.

Reads are 150-300 bp (one 300-bp chunk), a few 301-600 bp (two); a share of them are open
reading frames (sense codons only in frame 1, so at least that frame is kept), the rest random
(at 300 bp nearly every frame has a stop). Read IDs repeat across samples (`r0`, `r1`, ...):
they need only be unique within a sample. `ALL_SKIPPED` names a sample whose every sequence is
skipped, with every reason.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from virnuc_hpc.sequences import prepare
from virnuc_hpc.sequences.reader import Record

BASES = np.array(list("ACGT"))
SENSE = [a + b + c for a in "ACGT" for b in "ACGT" for c in "ACGT"
         if a + b + c not in ("TAA", "TAG", "TGA")]
ALL_SKIPPED = "all_skipped"


def read_sequence(rng: np.random.Generator, orf_share: float) -> str:
    length = int(rng.integers(301, 600)) if rng.random() < 0.03 else int(rng.integers(150, 301))
    if rng.random() < orf_share:
        codons = rng.choice(SENSE, length // 3)
        return ("".join(codons) + "".join(rng.choice(BASES, length % 3)))
    return "".join(rng.choice(BASES, length))


def all_stop_reads(rng: np.random.Generator, n: int) -> list[str]:
    """Random 300-bp reads whose every frame has a stop (checked with `prepare`)."""
    found: list[str] = []
    while len(found) < n:
        seqs = ["".join(rng.choice(BASES, 300)) for _ in range(4 * n)]
        records = [Record(f"x{i}", s, i, 1) for i, s in enumerate(seqs)]
        found += [p.record.seq for p in prepare(records, 300)
                  if p.skip_reason == "all_frames_have_stop"]
    return found[:n]


def sample_records(rng: np.random.Generator, name: str, size: int,
                   orf_share: float) -> list[tuple[str, str]]:
    if name == ALL_SKIPPED:
        odd = ["", "AC", "N" * 200]  # empty, too short, no unambiguous codon
        seqs = odd + all_stop_reads(rng, max(0, size - len(odd)))
        return [(f"r{i}", s) for i, s in enumerate(seqs[:size])]
    return [(f"r{i}", read_sequence(rng, orf_share)) for i in range(size)]


def write_sample(path: Path, records: list[tuple[str, str]]) -> Path:
    """FASTA (gzip-compressed for .gz), or FASTQ for .fq."""
    if path.suffix == ".fq":
        text = "".join(f"@{i} sample read\n{s}\n+\n{'I' * len(s)}\n" for i, s in records)
    else:
        text = "".join(f">{i} sample read\n{s}\n" for i, s in records)
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode(), mtime=0))
    else:
        path.write_text(text)
    return path


def study_sizes(n: int, largest: int, seed: int = 7) -> list[int]:
    """`n` sample sizes from 1 to `largest`, most small: one of each extreme, the rest
    log-normal."""
    rng = np.random.default_rng(seed)
    middle = np.clip(rng.lognormal(3.0, 1.3, n - 3), 2, largest // 4).astype(int).tolist()
    return [largest, 1, *middle, largest // 4][:n]


def write_study(folder: Path, sizes: list[int], seed: int = 7, orf_share: float = 0.15,
                skipped: bool = True) -> tuple[Path, list[tuple[str, Path]]]:
    """Sample files and `samples.csv` (sample,fasta,batch) in `folder`; (sheet, samples).
    Sample 2 is FASTQ and sample 3 gzip; with `skipped`, sample 4 is ALL_SKIPPED."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    samples = []
    for k, size in enumerate(sizes):
        name = ALL_SKIPPED if skipped and k == 4 else f"S{k:02d}"
        size = max(size, 6) if name == ALL_SKIPPED else size
        suffix = {2: ".fq", 3: ".fa.gz"}.get(k, ".fa")
        path = write_sample(folder / f"{name}{suffix}",
                            sample_records(rng, name, size, orf_share))
        samples.append((name, path))
    sheet = folder / "samples.csv"
    sheet.write_text("sample,fasta,batch\n" + "".join(
        f"{name},{path.name},b{k % 3}\n" for k, (name, path) in enumerate(samples)))
    return sheet, samples

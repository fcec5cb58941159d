"""The one read of the inputs, block by block (sequences.blocks): per sequence its length,
chunks, bases, 128-bit digest and where its ID ends in the IDs file, appended to `rows.bin`;
its ID to `ids.txt`; its bases to the run's sequence file (seqfile.py); its ID's hash to a
scratch file, from which duplicate IDs are found in bounded memory (external_sort.py). Only
per-sample totals stay in memory, so memory is a few blocks whatever the size of the study.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import IO

import numpy as np
import xxhash

from ..core.fsio import sha256_file
from ..sequences.blocks import Block, iter_blocks
from ..sequences.prepare import chunk_spans
from ..sequences.reader import _confirm_duplicate
from .external_sort import KeyFile, repeats
from .samples import Sample, Study
from .seqfile import SeqFileWriter

ROW_DTYPE = np.dtype([("length", "<i4"), ("chunks", "<i4"), ("bases", "<i4"),
                      ("digest", "<u8", (2,)), ("id_end", "<i8")])


@lru_cache(maxsize=1 << 16)
def chunk_cost(length: int, chunk_size: int) -> tuple[int, int]:
    """(chunks, bases over all chunks) of a sequence: a function of its length only."""
    spans = chunk_spans(length, chunk_size)
    return len(spans), sum(end - start for start, end in spans)


def chunk_costs(lengths: np.ndarray, chunk_size: int) -> tuple[np.ndarray, np.ndarray]:
    """chunk_cost of every length, computed once per distinct length."""
    distinct, where = np.unique(lengths, return_inverse=True)
    costs = np.array([chunk_cost(int(n), chunk_size) for n in distinct], np.int64).reshape(-1, 2)
    return costs[where, 0], costs[where, 1]


def sequence_digest(seq: bytes | str) -> tuple[int, int]:
    """The 128-bit xxh3 of a sequence as the two uint64 words the rows hold (collisions
    over 10^10 sequences: about 1e-19)."""
    value = xxhash.xxh3_128_intdigest(seq)
    return value & 0xFFFFFFFFFFFFFFFF, value >> 64


def digests(seqs: list[bytes]) -> np.ndarray:
    raw = b"".join(map(xxhash.xxh3_128_digest, seqs))
    words = np.frombuffer(raw, dtype=">u8").reshape(-1, 2)  # big-endian: high word first
    return np.ascontiguousarray(words[:, ::-1]).astype("<u8")


@dataclass
class Tally:
    """Per sample: sequences, chunks, bases."""

    samples: list[tuple[int, int, int]] = field(default_factory=list)

    @property
    def totals(self) -> tuple[int, int, int]:
        return tuple(sum(column) for column in zip(*self.samples)) or (0, 0, 0)


@dataclass
class Outputs:
    """Where the scan writes: rows always; IDs and the sequence file unless a dry run."""

    rows: IO[bytes]
    ids: IO[bytes] | None = None
    seqfile: SeqFileWriter | None = None
    scratch: Path = Path(".")   # for the duplicate-ID buckets
    ids_bytes: int = 0
    ordinal: int = 0


def block_rows(block: Block, chunk_size: int, ids_start: int) -> tuple[np.ndarray, bytes]:
    """The rows of a block and its IDs' bytes (one per line)."""
    n = len(block.ids)
    rows = np.empty(n, ROW_DTYPE)
    rows["length"] = np.fromiter(map(len, block.seqs), np.int64, n)
    rows["chunks"], rows["bases"] = chunk_costs(rows["length"].astype(np.int64), chunk_size)
    rows["digest"] = digests(block.seqs)
    rows["id_end"] = ids_start + np.cumsum(np.fromiter(map(len, block.ids), np.int64, n) + 1)
    return rows, block.id_lines


def scan_sample(sample: Sample, chunk_size: int, out: Outputs, tally: Tally) -> None:
    keys, totals = KeyFile(out.scratch), [0, 0, 0]
    try:
        for block in iter_blocks(sample.path):
            rows, lines = block_rows(block, chunk_size, out.ids_bytes)
            _write(out, rows, lines, block)
            keys.add(np.fromiter(map(xxhash.xxh3_64_intdigest, block.ids), np.uint64,
                                 len(block.ids)))
            totals = [totals[0] + len(rows), totals[1] + int(rows["chunks"].sum()),
                      totals[2] + int(rows["bases"].sum())]
        _check_unique_ids(sample, keys, out.scratch)
    finally:
        keys.close()
    tally.samples.append(tuple(totals))


def _write(out: Outputs, rows: np.ndarray, lines: bytes, block: Block) -> None:
    out.rows.write(rows.tobytes())
    if out.ids is not None:
        out.ids.write(lines)
    if out.seqfile is not None:
        out.seqfile.add(out.ordinal, rows["length"], block.seq_lines)
    out.ids_bytes += len(lines)
    out.ordinal += len(rows)


def _check_unique_ids(sample: Sample, keys: KeyFile, scratch: Path) -> None:
    """IDs are unique within a sample: hashes that repeat are confirmed on the IDs themselves
    (the reference reader names the record and both lines)."""
    positions, representatives = repeats(keys, scratch)
    if len(positions):
        suspects = set(positions.tolist()) | set(representatives.tolist())
        _confirm_duplicate(sample.path, suspects, "dna")


def scan(study: Study, chunk_size: int, out: Outputs) -> tuple[Tally, list[str]]:
    """One read of every input (hashed alongside, in a thread): the tally, and each file's
    sha256."""
    tally = Tally()
    with ThreadPoolExecutor(1) as pool:
        hashed = [pool.submit(sha256_file, sample.path) for sample in study.samples]
        for sample in study.samples:
            scan_sample(sample, chunk_size, out, tally)
        return tally, [digest.result() for digest in hashed]

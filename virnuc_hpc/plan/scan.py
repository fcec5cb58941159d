"""The one read of the inputs: per sequence its length, chunks, bases and digest (streamed to
a scratch file in blocks), its ID (to another), and the histogram of costs that packing needs.
Memory is one block, whatever the size of the study."""

from __future__ import annotations

import hashlib
from array import array
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from typing import IO

import numpy as np

from ..fsio import sha256_file
from ..sequences.prepare import chunk_spans
from ..sequences.reader import iter_records
from .samples import Sample, Study

SCAN_DTYPE = np.dtype([("length", "<i8"), ("chunks", "<i8"), ("bases", "<i8"),
                       ("digest", "<u8")])
BLOCK = 200_000  # sequences buffered by the scan, and routed to the shards at a time
_BLAKE2B_8 = hashlib.blake2b(digest_size=8)


@lru_cache(maxsize=1 << 16)
def chunk_cost(length: int, chunk_size: int) -> tuple[int, int]:
    """(chunks, bases over all chunks) of a sequence: a function of its length only."""
    spans = chunk_spans(length, chunk_size)
    return len(spans), sum(end - start for start, end in spans)


def _digest_bytes(seq: str) -> bytes:
    digest = _BLAKE2B_8.copy()  # a copy costs less than a new hash object, per short read
    digest.update(seq.encode("ascii"))
    return digest.digest()


def sequence_digest(seq: str) -> int:
    """8 bytes of BLAKE2b of a sequence, as the unsigned integer the shard arrays hold."""
    return int.from_bytes(_digest_bytes(seq), "little")


@dataclass
class Tally:
    """What the scan keeps: the histogram of costs, and per sample its totals."""

    costs: Counter = field(default_factory=Counter)
    samples: list[tuple[int, int, int]] = field(default_factory=list)  # sequences, chunks, bases


class _Rows:
    """Per-sequence rows of one sample, buffered and written to the scan file in blocks."""

    def __init__(self, out: IO[bytes], tally: Tally):
        self.out, self.tally, self.totals = out, tally, [0, 0, 0]
        self._reset()

    def _reset(self) -> None:
        self.lengths, self.chunks, self.bases, self.digests = (array("q"), array("q"),
                                                               array("q"), bytearray())

    def add(self, seq: str, chunk_size: int) -> None:
        count, covered = chunk_cost(len(seq), chunk_size)
        self.lengths.append(len(seq))
        self.chunks.append(count)
        self.bases.append(covered)
        self.digests += _digest_bytes(seq)
        if len(self.lengths) >= BLOCK:
            self.flush()

    def flush(self) -> None:
        table = np.empty(len(self.lengths), SCAN_DTYPE)
        table["length"] = np.frombuffer(self.lengths, dtype=np.int64)
        table["chunks"] = np.frombuffer(self.chunks, dtype=np.int64)
        table["bases"] = np.frombuffer(self.bases, dtype=np.int64)
        table["digest"] = np.frombuffer(self.digests, dtype="<u8")
        self.out.write(table.tobytes())
        values, counts = np.unique(table["chunks"], return_counts=True)
        self.tally.costs.update(dict(zip(values.tolist(), counts.tolist())))
        self.totals = [self.totals[0] + len(table), self.totals[1] + int(table["chunks"].sum()),
                       self.totals[2] + int(table["bases"].sum())]
        self._reset()


def scan_sample(sample: Sample, chunk_size: int, rows_out: IO[bytes], ids_out: IO[str] | None,
                tally: Tally) -> None:
    rows = _Rows(rows_out, tally)
    for record in iter_records(sample.path):
        rows.add(record.seq, chunk_size)
        if ids_out is not None:
            ids_out.write(record.id + "\n")
    rows.flush()
    tally.samples.append(tuple(rows.totals))


def scan(study: Study, chunk_size: int, rows_out: IO[bytes],
         ids_out: IO[str] | None) -> tuple[Tally, list[str]]:
    """One read of every input (hashed alongside): the tally, and each file's sha256."""
    tally = Tally()
    with ThreadPoolExecutor(1) as pool:
        digests = [pool.submit(sha256_file, sample.path) for sample in study.samples]
        for sample in study.samples:
            scan_sample(sample, chunk_size, rows_out, ids_out, tally)
        return tally, [digest.result() for digest in digests]



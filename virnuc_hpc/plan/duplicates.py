"""Identical reads, run-wide: found once at `plan`, embedded once, expanded at `reduce`.

After the scan, the 128-bit digests of every planned sequence (`rows.bin`) go through the
external, bucketed sort of external_sort.py. A sequence whose bases equal an earlier one's, in any
sample, is a duplicate of the first (its representative).

- `shards/duplicates.bin` holds (ordinal, representative) of every duplicate, sorted by
  ordinal.
- `shards/representatives.bin` holds the sorted ordinals of the representatives that have
  duplicates.

A duplicate costs no GPU work: tasks skip it, shards are cut on the work that is left, and
`reduce` gives it its representative's rows under its own ID, in its own sample and input
position (reduce/merge.py). Every results file reads as if it had been computed. The digest is
128 bits of xxh3: over 10^10 reads the chance of any collision is about 1e-19, so a match is
not confirmed on the bases. `--no-dedup` (`dedup: false`) finds none.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from .external_sort import PAIR_DTYPE, RowDigests, duplicates
from .scan import ROW_DTYPE


@dataclass
class Duplicates:
    """The run's duplicates (`pairs`, sorted by ordinal) and representatives (`reps`)."""

    pairs: np.ndarray
    reps: np.ndarray

    @classmethod
    def none(cls) -> "Duplicates":
        return cls(np.empty(0, PAIR_DTYPE), np.empty(0, np.int64))

    @classmethod
    def load(cls, pairs: Path, reps: Path) -> "Duplicates":
        return cls(_map(pairs, PAIR_DTYPE), _map(reps, np.dtype("<i8")))

    def __len__(self) -> int:
        return len(self.pairs)

    def pairs_in(self, first: int, count: int) -> tuple[int, int]:
        """The index range of the duplicates at ordinals first..first+count-1."""
        ordinals = self.pairs["ordinal"]
        return int(np.searchsorted(ordinals, first)), int(np.searchsorted(ordinals,
                                                                          first + count))

    def reps_in(self, first: int, count: int) -> tuple[int, int]:
        return int(np.searchsorted(self.reps, first)), int(np.searchsorted(self.reps,
                                                                           first + count))

    def mask(self, first: int, count: int) -> np.ndarray:
        """True for the ordinals of first..first+count-1 that are duplicates."""
        lo, hi = self.pairs_in(first, count)
        out = np.zeros(count, bool)
        out[np.asarray(self.pairs["ordinal"][lo:hi]) - first] = True
        return out


def _map(path: Path, dtype: np.dtype) -> np.ndarray:
    if os.path.getsize(path) == 0:
        return np.empty(0, dtype)
    return np.memmap(path, dtype=dtype, mode="r")


def find(rows: IO[bytes], total: int, scratch: Path, pairs_path: Path,
         reps_path: Path) -> Duplicates:
    """The run's duplicates, from the digests in `rows` (written to the two files)."""
    with open(pairs_path, "w+b") as pairs, open(reps_path, "w+b") as reps:
        duplicates(RowDigests(rows, total, ROW_DTYPE), scratch, pairs, reps)
    return Duplicates.load(pairs_path, reps_path)


def per_sample(dups: Duplicates, starts: np.ndarray) -> np.ndarray:
    """How many duplicates each sample holds."""
    block, counts = 1 << 20, np.zeros(len(starts) - 1, np.int64)
    for lo in range(0, len(dups), block):
        ordinals = np.asarray(dups.pairs["ordinal"][lo:lo + block])
        sample = np.searchsorted(starts, ordinals, side="right") - 1
        counts += np.bincount(sample, minlength=len(counts))
    return counts

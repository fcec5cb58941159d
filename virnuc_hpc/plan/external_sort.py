"""Equal keys among many, in bounded memory: an external, bucketed sort on disk.

Keys (64-bit hashes of IDs, or 128-bit digests of sequences) are streamed to a scratch file
as they are scanned. `repeats` splits them by their top bits into bucket files small enough to
sort in memory (`BUCKET_BYTES`), sorts each, and reports every position whose key occurs more
than once with the first position of its key (its representative). Memory is one bucket and
one block, whatever the number of keys: 100M keys use a few hundred small files and tens of
MiB, not a dictionary of 100M entries.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from pathlib import Path
from typing import IO

import numpy as np

BUCKET_BYTES = 64 << 20
BLOCK = 1 << 20          # keys read at a time


def key_dtype(width: int) -> np.dtype:
    """`width` little-endian uint64 words per key."""
    return np.dtype([("key", "<u8", (width,))]) if width > 1 else np.dtype([("key", "<u8")])


class KeyFile:
    """Keys appended in position order to a scratch file."""

    def __init__(self, folder: Path, width: int = 1):
        self.width, self.dtype = width, key_dtype(width)
        self.handle: IO[bytes] = tempfile.TemporaryFile(dir=folder)
        self.count = 0

    def add(self, keys: np.ndarray) -> None:
        self.handle.write(np.ascontiguousarray(keys, dtype="<u8").tobytes())
        self.count += len(keys)

    def blocks(self):
        """(first position, keys) blocks, from the start."""
        self.handle.seek(0)
        for first in range(0, self.count, BLOCK):
            n = min(BLOCK, self.count - first)
            raw = np.frombuffer(self.handle.read(n * self.dtype.itemsize), "<u8")
            yield first, raw.reshape(n, self.width) if self.width > 1 else raw

    def close(self) -> None:
        self.handle.close()


def repeats(keys: KeyFile, scratch: Path) -> tuple[np.ndarray, np.ndarray]:
    """(positions, representatives): every position whose key occurs more than once, sorted,
    and the first position holding its key."""
    found = list(_groups(keys, scratch))
    positions = np.concatenate([f[0] for f in found] or [np.empty(0, np.int64)])
    representatives = np.concatenate([f[1] for f in found] or [np.empty(0, np.int64)])
    order = np.argsort(positions, kind="stable")
    return positions[order], representatives[order]


def _groups(keys, scratch: Path):
    """(positions, representatives) bucket by bucket (positions in key order)."""
    bits = max(0, math.ceil(math.log2(max(1, keys.count * (keys.width * 8 + 8) /
                                          BUCKET_BYTES))))
    if bits == 0:
        yield _in_memory(keys)
        return
    folder = Path(tempfile.mkdtemp(dir=scratch, prefix=".buckets-"))
    try:
        for path in _split(keys, folder, bits):
            yield _repeats_in(path, keys.width)
            path.unlink()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _in_memory(keys: KeyFile) -> tuple[np.ndarray, np.ndarray]:
    """All keys fit one bucket: no bucket files."""
    blocks = [block.reshape(len(block), -1) for _, block in keys.blocks()]
    if not blocks:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    words = np.concatenate(blocks).view(np.int64)
    return _repeats_of(np.column_stack([words, np.arange(len(words))]), keys.width)


def _split(keys: KeyFile, folder: Path, bits: int) -> list[Path]:
    """Bucket files of (key words..., position), by the top `bits` bits of the first word."""
    paths = [folder / f"{b:05d}" for b in range(1 << bits)]
    handles = [open(p, "wb") for p in paths]
    try:
        for first, block in keys.blocks():
            lead = block if keys.width == 1 else block[:, 0]
            bucket = (lead >> np.uint64(64 - bits)).astype(np.uint16) if bits else \
                np.zeros(len(block), np.uint16)
            rows = np.column_stack([block.reshape(len(block), -1).view(np.int64),
                                    np.arange(first, first + len(block))])
            order = np.argsort(bucket, kind="stable")   # a radix sort of small integers
            edges = np.searchsorted(bucket[order], np.arange(len(paths) + 1))
            for b, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
                if hi > lo:
                    handles[b].write(rows[order[lo:hi]].tobytes())
    finally:
        for handle in handles:
            handle.close()
    return paths


def _repeats_in(path: Path, width: int) -> tuple[np.ndarray, np.ndarray]:
    return _repeats_of(np.fromfile(path, dtype=np.int64).reshape(-1, width + 1), width)


def _repeats_of(rows: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(positions, representatives) among rows of (key words..., position). One sort on the
    first word groups the keys; the whole key is sorted only when two keys share a first
    word and differ after it. A representative is the first position of its key."""
    if len(rows) < 2:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    rows = rows[np.argsort(rows[:, 0])]
    same = rows[1:, 0] == rows[:-1, 0]
    if not same.any():
        return np.empty(0, np.int64), np.empty(0, np.int64)
    if width > 1 and not (rows[1:, 1:width][same] == rows[:-1, 1:width][same]).all():
        rows = rows[np.lexsort([rows[:, w] for w in reversed(range(width))])]
        same = (rows[1:, :width] == rows[:-1, :width]).all(axis=1)
    starts = np.flatnonzero(np.r_[True, ~same])           # first row of each key
    group = np.cumsum(np.r_[True, ~same]) - 1
    keep = np.diff(np.r_[starts, len(rows)])[group] > 1
    first = np.minimum.reduceat(rows[:, width], starts)
    return rows[keep, width], first[group[keep]]


# -- duplicates of a whole study, written sorted to files --------------------------------------

PAIR_DTYPE = np.dtype([("ordinal", "<i8"), ("rep", "<i8")])


class RowDigests:
    """The 128-bit digests of `rows.bin` (plan/scan.py) as keys, block by block."""

    width = 2

    def __init__(self, rows: IO[bytes], count: int, dtype: np.dtype):
        self.rows, self.count, self.dtype = rows, count, dtype

    def blocks(self):
        self.rows.seek(0)
        for first in range(0, self.count, BLOCK):
            n = min(BLOCK, self.count - first)
            block = np.frombuffer(self.rows.read(n * self.dtype.itemsize), self.dtype)
            yield first, np.ascontiguousarray(block["digest"])


def duplicates(keys, scratch: Path, pairs_out: IO[bytes], reps_out: IO[bytes]) -> tuple[int,
                                                                                     int]:
    """Every position whose key equals an earlier one's, with that first position (its
    representative), as PAIR_DTYPE rows sorted by position, and the representatives that
    have duplicates, sorted: (duplicates, representatives) written."""
    ranges = _Ranges(scratch, keys.count)
    try:
        for positions, representatives in _groups(keys, scratch):
            later = positions != representatives
            ranges.add(positions[later], representatives[later])
        return ranges.write(pairs_out, reps_out)
    finally:
        ranges.close()


class _Ranges:
    """Pairs spilled by position range, then written out range after range, each sorted."""

    def __init__(self, scratch: Path, count: int):
        self.folder = Path(tempfile.mkdtemp(dir=scratch, prefix=".ranges-"))
        self.parts = max(1, math.ceil(count * PAIR_DTYPE.itemsize / BUCKET_BYTES))
        self.width = max(1, math.ceil(count / self.parts))
        self.pairs = [open(self.folder / f"p{k:05d}", "wb") for k in range(self.parts)]
        self.reps = [open(self.folder / f"r{k:05d}", "wb") for k in range(self.parts)]

    def add(self, positions: np.ndarray, representatives: np.ndarray) -> None:
        pairs = np.empty(len(positions), PAIR_DTYPE)
        pairs["ordinal"], pairs["rep"] = positions, representatives
        self._spill(self.pairs, pairs, positions)
        self._spill(self.reps, representatives, representatives)

    def _spill(self, handles: list, rows: np.ndarray, where: np.ndarray) -> None:
        part = where // self.width
        order = np.argsort(part, kind="stable")
        edges = np.searchsorted(part[order], np.arange(self.parts + 1))
        for k, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
            if hi > lo:
                handles[k].write(rows[order[lo:hi]].tobytes())

    def write(self, pairs_out: IO[bytes], reps_out: IO[bytes]) -> tuple[int, int]:
        for handle in (*self.pairs, *self.reps):
            handle.close()
        counts = [0, 0]
        for k in range(self.parts):
            pairs = np.fromfile(self.folder / f"p{k:05d}", PAIR_DTYPE)
            pairs_out.write(pairs[np.argsort(pairs["ordinal"])].tobytes())
            reps = _distinct(np.fromfile(self.folder / f"r{k:05d}", np.int64))
            reps_out.write(reps.tobytes())
            counts = [counts[0] + len(pairs), counts[1] + len(reps)]
        return counts[0], counts[1]

    def close(self) -> None:
        for handle in (*self.pairs, *self.reps):
            handle.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def _distinct(values: np.ndarray) -> np.ndarray:
    """np.unique by one sort (numpy's hash-based unique is slower on many integers)."""
    values = np.sort(values)
    return values[np.r_[True, values[1:] != values[:-1]]] if len(values) else values

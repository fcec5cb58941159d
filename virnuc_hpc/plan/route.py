"""Cutting the scanned rows into shards: one streaming pass over `rows.bin` gives each shard
its contiguous range of rows (packing.Cutter, on the work left once duplicates are set
aside), its totals, the samples it holds and the sha256 of its slices of `rows.bin` and
`ids.txt` (its manifest's checksums)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import IO

import numpy as np

from . import scan
from .duplicates import Duplicates
from .packing import WEIGHT, Cutter, weighted
from .scan import ROW_DTYPE

BLOCK = 1 << 20          # rows read at a time
READ = 16 << 20          # bytes of ids.txt read at a time


@dataclass
class Slice:
    """What one shard holds: rows first..first+count-1 and bytes ids_start..ids_end."""

    first: int = 0
    count: int = 0
    duplicates: int = 0
    chunks: int = 0           # of the sequences it computes (duplicates aside), as bases
    bases: int = 0
    ids_start: int = 0
    ids_end: int = 0
    held: dict[int, list[int]] = field(default_factory=dict)  # sample -> [computed, chunks]
    spans: dict[int, int] = field(default_factory=dict)       # sample -> its rows here
    rows_hash: object = field(default_factory=hashlib.sha256)
    ids_hash: object = field(default_factory=hashlib.sha256)

    @property
    def samples(self) -> list[list[int]]:
        return [[s, n, c] for s, (n, c) in sorted(self.held.items())]


def route(rows: IO[bytes], total: int, work: int, shards: int, starts: np.ndarray,
          ids: IO[bytes] | None, dups: Duplicates) -> list[Slice]:
    """The shards' slices, from the rows (and IDs, when written) read back from the start;
    `work`: the chunks to compute (the duplicates' aside)."""
    cutter, slices = Cutter(work * WEIGHT + total, total, shards), [Slice() for _ in
                                                                     range(shards)]
    rows.seek(0)
    ends_before = 0   # where the IDs of the rows before this block end
    for first in range(0, total, BLOCK):
        block = np.frombuffer(rows.read(min(BLOCK, total - first) * ROW_DTYPE.itemsize),
                              ROW_DTYPE)
        computed = ~dups.mask(first, len(block))
        shard = cutter(weighted(np.where(computed, block["chunks"], 0)))
        _take(slices, shard, (block, computed), (first, ends_before), starts)
        ends_before = int(block["id_end"][-1])
    if ids is not None:
        _hash_ids(ids, slices)
    return slices


def _take(slices: list[Slice], shard: np.ndarray, rows: tuple[np.ndarray, np.ndarray],
          at: tuple[int, int], starts: np.ndarray) -> None:
    """Add the block's runs of equal shard to their slices (`rows`: the block and which of
    its rows are computed; `at`: its first row and where the IDs before it end)."""
    (block, computed), (first, ends_before) = rows, at
    edges = np.flatnonzero(np.r_[True, shard[1:] != shard[:-1], True])
    for lo, hi in zip(edges[:-1].tolist(), edges[1:].tolist()):
        part, piece, mine = slices[int(shard[lo])], block[lo:hi], computed[lo:hi]
        if part.count == 0:
            part.first = first + lo
            part.ids_start = int(block["id_end"][lo - 1]) if lo else ends_before
        part.count += hi - lo
        part.duplicates += int((~mine).sum())
        part.chunks += int(piece["chunks"][mine].sum())
        part.bases += int(piece["bases"][mine].sum())
        part.ids_end = int(piece["id_end"][-1])
        part.rows_hash.update(piece.tobytes())
        _hold(part, first + lo, (piece["chunks"], mine), starts)


def _hold(part: Slice, first: int, rows: tuple[np.ndarray, np.ndarray],
          starts: np.ndarray) -> None:
    """Per sample, the sequences (and their chunks) the shard computes, duplicates aside."""
    chunks, computed = rows
    sample = np.searchsorted(starts, np.arange(first, first + len(chunks)), side="right") - 1
    for s, n in zip(*np.unique(sample, return_counts=True)):
        part.spans[int(s)] = part.spans.get(int(s), 0) + int(n)
    for s in np.unique(sample[computed]).tolist():
        mine = (sample == s) & computed
        held = part.held.setdefault(s, [0, 0])
        held[0] += int(mine.sum())
        held[1] += int(chunks[mine].sum())


def feeds(dups: Duplicates, slices: list[Slice], starts: np.ndarray) -> list[list[list[int]]]:
    """Per shard, per sample: how many of the sample's duplicates that shard's
    representatives compute ([[sample, duplicates], ...] per shard)."""
    firsts, found = np.array([p.first for p in slices]), {}
    for lo in range(0, len(dups), BLOCK):
        pairs = np.asarray(dups.pairs[lo:lo + BLOCK])
        shard = np.searchsorted(firsts, pairs["rep"], side="right") - 1
        sample = np.searchsorted(starts, pairs["ordinal"], side="right") - 1
        keys, counts = np.unique(shard.astype(np.int64) << 32 | sample, return_counts=True)
        for key, n in zip(keys.tolist(), counts.tolist()):
            found[key] = found.get(key, 0) + n
    out: list[list[list[int]]] = [[] for _ in slices]
    for key, n in sorted(found.items()):
        out[key >> 32].append([key & 0xFFFFFFFF, n])
    return out


def _hash_ids(ids: IO[bytes], slices: list[Slice]) -> None:
    ids.seek(0)
    for part in slices:
        left = part.ids_end - part.ids_start
        while left > 0:
            data = ids.read(min(READ, left))
            part.ids_hash.update(data)
            left -= len(data)


__all__ = ["Slice", "route", "scan"]

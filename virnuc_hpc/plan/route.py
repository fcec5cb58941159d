"""Cutting the scanned rows into shards: one streaming pass over `rows.bin` gives each shard
its contiguous range of rows (packing.Cutter), its totals, the samples it holds and the sha256
of its slices of `rows.bin` and `ids.txt` (its manifest's checksums)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import IO

import numpy as np

from . import scan
from .packing import WEIGHT, Cutter, weighted
from .scan import ROW_DTYPE

BLOCK = 1 << 20          # rows read at a time
READ = 16 << 20          # bytes of ids.txt read at a time


@dataclass
class Slice:
    """What one shard holds: rows first..first+count-1 and bytes ids_start..ids_end."""

    first: int = 0
    count: int = 0
    chunks: int = 0
    bases: int = 0
    ids_start: int = 0
    ids_end: int = 0
    held: dict[int, list[int]] = field(default_factory=dict)  # sample -> [sequences, chunks]
    rows_hash: object = field(default_factory=hashlib.sha256)
    ids_hash: object = field(default_factory=hashlib.sha256)

    @property
    def samples(self) -> list[list[int]]:
        return [[s, n, c] for s, (n, c) in sorted(self.held.items())]


def route(rows: IO[bytes], total: int, chunks: int, shards: int, starts: np.ndarray,
          ids: IO[bytes] | None) -> list[Slice]:
    """The shards' slices, from the rows (and IDs, when written) read back from the start."""
    cutter, slices = Cutter(chunks * WEIGHT + total, total, shards), [Slice() for _ in
                                                                      range(shards)]
    rows.seek(0)
    ends_before = 0   # where the IDs of the rows before this block end
    for first in range(0, total, BLOCK):
        block = np.frombuffer(rows.read(min(BLOCK, total - first) * ROW_DTYPE.itemsize),
                              ROW_DTYPE)
        _take(slices, cutter(weighted(block["chunks"])), block, (first, ends_before), starts)
        ends_before = int(block["id_end"][-1])
    if ids is not None:
        _hash_ids(ids, slices)
    return slices


def _take(slices: list[Slice], shard: np.ndarray, block: np.ndarray, at: tuple[int, int],
          starts: np.ndarray) -> None:
    """Add the block's runs of equal shard to their slices (`at`: the block's first row and
    where the IDs before it end)."""
    first, ends_before = at
    edges = np.flatnonzero(np.r_[True, shard[1:] != shard[:-1], True])
    for lo, hi in zip(edges[:-1].tolist(), edges[1:].tolist()):
        part, piece = slices[int(shard[lo])], block[lo:hi]
        if part.count == 0:
            part.first = first + lo
            part.ids_start = int(block["id_end"][lo - 1]) if lo else ends_before
        part.count += hi - lo
        part.chunks += int(piece["chunks"].sum())
        part.bases += int(piece["bases"].sum())
        part.ids_end = int(piece["id_end"][-1])
        part.rows_hash.update(piece.tobytes())
        _hold(part, first + lo, piece, starts)


def _hold(part: Slice, first: int, piece: np.ndarray, starts: np.ndarray) -> None:
    sample = np.searchsorted(starts, np.arange(first, first + len(piece)), side="right") - 1
    for s in np.unique(sample).tolist():
        mine = sample == s
        held = part.held.setdefault(s, [0, 0])
        held[0] += int(mine.sum())
        held[1] += int(piece["chunks"][mine].sum())


def _hash_ids(ids: IO[bytes], slices: list[Slice]) -> None:
    ids.seek(0)
    for part in slices:
        left = part.ids_end - part.ids_start
        while left > 0:
            data = ids.read(min(READ, left))
            part.ids_hash.update(data)
            left -= len(data)


__all__ = ["Slice", "route", "scan"]

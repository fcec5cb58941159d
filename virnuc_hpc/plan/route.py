"""Routing the scanned rows to their shards: the scan file is read back a block at a time and
each row (and ID) appended to its shard's files, in input order; per shard, what it holds."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import islice
from typing import IO

import numpy as np

from ..rundir import RunDir
from . import scan
from .packing import Allocation, Assigner
from .scan import SCAN_DTYPE

SHARD_DTYPE = np.dtype([("ordinal", "<i8"), ("length", "<i8"), ("chunks", "<i8"),
                        ("digest", "<u8"), ("sample", "<i4")])


@dataclass
class Routed:
    """Per shard its bases, and per (shard, sample) the sequences and chunks it holds."""

    bases: np.ndarray
    held: dict[tuple[int, int], list[int]] = field(default_factory=dict)

    def add(self, shard: np.ndarray, table: np.ndarray, bases: np.ndarray) -> None:
        self.bases += np.bincount(shard, bases, len(self.bases)).astype(np.int64)
        key = shard.astype(np.int64) << 32 | table["sample"].astype(np.int64)
        keys, inverse = np.unique(key, return_inverse=True)
        counts = np.bincount(inverse)
        chunks = np.bincount(inverse, table["chunks"]).astype(np.int64)
        for k, n, c in zip(keys.tolist(), counts.tolist(), chunks.tolist()):
            held = self.held.setdefault((k >> 32, k & 0xFFFFFFFF), [0, 0])
            held[0], held[1] = held[0] + n, held[1] + c


def route(run: RunDir | None, rows: IO[bytes], ids: IO[str] | None, total: int,
           allocation: Allocation, starts: np.ndarray) -> Routed:
    """Read the scan back a block at a time and send each row (and ID) to its shard's files
    (to none on a dry run); count what each shard holds."""
    assigner, routed = Assigner(allocation), Routed(np.zeros(len(allocation.loads), np.int64))
    if run is not None:
        _start_arrays(run, allocation.sequences)
    for first in range(0, total, scan.BLOCK):
        count = min(scan.BLOCK, total - first)
        scanned = np.frombuffer(rows.read(count * SCAN_DTYPE.itemsize), SCAN_DTYPE)
        shard, table = assigner(scanned["chunks"]), _shard_rows(first, scanned, starts)
        routed.add(shard, table, scanned["bases"])
        if run is not None:
            _append(run, shard, table, list(islice(ids, len(table))))
    return routed


def _shard_rows(first: int, scanned: np.ndarray, starts: np.ndarray) -> np.ndarray:
    table = np.empty(len(scanned), SHARD_DTYPE)
    table["ordinal"] = np.arange(first, first + len(scanned))
    for name in ("length", "chunks", "digest"):
        table[name] = scanned[name]
    table["sample"] = np.searchsorted(starts, table["ordinal"], side="right") - 1
    return table


def _start_arrays(run: RunDir, sizes: np.ndarray) -> None:
    """Each shard's .npy with the header for its final size; rows are appended in order."""
    descr = np.lib.format.dtype_to_descr(SHARD_DTYPE)
    for index, size in enumerate(sizes.tolist()):
        with open(run.shard_arrays(index), "wb") as handle:
            np.lib.format.write_array_header_1_0(
                handle, {"descr": descr, "fortran_order": False, "shape": (size,)})
        run.shard_ids(index).touch()


def _append(run: RunDir, shard: np.ndarray, table: np.ndarray, ids: list[str]) -> None:
    order = np.argsort(shard, kind="stable")  # grouped by shard, input order inside each
    ranked = shard[order]
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
    for start, end in zip(starts.tolist(), np.r_[starts[1:], len(order)].tolist()):
        index, rows = int(ranked[start]), order[start:end]
        with open(run.shard_arrays(index), "ab") as out:
            out.write(table[rows].tobytes())
        with open(run.shard_ids(index), "a", encoding="utf-8") as out:
            out.writelines(ids[i] for i in rows.tolist())

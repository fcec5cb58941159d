"""Bin-packing sequences into shards by cost, from the costs' histogram alone.

Longest-processing-time greedy: sequences in order of decreasing cost, each to the least
loaded shard (ties: lowest index; cost-0 sequences are spread by count). Sequences of equal
cost are placed in one vectorised "water-filling" step that gives the same loads as placing
them one by one, so the whole packing is decided by how many sequences have each cost
(`allocate`): memory is (distinct costs x shards), never per sequence. `Assigner` then maps
each sequence, in input order, to its shard: the k-th sequence of cost c goes to the shard
that the allocation gives the k-th place of cost c (input order among equals, shards in
index order). The most loaded shard ends within one sequence's cost of the least loaded.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Mapping

import numpy as np


def _fill(loads: np.ndarray, cost: int, count: int) -> np.ndarray:
    """How many of `count` items of equal `cost` each shard gets when every item in turn goes
    to the least loaded shard (ties: lowest index)."""
    lo, hi = int(loads.min()), int(loads.min()) + (count - 1) * cost
    while lo < hi:  # smallest level T with at least `count` slots L_s + j*cost <= T
        mid = (lo + hi) // 2
        if _slots(loads, cost, mid).sum() >= count:
            hi = mid
        else:
            lo = mid + 1
    below = _slots(loads, cost, lo - 1)
    at_level = np.flatnonzero((loads <= lo) & ((lo - loads) % cost == 0))
    below[at_level[:count - int(below.sum())]] += 1
    return below


def _slots(loads: np.ndarray, cost: int, level: int) -> np.ndarray:
    return np.where(loads <= level, (level - loads) // cost + 1, 0)


@dataclass
class Allocation:
    """Per cost, the shards that get sequences of that cost and the running end of each
    one's run of places; per shard, its sequences and its load (the sum of costs)."""

    per_cost: dict[int, tuple[np.ndarray, np.ndarray]]
    sequences: np.ndarray
    loads: np.ndarray


def allocate(cost_counts: Mapping[int, int], shards: int) -> Allocation:
    """The LPT packing of sequences whose costs have the histogram `cost_counts`."""
    loads, counts = np.zeros(shards, np.int64), np.zeros(shards, np.int64)
    per_cost = {}
    for cost in sorted(cost_counts, reverse=True):
        count = int(cost_counts[cost])
        if count <= 0:
            continue
        given = _fill(counts, 1, count) if cost == 0 else _fill(loads, cost, count)
        loads += given * cost
        counts += given
        where = np.flatnonzero(given)
        per_cost[int(cost)] = (where.astype(np.int32), np.cumsum(given[where]))
    return Allocation(per_cost, counts, loads)


class Assigner:
    """Shard of every sequence, fed the costs in input order, a block at a time."""

    def __init__(self, allocation: Allocation):
        self.per_cost = allocation.per_cost
        self.taken: Counter = Counter()

    def __call__(self, costs: np.ndarray) -> np.ndarray:
        out = np.empty(len(costs), np.int32)
        order = np.argsort(costs, kind="stable")  # by cost, input order among equals
        ranked = costs[order]
        starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
        for start, end in zip(starts.tolist(), np.r_[starts[1:], len(costs)].tolist()):
            cost = int(ranked[start])
            shards, ends = self.per_cost[cost]
            places = self.taken[cost] + np.arange(end - start)
            out[order[start:end]] = shards[np.searchsorted(ends, places, side="right")]
            self.taken[cost] += end - start
        return out


def assign_shards(costs: np.ndarray, shards: int) -> np.ndarray:
    """Shard index per item (LPT), for costs held in memory."""
    costs = np.asarray(costs, dtype=np.int64)
    values, counts = np.unique(costs, return_counts=True)
    return Assigner(allocate(dict(zip(values.tolist(), counts.tolist())), shards))(costs)


def imbalance(loads: np.ndarray) -> float:
    """max/mean of shard loads (1.0 is perfect)."""
    mean = float(np.mean(loads)) if len(loads) else 0.0
    return float(np.max(loads)) / mean if mean > 0 else 1.0


__all__ = ["Allocation", "Assigner", "allocate", "assign_shards", "imbalance"]

"""Cutting the study into shards: contiguous ranges of ordinals of nearly equal cost.

Shards are contiguous, so that a task reads one slice of the run's files (seqfile.py) instead
of picking its sequences out of the whole input. The cost of a sequence is its chunks, times
`WEIGHT`, plus one: sequences without chunks are spread by count. `Cutter` takes the costs in
ordinal order, a block at a time. It closes a shard when the shard holds its fair share of
what is left (the remaining cost over the remaining shards), at the sequence that brings it
closest to that share. It never leaves fewer sequences than shards. Each shard ends within
one sequence's cost of its share, and none is empty. Memory is one block: the cut never needs
the whole study at once.
"""

from __future__ import annotations

import numpy as np

WEIGHT = 1024


def weighted(chunks: np.ndarray) -> np.ndarray:
    return chunks.astype(np.int64) * WEIGHT + 1


class Cutter:
    """Shard of every sequence, fed the (weighted) costs in ordinal order."""

    def __init__(self, total_cost: int, total_rows: int, shards: int):
        self.left_cost, self.left_rows, self.left_shards = total_cost, total_rows, shards
        self.shard = -1
        self._open()

    def _open(self) -> None:
        self.shard, self.held, self.rows = self.shard + 1, 0, 0
        self.share = self.left_cost / max(self.left_shards, 1)
        self.most = self.left_rows - (self.left_shards - 1)

    def _close(self) -> None:
        self.left_cost -= self.held
        self.left_rows -= self.rows
        self.left_shards -= 1
        self._open()

    def __call__(self, costs: np.ndarray) -> np.ndarray:
        out, cum, i = np.empty(len(costs), np.int32), np.cumsum(costs, dtype=np.int64), 0
        while i < len(costs):
            end, full = self._end(cum, i)
            out[i:end] = self.shard
            self.held += int(cum[end - 1] - (cum[i - 1] if i else 0))
            self.rows += end - i
            i = end
            if full:
                self._close()
        return out

    def _end(self, cum: np.ndarray, i: int) -> tuple[int, bool]:
        """Where the open shard ends in this block (exclusive), and whether it is full."""
        limit = min(len(cum), i + self.most - self.rows)
        if self.left_shards <= 1:
            return len(cum), False
        base = int(cum[i - 1]) if i else 0
        j = int(np.searchsorted(cum, self.share - self.held + base, side="left"))
        if j >= limit:
            return limit, limit < len(cum) or self.rows + limit - i >= self.most
        reached = self.held + int(cum[j]) - base
        before = self.held + (int(cum[j - 1]) - base if j > i else 0)
        keep_j = reached - self.share <= self.share - before or (j == i and self.rows == 0)
        return (j + 1 if keep_j else j), True


def cut(costs: np.ndarray, shards: int) -> np.ndarray:
    """Shard index per item, for (weighted) costs held in memory."""
    costs = np.asarray(costs, dtype=np.int64)
    return Cutter(int(costs.sum()), len(costs), shards)(costs)


def imbalance(loads: np.ndarray) -> float:
    """max/mean of shard loads (1.0 is perfect)."""
    mean = float(np.mean(loads)) if len(loads) else 0.0
    return float(np.max(loads)) / mean if mean > 0 else 1.0


__all__ = ["Cutter", "WEIGHT", "cut", "imbalance", "weighted"]

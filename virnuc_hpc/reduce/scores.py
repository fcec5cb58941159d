"""Fixed-bin histograms of scores: memory is the bins and one block of values, whatever the
number of sequences (the report's histograms per call, reduce's per sample)."""

from __future__ import annotations

import numpy as np

SCORE_EDGES = np.linspace(0.0, 1.0, 51)
HISTOGRAM_BLOCK = 1 << 16


class Histogram:
    """Counts over fixed bin edges; values are binned by numpy a block at a time."""

    def __init__(self, edges: np.ndarray = SCORE_EDGES):
        self.edges, self.counts = edges, np.zeros(len(edges) - 1, np.int64)
        self._buffer: list[float] = []

    def add(self, value: float) -> None:
        self._buffer.append(value)
        if len(self._buffer) >= HISTOGRAM_BLOCK:
            self.flush()

    def flush(self) -> None:
        if self._buffer:
            self.counts += np.histogram(self._buffer, self.edges)[0]
            self._buffer = []

    def centres(self) -> list[float]:
        """Each bin's centre, rounded as the edges are spelled."""
        return [round(float(x), 6) for x in (self.edges[:-1] + self.edges[1:]) / 2]

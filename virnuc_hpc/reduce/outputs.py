"""VirNucPro's two output files, byte-compatible with the original (spec section 7).

Careful: an f-string formats a numpy float32 as a float64 (`f"{x}"` != `str(x)`); write
`{x!s}` or `str(x)`.

- `prediction_results.txt`: `Sequence_ID\\tPrediction\\tscore1\\tscore2`, one row per kept frame;
  scores as numpy float32 prints them (`str(np.float32(x))`: shortest round-trip, e.g.
  `0.0011595711`, `1e-05`); the label is the argmax with `torch.max`'s tie rule (the first
  index wins), so a tie is `others`.
- `prediction_results_highestscore.csv` (tab-separated despite its name): per chunk
  (`Modified_ID` = frame ID without its `F1`..`R3` suffix), in lexicographic order,
  `Is_Virus = max(score2) >= max(score1)` (a tie counts as virus), `True`/`False`.

Both are written in a stream. The chunk table is sorted externally (sorted runs spilled to
disk, merged with `heapq.merge`), so memory stays bounded however many chunks there are.
"""

from __future__ import annotations

import heapq
import io
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterable, Iterator

import numpy as np

from ..core.fsio import atomic_open
from .schema import FrameRow, format_score

__all__ = ["format_score"]

PREDICTION_HEADER = FrameRow.header()
HIGHEST_HEADER = "Modified_ID\tIs_Virus\n"
LABELS = ("others", "virus")  # index 0 = score1 = others, index 1 = score2 = virus
RUN_SIZE = 200_000


def label(score1, score2) -> str:
    """`torch.max` over the two probabilities: index 1 only when strictly greater."""
    return LABELS[int(np.float32(score2) > np.float32(score1))]


def prediction_lines(frame_ids: Iterable[str], scores: np.ndarray) -> Iterator[str]:
    """Rows of prediction_results.txt (newline included) for frames and their [n, 2] scores."""
    scores = np.asarray(scores, dtype=np.float32)
    for frame_id, (s1, s2) in zip(frame_ids, scores):
        yield FrameRow(frame_id, LABELS[int(s2 > s1)], s1, s2).line()


def read_prediction_results(path: str | os.PathLike,
                            ) -> Iterator[tuple[str, str, np.float32, np.float32]]:
    """Parse a prediction_results.txt: (frame ID, label, score1, score2) per row."""
    with open(path, encoding="utf-8") as handle:
        if handle.readline() != PREDICTION_HEADER:
            raise ValueError(f"{path}: not a VirNucPro prediction_results.txt header")
        for line in handle:
            row = FrameRow.parse(line)
            yield row.frame_id, row.prediction, np.float32(row.score1), np.float32(row.score2)


def chunk_id(frame_id: str) -> str:
    """VirNucPro's `Modified_ID`: the frame ID without its last two characters."""
    return frame_id[:-2]


def is_virus(max_score1, max_score2) -> bool:
    return bool(np.float32(max_score2) >= np.float32(max_score1))


def reopening_lines(path: str | os.PathLike, block: int = 1 << 16) -> Iterator[str]:
    """Lines of a file read `block` bytes at a time, reopening it for each block, so that
    thousands of these can be merged without holding thousands of open files."""
    offset, rest = 0, b""
    while True:
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read(block)
        if not data:
            if rest:
                yield rest.decode()
            return
        offset += len(data)
        lines = (rest + data).split(b"\n")
        rest = lines.pop()
        for line in lines:
            yield line.decode()


class ChunkTable:
    """Per-chunk maxima of score1 and score2, sorted by chunk ID on disk-backed runs.

    Feed frames in any order with `add_frame` (adjacent frames of one chunk are folded at
    once); `write(handle)` emits the highestscore table. Call `close()` (or use `with`)."""

    def __init__(self, tmp_dir: str | os.PathLike | None = None, run_size: int = RUN_SIZE):
        self._dir = tempfile.TemporaryDirectory(prefix="chunk-table-", dir=tmp_dir)
        self.run_size = run_size
        self._buffer: dict[str, tuple[np.float32, np.float32]] = {}
        self._runs: list[Path] = []

    def __enter__(self) -> ChunkTable:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._dir.cleanup()

    def add_frame(self, frame_id: str, score1, score2) -> None:
        self.add_chunk(chunk_id(frame_id), np.float32(score1), np.float32(score2))

    def add_chunk(self, key: str, max1: np.float32, max2: np.float32) -> None:
        old = self._buffer.get(key)
        self._buffer[key] = (max1, max2) if old is None else (max(old[0], max1), max(old[1], max2))
        if len(self._buffer) >= self.run_size:
            self._spill()

    def _spill(self) -> None:
        path = Path(self._dir.name) / f"run-{len(self._runs):06d}.tsv"
        with open(path, "w", encoding="utf-8") as handle:
            handle.writelines(f"{k}\t{a!s}\t{b!s}\n" for k, (a, b) in sorted(self._buffer.items()))
        self._runs.append(path)
        self._buffer = {}

    def _run_items(self, path: Path) -> Iterator[tuple[str, np.float32, np.float32]]:
        for line in reopening_lines(path):
            key, a, b = line.split("\t")
            yield key, np.float32(a), np.float32(b)

    def chunks(self) -> Iterator[tuple[str, bool]]:
        """(chunk ID, Is_Virus) in lexicographic order, each chunk once."""
        memory = ((k, a, b) for k, (a, b) in sorted(self._buffer.items()))
        merged = heapq.merge(memory, *map(self._run_items, self._runs), key=lambda item: item[0])
        key, max1, max2 = None, None, None
        for k, a, b in merged:
            if k == key:
                max1, max2 = max(max1, a), max(max2, b)
                continue
            if key is not None:
                yield key, is_virus(max1, max2)
            key, max1, max2 = k, a, b
        if key is not None:
            yield key, is_virus(max1, max2)

    def write(self, handle: IO[str]) -> int:
        """Write the highestscore table (header included); returns the number of chunks."""
        handle.write(HIGHEST_HEADER)
        count = 0
        for key, virus in self.chunks():
            handle.write(f"{key}\t{virus}\n")
            count += 1
        return count


@contextmanager
def atomic_text(path: str | os.PathLike) -> Iterator[IO[str]]:
    """`fsio.atomic_open` as a UTF-8 text stream with `\n` line ends."""
    with atomic_open(path) as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        yield text
        text.flush()
        text.detach()


def write_prediction_files(frames: Iterable[tuple[str, float, float]],
                           results_path: str | os.PathLike, highest_path: str | os.PathLike,
                           tmp_dir: str | os.PathLike | None = None) -> int:
    """Both VirNucPro files from (frame ID, score1, score2) rows in output order; returns the
    number of chunks. `reduce` streams the same pieces over shards."""
    with ChunkTable(tmp_dir) as table:
        with atomic_text(results_path) as out:
            out.write(PREDICTION_HEADER)
            for frame_id, s1, s2 in frames:
                s1, s2 = np.float32(s1), np.float32(s2)
                out.write(f"{frame_id}\t{label(s1, s2)}\t{s1!s}\t{s2!s}\n")
                table.add_frame(frame_id, s1, s2)
        with atomic_text(highest_path) as out:
            return table.write(out)

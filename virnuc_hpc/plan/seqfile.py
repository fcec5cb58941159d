"""The run's own copy of its sequences, so that a task reads only its shard.

`plan` writes every sequence of the study, in ordinal order, into `RUN/shards/sequences.zst`:
one zstd frame per block of records (bases only, one sequence per line), each with its content
checksum. `sequences.index.npy` holds per frame its first ordinal, record count, byte offset
and size. Shards are contiguous ranges of ordinals, so a task seeks to the frames that cover
its range and reads nothing else: its start-up no longer depends on where its records sit in
the input, or on how large the input is. The task never opens the user's files again, so they
may be moved or deleted once the plan is written. Compression runs in a worker thread while
the scan parses the next block. A frame costs about a third of its bases on disk.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import numpy as np

from ..core.errors import IntegrityError
from ..sequences.source import _zstd

INDEX_DTYPE = np.dtype([("first", "<i8"), ("count", "<i8"), ("offset", "<i8"), ("size", "<i8")])
LEVEL = 1          # zstd level: DNA at about 3x, faster than the parse it runs beside
AHEAD = 4          # frames compressed ahead of the writer (memory: a few frames)
FRAME_BYTES = 1 << 20   # bases per frame, about: a task reads at most two frames it does not need


def _compress(data: bytes) -> bytes:
    zstd = _zstd()
    return zstd.compress(data, options={zstd.CompressionParameter.compression_level: LEVEL,
                                        zstd.CompressionParameter.checksum_flag: 1})


class SeqFileWriter:
    """Appends blocks of sequences as frames, compressed in a thread, written in order."""

    def __init__(self, path: Path):
        self.out = open(path, "wb")
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="seqfile")
        self.pending: deque[tuple[int, int, Future]] = deque()
        self.index: list[tuple[int, int, int, int]] = []
        self.offset = 0

    def add(self, first: int, lengths: np.ndarray, lines: bytes) -> None:
        """Sequences first..first+len(lengths)-1 of these lengths, one per line (`lines` ends
        with a newline), in frames of about FRAME_BYTES."""
        ends = np.cumsum(lengths.astype(np.int64) + 1)
        cuts = np.searchsorted(ends, np.arange(FRAME_BYTES, int(ends[-1]) if len(ends) else 0,
                                               FRAME_BYTES), side="left")
        start = 0
        for stop in [*np.unique(cuts + 1).tolist(), len(ends)]:
            if stop > start:
                lo = int(ends[start - 1]) if start else 0
                self._submit(first + start, stop - start, lines[lo:int(ends[stop - 1])])
                start = stop

    def _submit(self, first: int, count: int, lines: bytes) -> None:
        self.pending.append((first, count, self.pool.submit(_compress, lines)))
        while len(self.pending) > AHEAD:
            self._write_one()

    def _write_one(self) -> None:
        first, count, future = self.pending.popleft()
        frame = future.result()
        self.out.write(frame)
        self.index.append((first, count, self.offset, len(frame)))
        self.offset += len(frame)

    def close(self) -> np.ndarray:
        """Write what is pending; the frame index."""
        try:
            while self.pending:
                self._write_one()
        finally:
            self.pool.shutdown()
            self.out.close()
        return np.array(self.index, dtype=INDEX_DTYPE)

    def abort(self) -> None:
        self.pool.shutdown(cancel_futures=True)
        self.out.close()


def read_range(path: Path, index: np.ndarray, first: int, count: int) -> Iterator[bytes]:
    """The sequences of ordinals first..first+count-1, reading only the frames that hold them."""
    if count == 0:
        return
    k = int(np.searchsorted(index["first"], first, side="right")) - 1
    with open(path, "rb") as handle:
        while count > 0:
            if not 0 <= k < len(index):
                raise IntegrityError(f"{path}: holds no frame with ordinal {first}; fix: plan "
                                     "the input again in a new run dir")
            frame = index[k]
            lines = _frame_lines(path, handle, frame)[first - int(frame["first"]):][:count]
            yield from lines
            first, count, k = first + len(lines), count - len(lines), k + 1


def _frame_lines(path: Path, handle, frame) -> list[bytes]:
    handle.seek(int(frame["offset"]))
    data = handle.read(int(frame["size"]))
    try:
        lines = _zstd().decompress(data).split(b"\n")
    except Exception as exc:  # a damaged frame (its checksum) or a cut file
        raise IntegrityError(f"{path}: the frame at byte {int(frame['offset'])} is damaged "
                             f"({exc}); fix: plan the input again in a new run dir") from None
    if len(lines) != int(frame["count"]) + 1:
        raise IntegrityError(f"{path}: the frame at byte {int(frame['offset'])} holds "
                             f"{len(lines) - 1} sequences, not {int(frame['count'])}; fix: "
                             "plan the input again in a new run dir")
    return lines[:-1]

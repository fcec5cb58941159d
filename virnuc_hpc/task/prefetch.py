"""Overlap a task's CPU work with its encoders: one thread ahead, one thread behind.

A task's encoders (the GPU) must never wait for the CPU. `Ahead` runs the CPU side of the
next parts (read, prepare, cut, tokenize) in a producer thread, at most `depth` parts queued
beyond the one it is preparing; `Behind` publishes computed parts (serialize, hash, atomic
write) in a writer thread while the next part computes, at most `depth` queued beyond the one
it is writing. Memory stays bounded by those queues. Either thread's exception is raised in
the consumer (the task's main thread) at its next hand-over with the other thread, unchanged
(same type, same exit code); every path out joins both threads. `depth=0` runs everything
inline in the caller's thread, in the same order: the sequential reference. Neither class
knows what a part is; nothing here imports torch.
"""

from __future__ import annotations

import queue
import threading
from typing import Callable, Generic, Iterable, Iterator, TypeVar

T = TypeVar("T")
POLL_S = 0.05  # how often a blocked hand-over looks whether the other side gave up
_END = object()


class _Failure:
    """An exception on its way from the producer thread to the consumer."""

    def __init__(self, exc: BaseException):
        self.exc = exc


def _close(items: Iterable) -> None:
    """Close a generator in the thread that iterated it (its `finally` blocks run there)."""
    close = getattr(items, "close", None)
    if close is not None:
        close()


class Ahead(Generic[T]):
    """Iterate `items` in a producer thread, at most `depth` items ahead of the consumer
    (plus the one the producer holds). A `with` block joins the thread on every way out."""

    def __init__(self, items: Iterable[T], depth: int, name: str = "prefetch"):
        self.items, self.depth = items, depth
        self._queue: queue.Queue = queue.Queue(maxsize=max(depth, 1))
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._produce, name=name, daemon=True)

    def __enter__(self) -> "Ahead[T]":
        if self.depth > 0:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __iter__(self) -> Iterator[T]:
        if self.depth <= 0:
            return iter(self.items)
        return self._received()

    def _received(self) -> Iterator[T]:
        while (item := self._queue.get()) is not _END:
            if isinstance(item, _Failure):
                raise item.exc
            yield item

    def close(self) -> None:
        """Stop the producer (it finishes the item in hand) and join it."""
        self._closed.set()
        if self._thread.ident is not None:
            self._thread.join()
        else:  # inline (depth 0), or never started
            _close(self.items)

    def _produce(self) -> None:
        try:
            for item in self.items:
                if not self._put(item):
                    return
            self._put(_END)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            self._put(_Failure(exc))
        finally:
            _close(self.items)

    def _put(self, item: object) -> bool:
        """Queue `item` unless the consumer closed us meanwhile (then False)."""
        while not self._closed.is_set():
            try:
                self._queue.put(item, timeout=POLL_S)
                return True
            except queue.Full:
                continue
        return False


class Behind(Generic[T]):
    """Run `write(item)` for each submitted item in a writer thread, in order, at most
    `depth` items queued beyond the one being written. `finish()` waits until every item is
    written; leaving the `with` block without it (an error) drops the queued items, lets the
    write in progress end, and joins. A write's exception is raised by the next `submit` or
    by `finish`."""

    def __init__(self, write: Callable[[T], object], depth: int, name: str = "writer"):
        self.write, self.depth = write, depth
        self._queue: queue.Queue = queue.Queue(maxsize=max(depth, 1))
        self._aborted = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._consume, name=name, daemon=True)

    def __enter__(self) -> "Behind[T]":
        if self.depth > 0:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._aborted.set()
        self._stop_thread()

    def submit(self, item: T) -> None:
        """Hand `item` over (inline when `depth` is 0); raise a failed write's exception."""
        if self.depth <= 0:
            self.write(item)
            return
        self._raise_failure()
        if not self._offer(item):
            self._raise_failure()

    def finish(self) -> None:
        """Every submitted item written, the thread joined; a write's exception raised."""
        self._stop_thread()
        self._raise_failure()

    def _stop_thread(self) -> None:
        if self._thread.ident is not None:
            self._offer(_END)
            self._thread.join()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _offer(self, item: object) -> bool:
        """Queue `item` while the writer lives (False when it has ended: failed, aborted)."""
        while self._thread.is_alive():
            try:
                self._queue.put(item, timeout=POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _consume(self) -> None:
        try:
            while (item := self._queue.get()) is not _END and not self._aborted.is_set():
                self.write(item)
        except BaseException as exc:  # noqa: BLE001 - handed to the submitter, raised there
            self._failure = exc

"""Progress of a long-running task: a heartbeat file for `status`, and what a person sees
(a progress bar on a terminal, periodic log lines otherwise)."""

from __future__ import annotations

import logging
import sys
import threading
import time
from pathlib import Path

from .store import write_heartbeat

log = logging.getLogger(__name__)


class Progress:
    """Counts rows; a daemon thread publishes the heartbeat every `interval` seconds."""

    def __init__(self, task_dir: Path, total: int, done: int = 0, interval: float = 5.0,
                 label: str = "frames", stream=None):
        self.task_dir, self.total, self.label = task_dir, total, label
        self.done = self.start_done = done
        self.interval, self.stream = interval, stream or sys.stderr
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="heartbeat", daemon=True)

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return (self.done - self.start_done) / elapsed if elapsed > 0 else 0.0

    def advance(self, rows: int) -> None:
        self.done += rows

    def __enter__(self) -> "Progress":
        self.publish()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.publish(ended=True)  # `status` then knows no process is working on it
        if self.stream.isatty():
            self.stream.write("\n")

    def publish(self, ended: bool = False) -> None:
        write_heartbeat(self.task_dir, self.done, self.total, self.rate, ended=ended)
        self._show()

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            self.publish()

    def _show(self) -> None:
        share = self.done / self.total if self.total else 1.0
        text = f"{self.done}/{self.total} {self.label} ({share:.0%}), {self.rate:.1f}/s"
        if self.stream.isatty():
            bar = "#" * int(share * 30)
            self.stream.write(f"\r[{bar:<30}] {text}")
            self.stream.flush()
        else:
            log.info("progress: %s", text)

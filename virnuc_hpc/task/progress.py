"""A task's progress as others see it: the heartbeat file that `status`, the local executor's
live bars and the run report read. The task itself draws nothing; it logs one plain line per
interval (what a SLURM log should hold).

The heartbeat says which phase the task is in (`preparing`, `loading models`, `embedding`),
how many frames are done of how many, the rate, when the task started and on which device
(`gpu`: the CUDA_VISIBLE_DEVICES it was given, or `cpu`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from ..parts import write_heartbeat

log = logging.getLogger(__name__)


def device_label(device: str) -> str:
    """What the heartbeat and DONE call the device: `cpu`, or the GPU ids this process got."""
    if not str(device).startswith("cuda"):
        return "cpu"
    return os.environ.get("CUDA_VISIBLE_DEVICES") or "cuda"


class Progress:
    """Counts frames; a daemon thread publishes the heartbeat every `interval` seconds (and
    logs a progress line every `log_every` seconds)."""

    def __init__(self, task_dir: Path, total: int | None = None, done: int = 0,
                 interval: float = 5.0, device: str = "cpu", log_every: float = 60.0):
        self.task_dir, self.total, self.interval = task_dir, total, interval
        self.done = self.start_done = done
        self.started_wall, self.started = time.time(), time.monotonic()
        self.phase, self.gpu, self.log_every = "preparing", device_label(device), log_every
        self._rate_from: tuple[float, int] | None = None
        self._logged = self.started
        self._warned = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="heartbeat", daemon=True)

    @property
    def rate(self) -> float:
        """Frames per second since embedding began (model loading excluded)."""
        if self._rate_from is None:
            return 0.0
        since, first = self._rate_from
        elapsed = time.monotonic() - since
        return (self.done - first) / elapsed if elapsed > 0 else 0.0

    def set_phase(self, phase: str, total: int | None = None, done: int | None = None) -> None:
        self.phase = phase
        self.total = self.total if total is None else total
        self.done = self.start_done = self.done if done is None else done
        if phase == "embedding":
            self._rate_from = (time.monotonic(), self.done)
        self.publish()

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

    def publish(self, ended: bool = False) -> None:
        """Write the heartbeat; a file system that refuses it (full, read-only) costs the
        task its progress display, never its work (one warning, then silence)."""
        try:
            write_heartbeat(self.task_dir, self.done, self.total, self.rate, ended=ended,
                            phase=self.phase, started=self.started_wall, gpu=self.gpu)
        except OSError as exc:
            if not self._warned:
                log.warning("heartbeat not written (%s); status may call this shard stale", exc)
            self._warned = True

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            self.publish()
            if time.monotonic() - self._logged >= self.log_every:
                self._logged = time.monotonic()
                log.info("progress: %s %d/%s frames, %.1f/s", self.phase, self.done,
                         self.total if self.total is not None else "?", self.rate)

"""What a person sees while shards run on this machine: live bars on a terminal, periodic plain
lines in a log. Both are fed by the heartbeats tasks write (store.read_heartbeat) and by the
executor's word on which shards run on which GPU and how they ended.

    view = make_view(run_dir, mode="auto", interval=30)   # "auto" | "quiet"
    LocalExecutor(..., monitor=view).run(...)              # the executor calls view.update()

On a terminal (rich): one bar per running shard (index, GPU, frames done/total, frames/s,
ETA), a total bar for the run, a summary line per finished shard. Elsewhere: one line every
`interval` seconds with totals, rate and ETA, and one per finished shard; never a `\\r`.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import IO, Mapping, Protocol

from ..executors.local import describe_exit
from ..plan import load_plan
from ..core.rundir import RunDir
from ..parts import read_done, read_heartbeat

MODES = ("auto", "quiet")


@dataclass
class ShardView:
    """One shard as the run sees it: what the executor said, and its latest heartbeat."""

    index: int
    chunks: int
    gpu: str = ""
    state: str = "pending"     # pending, running, done, failed
    phase: str = ""
    rows_done: int = 0
    rows_total: int | None = None
    rate: float = 0.0
    started: float | None = None   # epoch seconds, from the heartbeat
    seen: float | None = None      # monotonic time the executor was first seen running it
    code: int | None = None

    @property
    def fraction(self) -> float:
        if self.state == "done":
            return 1.0
        if self.state != "running" or not self.rows_total:
            return 0.0
        return min(1.0, self.rows_done / self.rows_total)

    @property
    def eta_s(self) -> float | None:
        if not self.rate or self.rows_total is None:
            return None
        return max(0.0, (self.rows_total - self.rows_done) / self.rate)


class RunProgress:
    """Every shard of a run, updated from the executor and the heartbeats."""

    def __init__(self, run_dir, indices: list[int] | None = None):
        self.run = RunDir(run_dir)
        shards = load_plan(run_dir).shards
        wanted = set(indices) if indices is not None else {s.index for s in shards}
        self.shards = {s.index: ShardView(s.index, s.chunks) for s in shards if s.index in wanted}

    def update(self, running: Mapping[int, str], ended: Mapping[int, int]) -> list[ShardView]:
        """Take the executor's view (index -> GPU of running shards, index -> exit code of
        ended ones); return the shards that ended since the last call."""
        finished = []
        for index, gpu in running.items():
            shard = self.shards[index]
            shard.state, shard.gpu = "running", gpu
            shard.seen = shard.seen or time.monotonic()
            self._read_heartbeat(shard)
        for index, code in ended.items():
            shard = self.shards[index]
            if shard.code is None:
                self._finish(shard, code)
                finished.append(shard)
        return finished

    def _read_heartbeat(self, shard: ShardView) -> None:
        beat = read_heartbeat(self.run.task(shard.index)) or {}
        shard.phase = beat.get("phase") or "starting"
        shard.rows_done = int(beat.get("rows_done") or 0)
        shard.rows_total = beat.get("rows_total")
        shard.rate = float(beat.get("rate") or 0.0)
        shard.started = beat.get("started", shard.started)

    def _finish(self, shard: ShardView, code: int) -> None:
        shard.code = code
        done = read_done(self.run.task(shard.index)) if code == 0 else None
        shard.state = "done" if done is not None else "failed"
        if done is not None:
            shard.rows_done = shard.rows_total = int(done.get("rows", 0))
            shard.started = done.get("started", shard.started)
            shard.rate = float(done.get("rate") or 0.0)

    def running(self) -> list[ShardView]:
        return [s for s in self.shards.values() if s.state == "running"]

    def totals(self) -> dict:
        """Shards by state, frames done, the running shards' rate, the share of the run's
        chunks done (shards weighted by their chunks) and an ETA from it."""
        shards = list(self.shards.values())
        chunks = sum(s.chunks for s in shards) or 1
        share = sum(s.chunks * s.fraction for s in shards) / chunks
        chunk_rate = sum(s.chunks * s.rate / s.rows_total for s in self.running()
                         if s.rate and s.rows_total)
        left = chunks * (1 - share)
        return {"shards": len(shards), "done": sum(s.state == "done" for s in shards),
                "failed": sum(s.state == "failed" for s in shards),
                "running": len(self.running()), "share": share,
                "frames": sum(s.rows_done for s in shards if s.state != "pending"),
                "rate": self._rate(), "mean_rate": not self.running(),
                "eta_s": left / chunk_rate if chunk_rate else (0.0 if share >= 1 else None)}

    def _rate(self) -> float:
        """The running shards' rate; when none runs, the mean since the first shard started
        (a finished run reads "N frames/s on average", not 0)."""
        if self.running():
            return sum(s.rate for s in self.running())
        worked = [s for s in self.shards.values() if s.started and s.rows_done]
        took = time.time() - min(s.started for s in worked) if worked else 0.0
        return sum(s.rows_done for s in worked) / took if took > 0 else 0.0


def duration(seconds: float | None) -> str:
    """`1h02m`, `3m05s`, `42s`, or `-` when unknown."""
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def shard_label(shard: ShardView) -> str:
    return f"shard {shard.index} ({'GPU ' + shard.gpu if shard.gpu not in ('', 'cpu') else 'cpu'})"


def ended_line(shard: ShardView) -> str:
    """The one line a finished shard leaves."""
    if shard.state == "done":
        took = time.time() - shard.started if shard.started else None
        return (f"{shard_label(shard)}: done, {shard.rows_done:,} frames in {duration(took)}"
                f" ({shard.rate:,.1f} frames/s)")
    return f"{shard_label(shard)}: FAILED ({describe_exit(shard.code)}); see its log"


def totals_line(t: dict) -> str:
    """The run in one line: shards, share, frames, rate, ETA."""
    failed = f", {t['failed']} failed" if t["failed"] else ""
    return (f"progress: {t['done']}/{t['shards']} shards done, {t['running']} running{failed}; "
            f"{t['share']:.0%} of the run, {t['frames']:,} frames, {t['rate']:,.1f} frames/s"
            f"{' on average' if t['mean_rate'] else ''}, ETA {duration(t['eta_s'])}")


class View(Protocol):
    def update(self, running: Mapping[int, str], ended: Mapping[int, int]) -> None: ...

    def close(self) -> None: ...


class QuietView:
    def update(self, running: Mapping[int, str], ended: Mapping[int, int]) -> None:
        pass

    def close(self) -> None:
        pass


class LogView:
    """Plain lines: every finished shard at once, the totals every `interval` seconds."""

    def __init__(self, progress: RunProgress, interval: float, stream: IO[str]):
        self.progress, self.interval, self.stream = progress, interval, stream
        self.last = time.monotonic()

    def update(self, running: Mapping[int, str], ended: Mapping[int, int]) -> None:
        for shard in self.progress.update(running, ended):
            self._line(ended_line(shard))
        if time.monotonic() - self.last >= self.interval:
            self.last = time.monotonic()
            self._line(totals_line(self.progress.totals()))

    def _line(self, text: str) -> None:
        self.stream.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}\n")
        self.stream.flush()

    def close(self) -> None:
        self._line(totals_line(self.progress.totals()))


class TerminalView:
    """rich bars, redrawn in place: one per running shard and one for the whole run."""

    def __init__(self, progress: RunProgress, stream: IO[str]):
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn

        self.progress, self.began = progress, time.monotonic()
        self.bars = Progress(TextColumn("{task.description:<18}"), BarColumn(bar_width=30),
                             TextColumn("{task.fields[elapsed]:>6}"),
                             TextColumn("{task.fields[counts]}"),
                             console=Console(file=stream), refresh_per_second=4)
        self.total = self.bars.add_task("run", total=1.0, counts="starting", elapsed="")
        self.tasks: dict[int, int] = {}
        self.bars.start()

    def update(self, running: Mapping[int, str], ended: Mapping[int, int]) -> None:
        for shard in self.progress.update(running, ended):
            self._drop(shard.index)
            self.bars.console.print(ended_line(shard), highlight=False)
        for shard in self.progress.running():
            self._show(shard)
        t = self.progress.totals()
        self.bars.update(self.total, completed=t["share"], counts=_total_counts(t),
                         elapsed=duration(time.monotonic() - self.began))

    def _show(self, shard: ShardView) -> None:
        if shard.index not in self.tasks:
            self.tasks[shard.index] = self.bars.add_task(shard_label(shard), total=1, counts="",
                                                         elapsed="")
        total = shard.rows_total or 1
        self.bars.update(self.tasks[shard.index], completed=shard.rows_done, total=total,
                         counts=_shard_counts(shard),
                         elapsed=duration(time.monotonic() - (shard.seen or time.monotonic())))

    def _drop(self, index: int) -> None:
        if index in self.tasks:
            self.bars.remove_task(self.tasks.pop(index))

    def close(self) -> None:
        self.bars.stop()
        self.bars.console.print(totals_line(self.progress.totals()), highlight=False)


def _shard_counts(shard: ShardView) -> str:
    total = "?" if shard.rows_total is None else f"{shard.rows_total:,}"
    if shard.phase != "embedding":
        return f"{shard.rows_done:,}/{total} frames  {shard.phase}"
    return (f"{shard.rows_done:,}/{total} frames  {shard.rate:,.1f} frames/s  "
            f"ETA {duration(shard.eta_s)}")


def _total_counts(t: dict) -> str:
    failed = f", {t['failed']} failed" if t["failed"] else ""
    return (f"{t['done']}/{t['shards']} shards{failed}  {t['frames']:,} frames  "
            f"{t['rate']:,.1f} frames/s  ETA {duration(t['eta_s'])}")


def make_view(run_dir, indices: list[int] | None = None, mode: str = "auto",
              interval: float = 30.0, stream: IO[str] | None = None) -> View:
    """Bars on a terminal, plain lines elsewhere, nothing with mode "quiet"."""
    if mode not in MODES:
        raise ValueError(f"progress mode {mode!r} is not one of {', '.join(MODES)}")
    if mode == "quiet":
        return QuietView()
    stream = stream or sys.stderr
    progress = RunProgress(run_dir, indices)
    if stream.isatty():
        return TerminalView(progress, stream)
    return LogView(progress, interval, stream)

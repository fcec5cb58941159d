"""Live progress of local runs: the model behind the bars, plain log lines, and the bars as a
person sees them in a real terminal (tmux)."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import REPO
from tests.helpers_run import plan
from virnuc_hpc.views.live import LogView, RunProgress, duration, make_view
from virnuc_hpc.core.rundir import RunDir
from virnuc_hpc.parts import write_heartbeat

EXAMPLE = REPO / "examples" / "reads.fa"


@pytest.fixture(scope="module")
def planned(tiny_cache, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("live") / "run"
    plan(EXAMPLE, run_dir, shards=3)
    return run_dir


def _done(run_dir, index, rows, rate):
    task = RunDir(run_dir).task(index).root
    task.mkdir(parents=True, exist_ok=True)
    (task / "DONE").write_text(json.dumps({"rows": rows, "rate": rate, "started": time.time() - 8}))


def test_progress_follows_heartbeats_and_exit_codes(planned):
    progress = RunProgress(planned)
    write_heartbeat(RunDir(planned).task(0).root, 5, 10, 2.0, phase="embedding",
                    started=time.time())
    assert progress.update({0: "1", 1: "0"}, {}) == []
    zero, one = progress.shards[0], progress.shards[1]
    assert (zero.gpu, zero.rows_done, zero.rows_total, zero.phase) == ("1", 5, 10, "embedding")
    assert zero.eta_s == pytest.approx(2.5) and one.phase == "starting"
    _done(planned, 1, 7, 3.5)
    ended = progress.update({0: "1"}, {1: 0, 2: 3})
    assert [(s.index, s.state) for s in ended] == [(1, "done"), (2, "failed")]
    assert progress.update({0: "1"}, {1: 0, 2: 3}) == []     # each end is told once
    totals = progress.totals()
    chunks = {i: s.chunks for i, s in progress.shards.items()}
    share = (chunks[0] * 0.5 + chunks[1]) / sum(chunks.values())
    assert totals["share"] == pytest.approx(share)
    assert (totals["done"], totals["failed"], totals["running"], totals["frames"]) == (1, 1, 1, 12)
    assert totals["eta_s"] == pytest.approx(sum(chunks.values()) * (1 - share) /
                                            (chunks[0] * 2.0 / 10))


def test_log_view_writes_plain_periodic_lines(planned):
    stream = io.StringIO()
    view = LogView(RunProgress(planned, [0, 1]), interval=0.05, stream=stream)
    write_heartbeat(RunDir(planned).task(0).root, 3, 9, 1.5, phase="embedding",
                    started=time.time())
    view.update({0: "cpu"}, {})
    time.sleep(0.1)
    view.update({0: "cpu"}, {})
    _done(planned, 1, 4, 2.0)
    view.update({}, {0: 1, 1: 0})
    view.close()
    text = stream.getvalue()
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert sum("progress: " in line for line in lines) >= 2
    assert any(re.search(r"shard 0 \(cpu\): FAILED \(exit code 1\)", line) for line in lines)
    assert any(re.search(r"shard 1 \(cpu\): done, 4 frames in \d+s \(2.0 frames/s\)", line)
               for line in lines)
    assert "1/2 shards done, 0 running, 1 failed" in lines[-1]
    mean = re.search(r"([\d.]+) frames/s on average", lines[-1])   # not the 0 of no shard
    assert mean and float(mean.group(1)) > 0, lines[-1]


def test_quiet_and_modes(planned):
    assert type(make_view(planned, mode="quiet")).__name__ == "QuietView"
    assert type(make_view(planned, stream=io.StringIO())).__name__ == "LogView"
    with pytest.raises(ValueError, match="auto, quiet"):
        make_view(planned, mode="loud")
    assert [duration(s) for s in (None, 4.4, 65, 3725)] == ["-", "4s", "1m05s", "1h02m"]


# --- what a person sees -----------------------------------------------------------------

class Tmux:
    """A tmux server of this test's own (its own socket), killed at the end."""

    def __init__(self, name: str):
        self.base = ["tmux", "-L", name]

    def start(self, command: str, width: int = 150, height: int = 30) -> None:
        subprocess.run(self.base + ["new-session", "-d", "-s", "t", "-x", str(width), "-y",
                                    str(height), command], check=True)

    def screen(self) -> str:
        done = subprocess.run(self.base + ["capture-pane", "-p", "-t", "t"],
                              capture_output=True, text=True)
        return done.stdout

    def kill(self) -> None:
        subprocess.run(self.base + ["kill-server"], capture_output=True)


def _bars(screen: str) -> dict[int, str]:
    """Shard index -> its bar line, for the shards with a bar on screen."""
    return {int(m[1]): m[0] for m in re.finditer(r"^shard (\d+) \(cpu\) +━.*frames.*$",
                                                 screen, re.M)}


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux not installed (apt-get install "
                                                         "tmux)")
def test_predict_shows_live_bars_in_a_terminal(tiny_cache, tmp_path):
    out, status = tmp_path / "out", tmp_path / "exit"
    command = (f"cd {REPO} && VIRNUC_HPC_CACHE={tiny_cache} {sys.executable} -m virnuc_hpc "
               f"predict {EXAMPLE} -o {out} --models tiny --shards 4 --parallel 2; "
               f"echo $? > {status}; sleep 600")
    tmux = Tmux(f"virnuc-live-{os.getpid()}")
    screens: list[tuple[float, str]] = []
    start = time.monotonic()
    tmux.start(command)
    try:
        while not status.exists() and time.monotonic() - start < 300:
            screens.append((time.monotonic() - start, tmux.screen()))
            time.sleep(0.5)
        final = tmux.screen()
    finally:
        tmux.kill()
    assert status.read_text().strip() == "0", final
    with_bars = [(t, _bars(s)) for t, s in screens if _bars(s)]
    first_two = next(t for t, bars in with_bars if len(bars) >= 2)
    print(f"two shard bars first seen {first_two:.1f} s after start")
    assert first_two <= 10, f"two shard bars first seen {first_two:.1f} s after start"
    _assert_updates_every(with_bars, 5.0)
    counts = {m for _, bars in with_bars for line in bars.values()
              for m in re.findall(r"(\d+)/\d+ frames", line)}
    assert counts - {"0"}, "no running shard ever showed frames done"
    for index in range(4):
        assert re.search(rf"shard {index} \(cpu\): done, \d+ frames in", final), final
    assert re.search(r"progress: 4/4 shards done, 0 running; 100% of the run", final), final


def _assert_updates_every(with_bars: list[tuple[float, dict]], limit: float) -> None:
    """While bars are on screen, some bar line changes at least every `limit` seconds."""
    last_change, previous = with_bars[0][0], with_bars[0][1]
    for t, bars in with_bars[1:]:
        if bars != previous:
            assert t - last_change <= limit, f"bars unchanged for {t - last_change:.1f} s"
            last_change, previous = t, bars


def test_run_without_terminal_logs_periodic_lines(tiny_cache, tmp_path):
    """`predict` in a batch job: plain periodic lines on stderr, no carriage returns."""
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "virnuc_hpc", "predict", str(EXAMPLE), "-o",
                           str(out), "--models", "tiny", "--shards", "2",
                           "--progress-interval", "1"],
                          capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stderr and "\x1b" not in done.stderr
    lines = done.stderr.splitlines()
    assert sum(" progress: " in line for line in lines) >= 3, done.stderr
    assert sum(bool(re.search(r"shard \d \(cpu\): done, \d+ frames", x)) for x in lines) == 2
    quiet = subprocess.run([sys.executable, "-m", "virnuc_hpc", "run", str(out), "--quiet"],
                           capture_output=True, text=True, cwd=REPO)
    assert quiet.returncode == 0 and "progress:" not in quiet.stderr
    assert Path(RunDir(out).predictions).exists()

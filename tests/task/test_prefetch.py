"""The overlap inside a task (virnuc_hpc/task/prefetch.py): bounded, joined on every way out, its
threads' errors raised in the task, and the bytes of a shard the same as without it."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import pytest

from tests.helpers import REPO
from tests.helpers_run import part_digests, plan
from virnuc_hpc.task.prefetch import Ahead, Behind
from virnuc_hpc.core.rundir import RunDir
from virnuc_hpc.parts import read_done
from virnuc_hpc.task.frames import FramePipeline
from virnuc_hpc.task.run import StopRequested, TaskIOError, run_task, task_options

PART_ROWS = 8  # examples/reads.fa: 6 parts


@pytest.fixture(autouse=True)
def no_thread_left():
    """Every test here ends with the threads it started joined."""
    before = threading.active_count()
    yield
    assert threading.active_count() == before, [t.name for t in threading.enumerate()]


# -- the two classes ------------------------------------------------------------------------

def _counted(n: int, made: list[int], fail_at: int | None = None):
    for k in range(n):
        if k == fail_at:
            raise ValueError(f"item {k} cannot be made")
        made.append(k)
        yield k


@pytest.mark.parametrize("depth", [1, 2])
def test_the_producer_stays_at_most_depth_plus_one_items_ahead(depth):
    made, ahead = [], []
    with Ahead(_counted(12, made), depth) as items:
        for k in items:
            time.sleep(0.02)  # a slow consumer: the producer fills its queue and waits
            ahead.append(len(made) - (k + 1))
    assert max(ahead) == depth + 1   # it does run ahead, by the queue and the item in hand
    assert list(range(12)) == made


def test_the_producers_exception_is_raised_in_the_consumer():
    got = []
    with pytest.raises(ValueError, match="item 3 cannot"), Ahead(_counted(9, [], 3), 1) as items:
        got.extend(items)
    assert got == [0, 1, 2]


def test_a_consumer_that_leaves_early_stops_and_joins_the_producer():
    closed = threading.Event()

    def endless():
        try:
            while True:
                yield threading.current_thread().name
        finally:
            closed.set()

    with Ahead(endless(), 2) as items:
        assert next(iter(items)) == "prefetch"
    assert closed.is_set()


def test_depth_0_runs_everything_in_the_callers_thread():
    names, written = [], []
    with Ahead((threading.current_thread().name for _ in range(3)), 0) as items, \
            Behind(lambda item: written.append(threading.current_thread().name), 0) as behind:
        for name in items:
            names.append(name)
            behind.submit(name)
        behind.finish()
    assert names == written == ["MainThread"] * 3


def test_the_writer_writes_in_order_in_its_thread_and_finish_waits_for_all():
    written = []

    def write(item):
        time.sleep(0.01)
        written.append((item, threading.current_thread().name))

    with Behind(write, 1) as behind:
        for k in range(5):
            behind.submit(k)
        behind.finish()
        assert written == [(k, "writer") for k in range(5)]


def test_a_failed_write_is_raised_by_the_next_hand_over():
    def write(item):
        if item == 1:
            raise OSError(28, "No space left on device", f"part-{item}")

    with pytest.raises(OSError, match="No space") as caught, Behind(write, 1) as behind:
        for k in range(50):
            behind.submit(k)
            time.sleep(0.01)
        behind.finish()
    assert caught.value.filename == "part-1"


def test_leaving_on_an_error_drops_the_queued_items_and_joins():
    written, release = [], threading.Event()

    def write(item):
        release.wait(5)
        written.append(item)

    with pytest.raises(KeyboardInterrupt), Behind(write, 1) as behind:
        behind.submit(0)   # in hand
        behind.submit(1)   # queued
        release.set()
        raise KeyboardInterrupt
    assert written in ([0], [0, 1])   # the write in progress ends; nothing new starts after


# -- in a task --------------------------------------------------------------------------------

def _options(run_dir, depth: int):
    return replace(task_options(run_dir, "cpu"), prefetch=depth)


def _planned(run_dir):
    plan(REPO / "examples" / "reads.fa", run_dir, part_rows=PART_ROWS)
    return run_dir


@pytest.fixture(scope="module")
def sequential(tiny_cache, tmp_path_factory):
    """The shard run without the overlap: the bytes every other run must equal."""
    run_dir = _planned(tmp_path_factory.mktemp("sequential") / "run")
    run_task(run_dir, 0, _options(run_dir, 0))
    return run_dir


@pytest.fixture
def shard(tiny_cache, tmp_path):
    return _planned(tmp_path / "run")


def _shard_bytes(run_dir) -> dict[str, bytes]:
    task = RunDir(run_dir).task(0)
    return {p.name: p.read_bytes() for p in sorted(task.root.glob("part-*"))} | \
        {"accounting": task.accounting.read_bytes()}


def test_with_the_overlap_the_shard_is_the_sequential_one_byte_for_byte(sequential, shard,
                                                                        monkeypatch):
    """Parts, sidecars and accounting equal; the producer really ran ahead of the encoders,
    by at most its queue and the part in its hands."""
    made, ahead = [], []
    tokenize, features = FramePipeline.tokenize, FramePipeline.features

    def slow_features(self, part):
        time.sleep(0.05)   # slow encoders: the producer fills its queue meanwhile, then waits
        ahead.append(len(made) - len(ahead) - 1)   # parts tokenized beyond this one
        return features(self, part)

    monkeypatch.setattr(FramePipeline, "tokenize",
                        lambda self, part: made.append(1) or tokenize(self, part))
    monkeypatch.setattr(FramePipeline, "features", slow_features)
    run_task(shard, 0, _options(shard, 1))
    assert _shard_bytes(shard) == _shard_bytes(sequential)
    assert part_digests(shard) == part_digests(sequential) and len(ahead) >= 5
    assert max(ahead) == 2   # the queue (1) and the part in the producer's hands


def test_an_error_in_the_producer_fails_the_task(shard, monkeypatch):
    tokenize, where = FramePipeline.tokenize, []

    def breaks(self, part):
        if len(where) == 2:
            where.append(threading.current_thread().name)
            raise RuntimeError("the tokenizer broke")
        where.append(None)
        return tokenize(self, part)

    monkeypatch.setattr(FramePipeline, "tokenize", breaks)
    with pytest.raises(RuntimeError, match="the tokenizer broke"):
        run_task(shard, 0, _options(shard, 1))
    task = RunDir(shard).task(0)
    assert where[-1] == "prefetch" and not task.done.exists()
    assert "RuntimeError: the tokenizer broke" in task.failed.read_text()


def test_an_io_error_in_the_writer_thread_fails_in_one_line_then_rerun_equals(sequential, shard,
                                                                             monkeypatch):
    monkeypatch.setenv("VIRNUC_HPC_FAULTS", "part.writing=eio@2")
    with pytest.raises(TaskIOError) as caught:
        run_task(shard, 0, _options(shard, 1))
    message = str(caught.value)
    assert message.startswith("shard 0: Input/output error") and "part-00001" in message
    task = RunDir(shard).task(0)
    assert "Input/output error" in task.failed.read_text() and task.part_indices() == [0]
    monkeypatch.delenv("VIRNUC_HPC_FAULTS")
    run_task(shard, 0, _options(shard, 1))
    assert part_digests(shard) == part_digests(sequential)


@pytest.mark.parametrize("rule", ["prefetch.part=usr2@4", "part.writing=term@2"])
def test_a_stop_signal_publishes_the_parts_computed_then_resumes_to_the_same_bytes(
        sequential, shard, monkeypatch, rule):
    """The signal comes from the producer or the writer thread, mid-run: the part being
    computed is finished and published, no new one starts, exit 75; the rerun resumes."""
    monkeypatch.setenv("VIRNUC_HPC_FAULTS", rule)
    with pytest.raises(StopRequested, match="stopped by signal after part"):
        run_task(shard, 0, _options(shard, 1))
    task = RunDir(shard).task(0)
    written = task.part_indices()
    assert written and not task.done.exists() and len(written) < len(part_digests(sequential))
    assert all(task.sidecar(k).exists() for k in written)   # no half part left behind
    monkeypatch.delenv("VIRNUC_HPC_FAULTS")
    run_task(shard, 0, _options(shard, 1))
    assert _shard_bytes(shard) == _shard_bytes(sequential)
    assert read_done(task.root)["parts"] == read_done(RunDir(sequential).task(0).root)["parts"]


def test_keyboard_interrupt_mid_part_joins_every_thread(shard, monkeypatch):
    features, calls = FramePipeline.features, []

    def interrupted(self, part):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return features(self, part)

    monkeypatch.setattr(FramePipeline, "features", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_task(shard, 0, _options(shard, 1))
    task = RunDir(shard).task(0)
    assert "KeyboardInterrupt" in task.failed.read_text() and not task.done.exists()


def test_a_bad_prefetch_setting_is_refused_in_one_line(shard, monkeypatch):
    from virnuc_hpc.core.errors import ConfigError

    monkeypatch.setenv("VIRNUC_HPC_PREFETCH", "yes")
    with pytest.raises(ConfigError, match="VIRNUC_HPC_PREFETCH='yes'"):
        task_options(shard, "cpu")
    monkeypatch.setenv("VIRNUC_HPC_PREFETCH", "0")
    assert task_options(shard, "cpu").prefetch == 0

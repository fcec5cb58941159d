"""LocalExecutor: K subprocesses at a time, one GPU slot each, failures named, Ctrl-C cleans up."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from virnuc_hpc.executors import (COMPLETED, FAILED, LocalExecutor, TasksFailed, detect_gpus,
                                  latest_jobs, read_record)


def test_runs_tasks_in_parallel_each_on_its_own_gpu(fake_run):
    run = fake_run(6)
    run.mode(0, "barrier:1")          # 0 and 1 can only finish if they run at the same time
    run.mode(1, "barrier:0")
    for i in range(2, 6):
        run.mode(i, "slot")           # exit 5 if a running task already holds this GPU id
    run.sleep(0.3)
    ex = LocalExecutor(parallel=2, gpus=["0", "1"], poll_s=0.05)
    outcome = ex.run(run.root, list(range(6)), run.task_argv, run.reduce_argv)
    assert outcome.failed == []
    assert run.done() == list(range(6))
    attempts = run.attempts()
    assert sorted(a["index"] for a in attempts) == list(range(6))       # each index once
    assert {a["cuda"] for a in attempts} == {"0", "1"}
    assert {a["index"]: a["cuda"] for a in attempts if a["index"] < 2} in (
        {0: "0", 1: "1"}, {0: "1", 1: "0"})
    assert outcome.reduce.state == COMPLETED and run.reduces()[-1]["missing"] == []


def test_failures_are_named_with_exit_codes_and_logs(fake_run):
    run = fake_run(4)
    run.mode(1, "fail")
    run.mode(2, "suicide")
    ex = LocalExecutor(parallel=2, gpus=[], poll_s=0.05)
    outcome = ex.run(run.root, [0, 1, 2, 3], run.task_argv, run.reduce_argv)
    assert outcome.failed == [1, 2]
    assert outcome.tasks[1].exit_code == 3 and outcome.tasks[2].exit_code == -signal.SIGKILL
    assert outcome.tasks[0].state == outcome.tasks[3].state == COMPLETED
    # the reduce step still ran (afterany) and refused the partial output
    assert outcome.reduce.state == FAILED and run.reduces()[-1]["missing"] == [1, 2]
    with pytest.raises(TasksFailed) as info:
        outcome.check(run.root)
    message = str(info.value)
    assert info.value.indices == [1, 2]
    assert "indices 1,2" in message and "exit code 3" in message and "SIGKILL" in message
    assert "virnuc-hpc resubmit" in message and "--indices 1,2" in message
    log = Path(outcome.tasks[1].log).read_text()
    assert "index 1 mode fail" in log and "index 1 stderr line" in log   # stdout and stderr


def test_each_index_has_its_own_log_and_the_run_is_recorded(fake_run):
    run = fake_run(3)
    ex = LocalExecutor(parallel=3, gpus=[], poll_s=0.05)
    sub = ex.submit(run.root, [0, 1, 2], run.task_argv)
    ex.wait(sub).check(run.root)
    logs = {i: Path(p) for i, p in sub.logs.items()}
    assert len(set(logs.values())) == 3
    for i, path in logs.items():
        assert f"index {i} done" in path.read_text()
    record = read_record(run.root)
    assert record["executor"] == "local"
    assert {i: log for i, (_, log) in latest_jobs(record).items()} == sub.logs


def test_no_multiprocessing_and_unpicklable_command_builders_work(fake_run, monkeypatch):
    import multiprocessing

    def forbidden(*args, **kwargs):
        raise AssertionError("multiprocessing must not be used")

    for name in ("Queue", "SimpleQueue", "Pool", "Process", "Manager"):
        monkeypatch.setattr(multiprocessing, name, forbidden)
    lock = threading.Lock()                       # unpicklable state in the builder's closure

    def task_argv(index: int) -> list[str]:
        with lock:
            return run.task_argv(index)

    run = fake_run(2)
    outcome = LocalExecutor(parallel=2, gpus=[], poll_s=0.05).run(run.root, [0, 1], task_argv)
    assert outcome.failed == [] and run.done() == [0, 1]


def test_gpus_detected_from_cuda_visible_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert detect_gpus() == ["2", "3"]
    assert LocalExecutor().parallel == 2
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert detect_gpus() == [] and LocalExecutor().parallel == 1


DRIVER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    from conftest import FakeRun
    from pathlib import Path
    from virnuc_hpc.executors import LocalExecutor
    run = FakeRun(Path({root!r}), 3)
    for i in range(3):
        run.mode(i, {mode!r})
    LocalExecutor(parallel=2, gpus=[], poll_s=0.05, grace_s={grace}).run(run.root, [0, 1, 2],
                                                                       run.task_argv)
""")


@pytest.fixture
def ended():
    """Processes to SIGKILL when the test ends, whatever happened (no leftover in a failure)."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _driver_with_two_running(tmp_path, ended, mode="hang", grace=5):
    root = tmp_path / "run"
    script = DRIVER.format(tests=str(Path(__file__).parent), root=str(root), mode=mode,
                           grace=grace)
    driver = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True)
    ended.append(driver.pid)
    attempts = root / "attempts.jsonl"
    deadline = time.monotonic() + 60
    while not (attempts.exists() and len(attempts.read_text().splitlines()) == 2):
        assert time.monotonic() < deadline and driver.poll() is None, "tasks did not start"
        time.sleep(0.05)
    pids = [json.loads(x)["pid"] for x in attempts.read_text().splitlines()]
    ended.extend(pids)
    return driver, attempts, pids


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_terminates_children_and_starts_no_more(tmp_path, ended, sig):
    driver, attempts, pids = _driver_with_two_running(tmp_path, ended)
    driver.send_signal(sig)
    _, err = driver.communicate(timeout=60)
    assert driver.returncode != 0 and "KeyboardInterrupt" in err
    for pid in pids:
        assert not _alive(pid), f"task process {pid} survived the interrupt"
    assert len(attempts.read_text().splitlines()) == 2, "a pending index started after Ctrl-C"


def test_a_second_ctrl_c_during_the_cleanup_still_ends_every_child(tmp_path, ended):
    """Tasks that ignore SIGTERM are killed after the grace period, even when the user presses
    Ctrl-C again meanwhile (the second press must not cut the cleanup short)."""
    driver, _, pids = _driver_with_two_running(tmp_path, ended, mode="stubborn", grace=2)
    driver.send_signal(signal.SIGINT)
    time.sleep(0.5)
    driver.send_signal(signal.SIGINT)
    _, err = driver.communicate(timeout=60)
    assert driver.returncode != 0 and "KeyboardInterrupt" in err
    for pid in pids:
        assert not _alive(pid), f"task process {pid} survived the interrupt"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/stat")
    return status.exists() and status.read_text().split()[2] != "Z"

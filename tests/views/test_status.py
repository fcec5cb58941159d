"""Task states from the files tasks leave: pending, running, done, failed, corrupt."""

from __future__ import annotations

import json
import os
import time

import pytest

from virnuc_hpc.core.rundir import RunDir
from virnuc_hpc.views.status import format_table, pending_indices, run_status, task_states
from virnuc_hpc.parts import mark_failed, write_heartbeat

try:
    from test_reduce import planned, run_task
except ImportError:  # tests/ imported as a package
    from tests.reduce.test_merge import planned, run_task


@pytest.fixture
def run_dir(tmp_path):
    run_dir, _ = planned(tmp_path, shards=6)
    return run_dir


def _beat(run_dir, index, age, done=10, total=40, rate=2.0):
    task = RunDir(run_dir).task(index)
    write_heartbeat(task, done, total, rate)
    beat = json.loads(task.heartbeat.read_text())
    beat["time"] -= age
    task.heartbeat.write_text(json.dumps(beat))


def test_every_state_is_recognised(run_dir):
    run = RunDir(run_dir)
    run_task(run_dir, 0)                     # done
    run_task(run_dir, 1)
    run.task(1).part(0).unlink()             # corrupt: a listed part is gone
    _beat(run_dir, 2, age=5)                 # running
    _beat(run_dir, 3, age=3600)              # failed: stale heartbeat, no DONE
    _beat(run_dir, 4, age=60)
    mark_failed(run.task(4), "CUDA out of memory")  # failed: marker newer than heartbeat
    states = {s["index"]: s for s in task_states(run_dir)}
    assert [states[i]["state"] for i in range(6)] == ["done", "corrupt", "running", "failed",
                                                      "failed", "pending"]
    assert "part 0" in states[1]["reason"] and "stale" in states[3]["reason"]
    assert states[4]["reason"] == "CUDA out of memory"
    running = states[2]
    assert (running["rate"], running["rows_done"], running["rows_total"]) == (2.0, 10, 40)
    assert running["log"].endswith("tasks/00002/task.log") and 4 < running["heartbeat_age_s"] < 60
    assert pending_indices(run_dir) == [1, 3, 4, 5]
    assert pending_indices(run_dir, states={"running"}) == [2]
    with pytest.raises(ValueError, match="valid"):
        pending_indices(run_dir, states={"bogus"})


def test_restarted_task_after_failure_is_running(run_dir):
    mark_failed(RunDir(run_dir).task(0), "killed")
    time.sleep(0.01)
    _beat(run_dir, 0, age=0)
    assert task_states(run_dir)[0]["state"] == "running"


def test_bit_flip_needs_a_deep_check(run_dir):
    run_task(run_dir, 0)
    part = RunDir(run_dir).task(0).part(0)
    data = bytearray(part.read_bytes())
    data[-9] ^= 0x02
    part.write_bytes(bytes(data))
    assert task_states(run_dir)[0]["state"] == "done"  # same size: the cheap check passes
    deep = task_states(run_dir, deep=True)[0]
    assert deep["state"] == "corrupt" and "sha256" in deep["reason"]


def test_totals_and_eta(run_dir):
    run_task(run_dir, 0)
    _beat(run_dir, 1, age=1, done=10, total=40, rate=2.0)
    status = run_status(run_dir)
    shards, totals = status["shards"], status["totals"]
    assert json.loads(json.dumps(status)) == status  # JSON shape for `status --json`
    assert totals["done"] == 1 and totals["running"] == 1 and totals["pending"] == 4
    chunks = {s["index"]: s["chunks"] for s in shards}
    left = sum(chunks.values()) - chunks[0] - chunks[1] * 10 / 40
    assert totals["eta_s"] == pytest.approx(left / (2.0 * chunks[1] / 40), rel=1e-3)
    table = format_table(status)
    assert "running" in table and "ETA" in table


def test_no_eta_when_nothing_runs(run_dir):
    totals = run_status(run_dir)["totals"]
    assert totals["pending"] == 6 and totals["eta_s"] is None


def test_fresh_heartbeat_of_an_ended_process_is_failed(run_dir):
    """A task killed on this host (or whose DONE was deleted) does not look running."""
    import subprocess
    import sys
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    _beat(run_dir, 0, age=1)
    task = RunDir(run_dir).task(0)
    beat = json.loads(task.heartbeat.read_text())
    beat["pid"] = int(child.stdout)
    task.heartbeat.write_text(json.dumps(beat))
    state = task_states(run_dir)[0]
    assert state["state"] == "failed" and "ended without DONE" in state["reason"]
    assert pending_indices(run_dir) == list(range(6))


def test_ended_heartbeat_without_done_is_failed(run_dir):
    task = RunDir(run_dir).task(0)
    write_heartbeat(task, 40, 40, 3.0, ended=True)
    assert task_states(run_dir)[0]["state"] == "failed"
    run_task(run_dir, 0)
    write_heartbeat(task, 40, 40, 3.0, ended=True)
    assert task_states(run_dir)[0]["state"] == "done"
    task.done.unlink()  # DONE deleted after the task ended: not "running"
    assert task_states(run_dir)[0]["state"] == "failed"


def test_reduce_verdict_shows_corrupt_until_resubmit_repairs(tiny_cache, tmp_path):
    """A bit flip that only reduce's full check finds: status shows the shard `corrupt` with
    reduce's reason, `resubmit` with no arguments reruns it, and the results are as before."""
    from tests.helpers import REPO, run_cli
    from tests.helpers_run import planned_run

    run_dir = tmp_path / "run"
    planned_run(REPO / "examples" / "reads.fa", run_dir, shards=2, part_rows=8)
    run = RunDir(run_dir)
    clean = {p.name: p.read_bytes() for p in (run.prediction_results, run.predictions)}
    part = run.task(1).part(1)
    data = bytearray(part.read_bytes())
    data[-9] ^= 0x02
    part.write_bytes(bytes(data))
    assert task_states(run_dir)[1]["state"] == "done"      # the cheap check cannot see it
    refused = run_cli("reduce", run_dir)
    assert refused.returncode == 1 and "index 1:" in refused.stderr
    shard = json.loads(run_cli("status", run_dir, "--json").stdout)["shards"][1]
    assert shard["state"] == "corrupt", shard
    assert shard["reason"].startswith("reduce refused it: part 1: sha256"), shard
    assert "corrupt" in run_cli("status", run_dir).stdout
    repaired = run_cli("resubmit", run_dir, "--quiet")
    assert repaired.returncode == 0 and "resubmitted shard(s) 1" in repaired.stdout, \
        repaired.stderr
    assert [s["state"] for s in task_states(run_dir)] == ["done", "done"]
    assert not run.task(1).rejected.exists()
    assert run_cli("reduce", run_dir).returncode == 0
    assert {p.name: p.read_bytes() for p in (run.prediction_results, run.predictions)} == clean


def test_watch_shows_each_status_until_every_shard_ended(run_dir):
    from virnuc_hpc.views.status import watch

    seen = []

    def finish_one(_seconds):
        run_task(run_dir, len(seen) - 1)

    final = watch(run_dir, 5, lambda report: seen.append(report["totals"]["done"]),
                  sleep=finish_one)
    assert seen == [0, 1, 2, 3, 4, 5, 6] and all(s["state"] == "done" for s in final["shards"])
    mark_failed(RunDir(run_dir).task(0), "boom")   # failed counts as ended: no endless watch
    RunDir(run_dir).task(0).done.unlink()
    assert watch(run_dir, 5, lambda report: None, sleep=pytest.fail)["shards"][0]["state"] == \
        "failed"


def test_watch_redraws_one_table_in_a_terminal(run_dir, tmp_path):
    """`status --watch 1` in tmux: one table at a time, redrawn as shards finish; exits 0."""
    import shutil
    import sys

    from tests.helpers import REPO
    from tests.views.test_live import Tmux

    if shutil.which("tmux") is None:
        pytest.skip("tmux not installed (apt-get install tmux)")
    for index in range(5):
        run_task(run_dir, index)
    _beat(run_dir, 5, age=0)
    code = tmp_path / "exit"
    tmux = Tmux(f"virnuc-watch-{os.getpid()}")
    tmux.start(f"cd {REPO} && {sys.executable} -m virnuc_hpc status {run_dir} --watch 1; "
               f"echo $? > {code}; sleep 600", width=200)
    try:
        deadline = time.monotonic() + 60
        while "running" not in tmux.screen() and time.monotonic() < deadline:
            time.sleep(0.2)
        running = tmux.screen()
        run_task(run_dir, 5)
        while not code.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        final = tmux.screen()
    finally:
        tmux.kill()
    assert "1 running, 5 done" in running and running.count("index state") == 1, running
    assert code.read_text().strip() == "0", final
    assert "6 done" in final and final.count("index state") == 1, final


def test_progress_by_sample_follows_the_shards_holding_it(tmp_path):
    from virnuc_hpc.views.status import sample_progress

    try:
        from test_reduce import planned_study
    except ImportError:
        from tests.reduce.test_merge import planned_study
    run_dir, plan = planned_study(tmp_path, shards=5)
    run = RunDir(run_dir)
    for index in (1, 2, 3, 4):
        for path in run.task(index).root.iterdir():
            path.unlink()                                          # only shard 0 is done
    _beat(run_dir, 1, age=5, done=10, total=40)                    # shard 1 runs, 1/4 done
    status = run_status(run_dir, by_sample=True)
    rows = {row["sample"]: row for row in status["samples"]}
    for k, sample in enumerate(plan.samples):
        held = [(s, shard) for s in plan.shards for shard in s.samples if shard[0] == k]
        fed = [(s, n) for s in plan.shards for f, n in s.feeds if f == k]
        done = sum(shard[1] for s, shard in held if s.index == 0) + \
            sum(shard[1] / 4 for s, shard in held if s.index == 1) + \
            sum(n for s, n in fed if s.index == 0) + sum(n / 4 for s, n in fed if s.index == 1)
        row = rows[sample.name]
        assert row["shards"] == len({s.index for s, _ in held} | {s.index for s, _ in fed})
        assert row["sequences"] == sample.sequences
        assert row["done_fraction"] == pytest.approx(done / sample.sequences, abs=1e-4)
        states = {s.index: state for s, state in zip(plan.shards, ("done", "running", "pending",
                                                                  "pending", "pending"))}
        want = {states[s.index] for s, _ in held + fed}
        assert row["state"] == ("done" if want == {"done"} else
                                "running" if "running" in want else "pending")
    assert sample_progress(plan, status["shards"]) == status["samples"]
    table = format_table(status)
    assert table.splitlines()[0].split()[:4] == ["sample", "sequences", "shards", "done"]
    assert len(table.splitlines()) == len(plan.samples) + 2 and table.startswith("sample")

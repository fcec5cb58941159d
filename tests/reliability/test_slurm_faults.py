"""Faults on the SLURM test cluster, on one small run: slurmd killed while tasks run (a node
failure) and restarted, a task cancelled, the reduce job cancelled; after `resubmit` the
results equal a clean local run's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from tests.executors.slurm.test_executor import RESULT_FILES, WAIT_S, cli, wait_for, wait_latest
from tests.helpers import run_cli
from tests.reliability import tally
from virnuc_hpc.executors import read_record, submissions
from virnuc_hpc.plan import load_plan


def node_failure(cluster) -> None:
    """slurmd SIGKILLed while tasks run, then restarted (it finds its job steps again)."""
    slurmd = cluster._pid("slurmd")
    assert slurmd is not None
    os.kill(slurmd, signal.SIGKILL)
    time.sleep(2)
    cluster.run("slurmd")


def _states(run: Path) -> dict[int, str]:
    status = json.loads(run_cli("status", run, "--json").stdout)
    return {s["index"]: s["state"] for s in status["shards"]}


def test_node_failure_cancelled_task_and_cancelled_reduce_end_equal_to_a_clean_run(
        slurm_cluster, bench, tmp_path, monkeypatch):
    reads, config = bench.input, tmp_path / "run.yaml"
    config.write_text("part_rows: 1\n")
    common = ("--models", "tiny", "--shards", "4", "--config", config, "--precision", "fp32")
    run, clean = tmp_path / "slurm", tmp_path / "clean"
    monkeypatch.setenv("VIRNUC_HPC_FAULTS", "embed.batch=slow@1+")   # tasks run ~10 s or more
    cli("submit", reads, "--run-dir", run, *common, "--partition", "debug", "--time", "10",
        "--cpus-per-task", "1", "--mem", "1G", "--array-parallelism", "2")
    monkeypatch.delenv("VIRNUC_HPC_FAULTS")
    sub = submissions(read_record(run))[-1]
    subprocess.run(["scancel", sub.reduce_job], check=True)          # the reduce job cancelled
    shards = load_plan(run).shards[:2]                                # the two running first
    busy = max(shards, key=lambda s: s.chunks).index                  # the longer: still running
    wait_for(run / "tasks" / f"{busy:05d}" / "heartbeat.json", timeout_s=WAIT_S)
    subprocess.run(["scancel", sub.jobs[busy]], check=True)          # a running task cancelled
    node_failure(slurm_cluster)                                      # while the other runs
    wait_latest(run)
    assert _states(run)[busy] == "failed" and not (run / "results" / "summary.json").exists()
    for _ in range(3):                                              # resubmit until all done
        if "resubmitted" not in cli("resubmit", run):
            break
        outcome = wait_latest(run)
        if outcome.reduce is not None and outcome.reduce.state == "completed":
            break
    cli("submit", reads, "--run-dir", clean, *common, "--profile", "local", "--parallel", "2")
    equal = all((run / "results" / name).read_bytes() == (clean / "results" / name).read_bytes()
                for name in RESULT_FILES)
    for fault in ("node failure", "task cancelled", "reduce cancelled"):
        tally.record(f"slurm: {fault}", "recovered" if equal else "lost",
                     "" if equal else "results after resubmit differ from a clean run's")
    assert equal

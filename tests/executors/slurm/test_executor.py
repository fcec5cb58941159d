"""SlurmExecutor: exact sbatch flags (faked sbatch), then a real slurmctld + slurmd cluster.

The cluster tests use fake_task.py as the task command: arrays with one (fake) GPU per task,
the afterany reduce job, scancel + resubmit of one index, requeue after a time limit, and the
scheduler's reasons for pending tasks (a request larger than the node, a node held by a job).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from virnuc_hpc.executors import (COMPLETED, FAILED, executor_for_run, latest_jobs,
                                  read_record, submissions)
from virnuc_hpc.executors.slurm.executor import (SlurmExecutor, merge_view, scheduler_view,
                                        split_arrays)
from virnuc_hpc.executors.profiles import profile_from_dict
from virnuc_hpc.core.rundir import RunDir

WAIT_S = 120


def profile(**keys):
    base = {"executor": "slurm", "partition": "debug", "time": 5, "gpus_per_task": 1,
            "cpus_per_task": 1, "array_parallelism": 2, "signal_delay_s": 20}
    return profile_from_dict({**base, **keys}, name="test")


# -- without a cluster ------------------------------------------------------------------------

def sbatch_flags(script: str) -> dict[str, str]:
    flags = {}
    for line in script.splitlines():
        if line.startswith("#SBATCH --"):
            key, _, value = line[len("#SBATCH --"):].partition("=")
            flags[key] = value
    return flags


def test_submit_sends_arrays_split_at_max_array_size_and_an_afterany_reduce(fake_slurm, fake_run):
    run = fake_run(5)
    prof = profile(account="lab", qos="high", time="1:30:00", mem="16G", cpus_per_task=4)
    sub = SlurmExecutor(prof).submit(run.root, [0, 1, 2, 3, 4], run.task_argv, run.reduce_argv)
    a1, a2, red = (sbatch_flags(p.read_text()) for p in fake_slurm.submitted())
    expected = {"partition": "debug", "account": "lab", "qos": "high", "time": "90",
                "cpus-per-task": "4", "mem": "16G", "gpus-per-task": "1", "ntasks-per-node": "1",
                "signal": "USR2@20", "job-name": f"virnuc-{run.root.name}"}
    for flags, array in ((a1, "0-2%2"), (a2, "0-1%2")):
        assert {k: flags[k] for k in expected} == expected
        assert flags["array"] == array
        assert flags["output"].endswith("/slurm/%A_%a/%A_%a_0_log.out")
    assert red["dependency"] == "afterany:101:102" and "gpus-per-task" not in red
    assert "array" not in red and red["job-name"] == f"virnuc-{run.root.name}-reduce"
    assert sub.jobs == {0: "101_0", 1: "101_1", 2: "101_2", 3: "102_0", 4: "102_1"}
    assert sub.arrays == [{"job_id": "101", "indices": [0, 1, 2]},
                          {"job_id": "102", "indices": [3, 4]}]
    assert sub.reduce_job == "103"
    record = read_record(run.root)                  # status/resubmit work from disk
    assert record["executor"] == "slurm" and record["profile"]["account"] == "lab"
    assert latest_jobs(record)[4] == ("102_1", str(run.root / "slurm/102_1/102_1_0_log.out"))


def test_dry_run_prints_the_scripts_and_submits_nothing(fake_slurm, fake_run):
    run = fake_run(4)
    text = SlurmExecutor(profile()).dry_run(run.root, [0, 1, 2, 3], run.task_argv,
                                            run.reduce_argv)
    assert "#SBATCH --array=0-2%2" in text and text.count("#SBATCH --array") == 1
    assert "#SBATCH --gpus-per-task=1" in text
    assert f"#SBATCH --output={run.root}/slurm/%A_%a/%A_%a_0_log.out" in text
    assert "--dependency='afterany:<array 1 job id>:<array 2 job id>'" in text
    assert "#   2 -> 2: " in text and "#   0 -> 3: " in text and "fake_task.py" in text
    assert not (fake_slurm.bin / "counter").exists() and read_record(run.root) is None


def test_submit_dry_run_cli_prints_the_array_script_and_writes_nothing(fake_slurm, tiny_cache,
                                                                      tmp_path):
    from tests.executors.fake_slurm import captured
    from tests.helpers import REPO, run_cli

    fake_slurm.scontrol(partition=captured("partition-mixed"), node=captured("node-mixed"))
    run_dir = tmp_path / "run"
    done = run_cli("submit", REPO / "examples" / "reads.fa", "--run-dir", run_dir, "--models",
                   "tiny", "--shards", "3", "--partition", "gpu", "--array-parallelism", "2",
                   "--dry-run")
    assert done.returncode == 0, done.stderr
    flags = sbatch_flags(done.stdout.split("# --- reduce job")[0])
    assert flags["array"] == "0-2%2" and flags["gpus-per-task"] == "1"
    assert flags["partition"] == "gpu" and flags["output"].endswith("%A_%a/%A_%a_0_log.out")
    assert "run-task" in done.stdout and "--dependency='afterany:" in done.stdout
    assert "# request check: ok: 8 CPUs, 64G and 1 GPU per task fit 2 of 2 node(s) of " \
           "partition gpu" in done.stdout
    assert not run_dir.exists() and not fake_slurm.submitted()
    bad = tmp_path / "bad.yaml"
    bad.write_text("executor: slurm\nqueue: gpu\n")
    done = run_cli("submit", "x.fa", "--run-dir", run_dir, "--profile", bad, "--dry-run")
    assert done.returncode == 2 and "unknown key(s) queue" in done.stderr
    assert "valid keys: executor, partition" in done.stderr


def test_submit_wait_exits_0_only_once_the_results_are_published_from_every_shard(
        fake_slurm, tiny_cache, tmp_path):
    import os

    from tests.helpers import REPO, run_cli
    from tests.helpers_run import run_all
    from virnuc_hpc.reduce.merge import reduce_run

    fake_slurm.command("squeue", "#!/bin/bash\nprintf '101_0|COMPLETED|None\\n"
                                 "101_1|COMPLETED|None\\n102|COMPLETED|None\\n'\n")
    run_dir = tmp_path / "run"
    args = ("submit", REPO / "examples" / "reads.fa", "--run-dir", run_dir, "--models", "tiny",
            "--shards", "2", "--partition", "debug", "--cpus-per-task", "1", "--mem", "1G",
            "--wait")
    done = run_cli(*args)                          # the jobs "ended", but nothing ran
    assert done.returncode == 1 and "array job 101: 2 task(s)" in done.stdout
    assert "ended but no results were published from every shard (reduce log: " in done.stderr
    run_all(run_dir)
    assert reduce_run(run_dir).ok                  # what the array and the reduce job do
    done = run_cli(*args)
    assert done.returncode == 0, done.stderr
    assert "nothing to submit" in done.stdout and f"results: {run_dir}/results" in done.stdout
    os.utime(RunDir(run_dir).task(1).done)         # a shard done again after that reduce
    done = run_cli(*args)
    assert done.returncode == 1 and "no results were published" in done.stderr
    assert len(fake_slurm.submitted()) == 2        # the array and the reduce job, once


def test_status_merge_marks_cancelled_or_vanished_tasks_failed():
    from virnuc_hpc.executors import TaskState
    from virnuc_hpc.executors.slurm.executor import merge_view

    disk = [{"index": i, "state": s, "reason": ""} for i, s in
            enumerate(["running", "pending", "pending", "done", "pending"])]
    view = {0: TaskState(0, FAILED, "9_0", "l0", detail="CANCELLED"),
            1: TaskState(1, "running", "9_1", "l1", detail="RUNNING"),
            2: TaskState(2, COMPLETED, "9_2", "l2", detail="COMPLETED"),
            3: TaskState(3, FAILED, "9_3", "l3", detail="TIMEOUT"),
            4: TaskState(4, "pending", "9_4", "l4", detail="PENDING")}
    merged = merge_view(disk, view)
    assert [m["state"] for m in merged] == ["failed", "running", "failed", "done", "pending"]
    assert "9_0 ended CANCELLED" in merged[0]["reason"]
    assert "exited" not in merged[2]["reason"] and "COMPLETED without DONE" in merged[2]["reason"]
    assert merged[3]["scheduler_state"] == "TIMEOUT" and merged[3]["reason"] == ""  # disk wins
    assert merged[4]["reason"] == "queued as SLURM job 9_4" and merged[4]["scheduler_log"] == "l4"


def test_scheduler_is_polled_at_most_once_per_interval(fake_slurm, fake_run):
    run = fake_run(2)
    SlurmExecutor(profile()).submit(run.root, [0, 1], run.task_argv)
    calls = fake_slurm.bin / "squeue.calls"
    (fake_slurm.bin / "squeue").write_text(
        f"#!/bin/bash\necho x >> {calls}\nprintf '101_0|RUNNING\\n101_1|CANCELLED\\n'\n")
    first = scheduler_view(run.root)
    assert {i: (t.state, t.detail) for i, t in first.items()} == {
        0: ("running", "RUNNING"), 1: ("failed", "CANCELLED")}
    assert scheduler_view(run.root) == first
    assert len(calls.read_text().splitlines()) == 1               # second answer was cached
    scheduler_view(run.root, max_age_s=0)
    assert len(calls.read_text().splitlines()) == 2
    cache = run.root / "slurm" / "scheduler.json"        # as written before reasons were kept
    cache.write_text(json.dumps({"time": time.time(), "asked": ["101_0", "101_1"],
                                 "states": {"101_0": "PENDING", "101_1": "PENDING"}}))
    assert scheduler_view(run.root) == first and len(calls.read_text().splitlines()) == 3


def test_pending_reasons_come_with_the_states_and_stuck_ones_are_spelled_out(fake_slurm,
                                                                             fake_run):
    run = fake_run(3)
    SlurmExecutor(profile(cpus_per_task=4, mem="1G")).submit(run.root, [0, 1, 2], run.task_argv)
    squeue = fake_slurm.bin / "squeue"
    squeue.write_text(f"#!/bin/bash\necho \"$*\" >> {fake_slurm.bin}/squeue.calls\nprintf "
                      "'101_0|PENDING|Resources\\n101_1|PENDING|Priority\\n101_2|RUNNING|None\\n'\n")
    view = scheduler_view(run.root)
    assert "%i|%T|%r" in fake_slurm.calls("squeue")[0]                 # one call, both columns
    assert {i: (t.state, t.reason) for i, t in view.items()} == {
        0: ("pending", "Resources"), 1: ("pending", "Priority"), 2: ("running", "")}
    assert not [c for c in fake_slurm.calls("scontrol") if "partition" in c]   # nothing stuck
    disk = [{"index": i, "state": "pending", "reason": ""} for i in range(3)]
    merged = merge_view(disk, view)
    assert merged[0]["reason"] == "queued as SLURM job 101_0: Resources (waits for a node with " \
                                  "free CPUs, memory or GPUs)"
    assert merged[0]["scheduler_reason"] == "Resources" and merged[2]["scheduler_reason"] is None
    assert merged[1]["reason"].startswith("queued as SLURM job 101_1: Priority (")

    squeue.write_text("#!/bin/bash\nprintf '101_0|PENDING|PartitionConfig\\n"
                      "101_1|PENDING|PartitionConfig\\n101_2|PENDING|InvalidQOS\\n'\n")
    view = scheduler_view(run.root, max_age_s=0)
    merged = merge_view(disk, view)
    assert merged[0]["scheduler_reason"] == "PartitionConfig"
    assert merged[0]["reason"] == (
        "SLURM job 101_0 will not start by itself (PartitionConfig): asks for 4 CPUs per task; "
        "the largest node of partition debug has 2 CPUs: lower --cpus-per-task "
        "(`scancel 101`, then submit again)")     # the recorded profile against the nodes
    assert merged[2]["reason"] == (
        "SLURM job 101_2 will not start by itself (InvalidQOS): its QOS does not exist or is "
        "not yours: give another --qos (`scancel 101`, then submit again)")
    asked = len(fake_slurm.calls("scontrol"))
    assert scheduler_view(run.root) == view                   # cached with the check's line
    assert len(fake_slurm.calls("scontrol")) == asked
    assert json.loads((run.root / "slurm" / "scheduler.json").read_text())["misfit"].startswith(
        "asks for 4 CPUs per task")


def test_split_arrays():
    assert split_arrays([5, 7, 9, 11, 13], 2) == [[5, 7], [9, 11], [13]]
    assert split_arrays([], 1001) == []


# -- on a real cluster ------------------------------------------------------------------------

def wait_for(path: Path, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.2)


FAKE_APPTAINER = """#!/bin/bash
# stand-in for `apptainer exec --nv -B A -B B --env K=V IMAGE CMD...`
[ "$1" = exec ] && [ "$2" = --nv ] || exit 90
shift 2
while [ "${1:0:1}" = - ]; do
  [ "$1" = --env ] && export "$2"
  shift 2
done
export FAKE_WRAPPED="$1"; shift
exec "$@"
"""


def test_array_with_one_gpu_per_task_completes_through_reduce(slurm_cluster, fake_run,
                                                              tmp_path, monkeypatch):
    wrapper = tmp_path / "fake-apptainer"
    wrapper.write_text(FAKE_APPTAINER)
    wrapper.chmod(0o755)
    monkeypatch.setenv("VIRNUC_CONTAINER_CMD", str(wrapper))
    prof = profile(image="virnuc.sif", cache=str(tmp_path))
    run = fake_run(4)
    run.sleep(1.5)
    for i in range(4):
        run.mode(i, "slot")      # fails if a running task shares its GPU id with another
    ex = SlurmExecutor(prof, poll_s=0.5)
    sub = ex.submit(run.root, [0, 1, 2, 3], lambda i: prof.wrap(run.root, run.task_argv(i)),
                    prof.wrap(run.root, run.reduce_argv))
    outcome = ex.wait(sub, timeout=WAIT_S)
    assert outcome.failed == [] and outcome.reduce.state == COMPLETED
    attempts = run.attempts()
    assert sorted(a["index"] for a in attempts) == [0, 1, 2, 3]       # one task per index
    for a in attempts:
        assert a["cuda"] in ("0", "1")                               # exactly one GPU each
        assert f"{a['array_job']}_{a['array_task']}" == sub.jobs[a["index"]]
        assert a["argv0"] == "virnuc.sif"                            # ran through the wrapper
    assert run.reduces() and run.reduces()[-1]["missing"] == []
    assert "index 0 done" in Path(sub.logs[0]).read_text()


def test_cancelled_index_fails_and_resubmit_reruns_only_it(slurm_cluster, fake_run):
    run = fake_run(3)
    run.mode(1, "hang")
    ex = SlurmExecutor(profile(), poll_s=0.5)
    sub = ex.submit(run.root, [0, 1, 2], run.task_argv, run.reduce_argv)
    wait_for(run.root / "started" / "1")
    subprocess.run(["scancel", sub.jobs[1]], check=True)
    outcome = ex.wait(sub, timeout=WAIT_S)
    assert outcome.failed == [1] and outcome.tasks[1].detail == "CANCELLED"
    assert outcome.reduce.state == FAILED and run.reduces()[-1]["missing"] == [1]
    view = scheduler_view(run.root, max_age_s=0)
    assert {i: t.state for i, t in view.items()} == {0: COMPLETED, 1: FAILED, 2: COMPLETED}
    on_disk = [{"index": 1, "state": "running", "reason": ""}]   # heartbeat still fresh
    assert merge_view(on_disk, view)[0]["state"] == "failed"

    run.mode(1, "ok")
    prof, again = executor_for_run(run.root, poll_s=0.5)   # rebuilt from RUN/submit.json
    assert prof.partition == "debug" and prof.gpus_per_task == 1
    sub2 = again.resubmit(run.root, [1], run.task_argv, run.reduce_argv)
    assert list(sub2.jobs) == [1]
    again.wait(sub2, timeout=WAIT_S).check(run.root)
    assert sorted(a["index"] for a in run.attempts()) == [0, 1, 1, 2]
    assert run.done() == [0, 1, 2] and run.reduces()[-1]["missing"] == []
    assert scheduler_view(run.root, max_age_s=0)[1].job_id == sub2.jobs[1]


def test_task_over_its_time_limit_is_requeued_and_resumes(slurm_cluster, fake_run):
    run = fake_run(1)
    run.mode(0, "resume")        # runs until signalled, writes a part; next attempt finishes
    ex = SlurmExecutor(profile(time=1, signal_delay_s=20, max_requeues=5), poll_s=0.5)
    sub = ex.submit(run.root, [0], run.task_argv)
    outcome = ex.wait(sub, timeout=WAIT_S)
    assert outcome.tasks[0].state == COMPLETED
    assert "stopped by" in (run.root / "tasks/0/part-0").read_text()
    assert run.done() == [0]
    restarts = [int(a["restarts"]) for a in run.attempts()]
    assert len(restarts) >= 2 and restarts == sorted(restarts) and restarts[-1] >= 1
    assert "Requeued job" in Path(sub.logs[0]).read_text()


# -- the scheduler's reasons on a real cluster -------------------------------------------------

def until(poll, what: str, timeout_s: float = 60):
    """poll() until it returns something true (returned), or fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not (value := poll()):
        assert time.monotonic() < deadline, f"{what}: not after {timeout_s} s"
        time.sleep(0.25)
    return value


def squeue(cluster, *job_ids: str) -> dict[str, tuple[str, str]]:
    """Job id (A_a for array tasks) -> (state, reason) of the jobs slurmctld remembers."""
    out = cluster.run("squeue", "-h", "-r", "-t", "all", "-o", "%i|%T|%r", "-j",
                      ",".join(job_ids), check=False).stdout
    return {i: (state, reason) for i, state, reason in
            (line.split("|", 2) for line in out.splitlines() if line.count("|") >= 2)}


def cancel(cluster, job_ids: list[str]) -> None:
    """scancel these jobs and wait until none of them is pending or running (deadline)."""
    job_ids = [j for j in job_ids if j]
    if not job_ids:
        return
    cluster.run("scancel", *job_ids, check=False)
    until(lambda: not any(s in ("PENDING", "RUNNING", "COMPLETING")
                          for s, _ in squeue(cluster, *job_ids).values()),
          f"jobs {job_ids} still queued after scancel", timeout_s=30)


def node(cluster) -> tuple[int, int]:
    """CPUs and RealMemory (MB) of the test cluster's only node."""
    cpus, mem = cluster.run("sinfo", "-h", "-N", "-o", "%c %m").stdout.split()
    return int(cpus), int(mem)


def test_submit_asking_more_than_the_node_has_is_refused_before_submission(slurm_cluster,
                                                                          tiny_cache, tmp_path):
    from tests.helpers import REPO, run_cli

    cpus, mem = node(slurm_cluster)
    run_dir = tmp_path / "too-big"
    args = ("submit", REPO / "examples" / "reads.fa", "--run-dir", run_dir, "--models", "tiny",
            "--shards", "2", "--partition", "debug", "--time", "5")
    refusals = {("--cpus-per-task", cpus + 1, "--mem", "1G"):
                f"asks for {cpus + 1} CPUs per task; the largest node of partition debug has "
                f"{cpus} CPUs: lower --cpus-per-task",
                ("--cpus-per-task", 1, "--mem", f"{mem + 1}M"):
                f"asks for {mem + 1}M per task; the largest node of partition debug has "
                f"{mem}M: lower --mem"}
    try:
        for flags, line in refusals.items():
            done = run_cli(*args, *flags)
            assert (done.returncode, done.stderr) == (2, f"virnuc-hpc submit: error: {line}\n")
        assert not run_dir.exists()
        flags, line = next(iter(refusals.items()))
        dry = run_cli(*args, *flags, "--dry-run")
        assert dry.returncode == 2 and f"# request check: refused: {line}\n" in dry.stdout
        assert "#SBATCH --array=0-1%2" in dry.stdout and not run_dir.exists()
    finally:                           # nothing may be queued; cancel by id if it was
        names = slurm_cluster.run("squeue", "-h", "-t", "all", "-o", "%j|%A").stdout
        ours = [line.split("|")[1] for line in names.split()
                if line.split("|")[0].startswith(f"virnuc-{run_dir.name}")]
        cancel(slurm_cluster, ours)
    assert ours == []


def test_a_task_held_by_another_job_shows_the_reason_in_status(slurm_cluster, tiny_cache,
                                                               tmp_path):
    from tests.helpers import REPO, run_cli

    cpus, _ = node(slurm_cluster)
    blocker = slurm_cluster.run("sbatch", "--parsable", "-p", "debug", "-c", str(cpus),
                                "--gres=gpu:2", "-o", "/dev/null", "--wrap", "sleep 300")
    jobs, run_dir = [blocker.stdout.strip()], tmp_path / "held"
    try:
        until(lambda: squeue(slurm_cluster, jobs[0]).get(jobs[0], ("",))[0] == "RUNNING",
              "the blocking job did not start")
        cli("submit", REPO / "examples" / "reads.fa", "--run-dir", run_dir, "--models", "tiny",
            "--shards", "2", "--partition", "debug", "--time", "5", "--cpus-per-task", "1",
            "--mem", "1G")
        sub = submissions(read_record(run_dir))[-1]
        jobs += [a["job_id"] for a in sub.arrays] + [sub.reduce_job]
        tasks = list(sub.jobs.values())

        def held() -> bool:
            seen = squeue(slurm_cluster, *tasks)
            return set(seen) == set(tasks) and all(r in ("Resources", "Priority")
                                                   for _, r in seen.values())
        until(held, "squeue gave no reason for the held array tasks")
        status = json.loads(run_cli("status", run_dir, "--json").stdout)
        for shard in status["shards"]:
            reason = shard["scheduler_reason"]
            assert shard["state"] == "pending" and reason in ("Resources", "Priority")
            assert shard["reason"].startswith(f"queued as SLURM job {shard['job_id']}: {reason} (")
        table = run_cli("status", run_dir).stdout
        assert f"queued as SLURM job {tasks[0]}: " in table
    finally:
        cancel(slurm_cluster, jobs)


def test_a_task_no_node_can_run_shows_why_and_what_to_lower(slurm_cluster, fake_run):
    cpus, _ = node(slurm_cluster)
    run = fake_run(1)                  # submitted through the library: no request check
    sub = SlurmExecutor(profile(cpus_per_task=cpus + 1, mem="1G")).submit(run.root, [0],
                                                                          run.task_argv)
    try:
        task = until(lambda: (t := scheduler_view(run.root, max_age_s=0)[0]).reason and t,
                     "squeue gave no reason for the task")
        assert (task.state, task.reason) == ("pending", "PartitionConfig")
        assert task.note == (
            f"SLURM job {sub.jobs[0]} will not start by itself (PartitionConfig): asks for "
            f"{cpus + 1} CPUs per task; the largest node of partition debug has {cpus} CPUs: "
            f"lower --cpus-per-task (`scancel {sub.arrays[0]['job_id']}`, then submit again)")
    finally:
        cancel(slurm_cluster, [sub.arrays[0]["job_id"]])


# -- the real pipeline through the CLI ----------------------------------------------------------

RESULT_FILES = ("prediction_results.txt", "prediction_results_highestscore.csv", "predictions.tsv")


def cli(*args) -> str:
    from tests.helpers import run_cli

    done = run_cli(*args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def wait_latest(run_dir: Path):
    sub = submissions(read_record(run_dir))[-1]
    return SlurmExecutor(profile(), poll_s=0.5).wait(sub, timeout=WAIT_S)


def test_submit_through_slurm_equals_local_and_resubmit_repairs_a_shard(slurm_cluster,
                                                                        tiny_cache, tmp_path):
    from tests.helpers import REPO

    reads, common = REPO / "examples" / "reads.fa", ("--models", "tiny", "--shards", "4",
                                                      "--precision", "fp32")
    on_slurm, local = tmp_path / "slurm", tmp_path / "local"
    slurm_args = ("submit", reads, "--run-dir", on_slurm, *common, "--partition", "debug",
                  "--time", "10", "--cpus-per-task", "1", "--mem", "1G")
    out = cli(*slurm_args)
    assert "array job" in out and f"virnuc-hpc status {on_slurm}" in out
    outcome = wait_latest(on_slurm)
    assert outcome.failed == [] and outcome.reduce.state == COMPLETED
    cli("submit", reads, "--run-dir", local, *common, "--profile", "local", "--parallel", "2")
    for name in RESULT_FILES:
        assert (on_slurm / "results" / name).read_bytes() == (local / "results" / name).read_bytes()
    assert "nothing to submit" in cli(*slurm_args)          # same plan reused, all done

    part = next((on_slurm / "tasks" / "00001").glob("part-*.safetensors"))
    part.write_bytes(part.read_bytes()[:-7])                 # corrupt shard 1
    (on_slurm / "results" / RESULT_FILES[0]).unlink()
    assert "resubmitted shard(s) 1" in cli("resubmit", on_slurm)
    assert list(submissions(read_record(on_slurm))[-1].jobs) == [1]
    outcome = wait_latest(on_slurm)
    assert outcome.failed == [] and outcome.reduce.state == COMPLETED
    for name in RESULT_FILES:
        assert (on_slurm / "results" / name).read_bytes() == (local / "results" / name).read_bytes()


def test_scancel_mid_run_then_resubmit_equals_a_clean_run(slurm_cluster, tiny_cache, golden,
                                                          tmp_path, monkeypatch):
    """The real pipeline: one shard cancelled while it computes shows `failed` in status;
    resubmit reruns only it; the merged results equal a clean local run's."""
    import json

    from tests.helpers import run_cli

    records = (golden / "generated" / "input.fa").read_text().split(">")[1:41]
    reads = tmp_path / "reads.fa"
    reads.write_text("".join(">" + record for record in records))   # 40 of the golden reads
    config = tmp_path / "run.yaml"
    config.write_text("part_rows: 2\n")         # many small parts: the shard runs a while
    common = ("--models", "tiny", "--shards", "4", "--config", config, "--precision", "fp32")
    on_slurm, clean = tmp_path / "slurm", tmp_path / "clean"
    monkeypatch.setenv("VIRNUC_HPC_FAULTS", "part.written:*/00002/part-*=slow@1+")  # caught running
    cli("submit", reads, "--run-dir", on_slurm, *common, "--partition", "debug", "--time", "10",
        "--cpus-per-task", "1", "--mem", "1G", "--array-parallelism", "2")
    monkeypatch.delenv("VIRNUC_HPC_FAULTS")
    sub = submissions(read_record(on_slurm))[-1]
    heartbeat = on_slurm / "tasks" / "00002" / "heartbeat.json"
    wait_for(heartbeat, timeout_s=WAIT_S)
    assert not (on_slurm / "tasks" / "00002" / "DONE").exists()
    subprocess.run(["scancel", sub.jobs[2]], check=True)
    outcome = wait_latest(on_slurm)
    assert outcome.failed == [2]
    status = json.loads(run_cli("status", on_slurm, "--json").stdout)
    assert {s["index"]: s["state"] for s in status["shards"]} == \
        {0: "done", 1: "done", 2: "failed", 3: "done"}
    assert run_cli("reduce", on_slurm).returncode == 1
    assert "resubmitted shard(s) 2" in cli("resubmit", on_slurm)
    assert list(submissions(read_record(on_slurm))[-1].jobs) == [2]
    outcome = wait_latest(on_slurm)
    assert outcome.failed == [] and outcome.reduce.state == COMPLETED
    cli("submit", reads, "--run-dir", clean, *common, "--profile", "local", "--parallel", "2")
    for name in RESULT_FILES:
        assert (on_slurm / "results" / name).read_bytes() == (clean / "results" / name).read_bytes()


def test_a_study_on_slurm_resubmits_a_cancelled_shard_and_equals_a_local_run(
        slurm_cluster, tiny_cache, tmp_path):
    """12 samples in one array of 3 shards: one shard cancelled while it runs, the samples it
    holds shown unfinished by `status --by-sample`; resubmit reruns that shard alone; each
    sample's files, and samples.tsv, equal a local run's."""
    from tests.helpers import run_cli
    from tests.helpers_study import write_study

    sizes = [300, 1, 40, 5, 8, 200, 3, 2, 150, 6, 90, 4]
    sheet, samples = write_study(tmp_path / "inputs", sizes)
    config = tmp_path / "run.yaml"
    config.write_text("part_rows: 4\n")          # many small parts: the shard runs a while
    common = ("--samplesheet", sheet, "--models", "tiny", "--shards", "3", "--chunk-size", "300",
              "--config", config, "--precision", "fp32")
    on_slurm, local = tmp_path / "slurm", tmp_path / "local"
    cli("submit", "--run-dir", on_slurm, *common, "--partition", "debug", "--time", "10",
        "--cpus-per-task", "1", "--mem", "1G", "--array-parallelism", "2")
    sub = submissions(read_record(on_slurm))[-1]
    wait_for(on_slurm / "tasks" / "00001" / "heartbeat.json", timeout_s=WAIT_S)
    subprocess.run(["scancel", sub.jobs[1]], check=True)
    outcome = wait_latest(on_slurm)
    assert outcome.failed == [1] and outcome.reduce.state == FAILED
    status = json.loads(run_cli("status", on_slurm, "--json", "--by-sample").stdout)
    shards = json.loads((on_slurm / "plan.json").read_text())["shards"]
    in_one = {sample for sample, _, _ in shards[1]["samples"]}
    for k, row in enumerate(status["samples"]):
        assert row["state"] == ("failed" if k in in_one else "done"), row
        assert (row["done_fraction"] < 1) == (k in in_one), row
    assert "resubmitted shard(s) 1" in cli("resubmit", on_slurm)
    assert list(submissions(read_record(on_slurm))[-1].jobs) == [1]
    outcome = wait_latest(on_slurm)
    assert outcome.failed == [] and outcome.reduce.state == COMPLETED
    cli("predict", *common, "-o", local, "--parallel", "2", "--quiet")
    for name, _ in samples:
        for ours, theirs in zip(RunDir(on_slurm).outputs(name), RunDir(local).outputs(name)):
            assert ours.read_bytes() == theirs.read_bytes(), f"{name}/{ours.name}"
    assert (on_slurm / "results" / "samples.tsv").read_bytes() == \
        (local / "results" / "samples.tsv").read_bytes()

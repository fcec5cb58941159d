"""Fault injection through the real CLI on the tiny profile: SIGKILL at named points and at
random moments (once, or repeatedly on one task), SIGTERM/SIGUSR2, ENOSPC/EIO, a read-only
run dir, a full disk, a read-only, missing or changing model cache, and `reduce` killed
mid-write. Every trial ends recovered or detected, never lost (harness.py defines them).

`VIRNUC_SOAK_TRIALS=N` runs N random kill trials instead of the CI's share (soak mode):

    VIRNUC_SOAK_TRIALS=2000 .venv/bin/python -m pytest -q tests/reliability -k random
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.reliability import tally
from tests.reliability.harness import SHARD, tail

KILLED = (-signal.SIGKILL,)
STOPPED = (75,)
IO_FAILED = (1,)
SOAK = int(os.environ.get("VIRNUC_SOAK_TRIALS") or 0)
RANDOM_TRIALS = SOAK or 16
SEED = int(os.environ.get("VIRNUC_SOAK_SEED") or 12)


@pytest.fixture(autouse=True)
def nothing_lost():
    before = len(tally.lost)
    yield
    assert tally.lost[before:] == [], "\n".join(tally.lost[before:])


def counts(bench) -> dict:
    """{P}: parts of the trial shard, {mid}: a middle part, {B}: embedding batches (two per
    part)."""
    return {"P": bench.parts, "mid": bench.parts // 2 + 1, "B": 2 * bench.parts}


# -- run-task: SIGKILL at named points ------------------------------------------------------

KILL_POINTS = [
    "models.load=kill@1", "models.load=kill@2", "models.load=kill@3", "models.loaded=kill",
    "embed.batch=kill@1", "embed.batch=kill@{mid}", "embed.batch=kill@{B}",
    "create:*/part-*.safetensors=kill@1", "write:*/part-*.safetensors=kill@2",
    "write:*/part-*.safetensors=kill@{P}", "rename:*/part-*.safetensors=kill@1",
    "rename:*/part-*.safetensors=kill@{mid}", "part.written=kill@1", "part.written=kill@{mid}",
    "part.written=kill@{P}", "write:*/part-*.json=kill@2", "rename:*/part-*.json=kill@{P}",
    "task.parts_done=kill", "create:*/accounting.tsv=kill", "write:*/accounting.tsv=kill",
    "rename:*/accounting.tsv=kill", "write:*/DONE=kill", "rename:*/DONE=kill",
    "rename:*/heartbeat.json=kill@1", "rename:*/heartbeat.json=kill@3",
    # the overlap: in the producer thread (a part tokenized ahead) and in the writer thread
    # (a part serialized, not yet written) while the encoders run the next part
    "prefetch.part=kill@1", "prefetch.part=kill@{mid}", "prefetch.part=kill@{P}",
    "part.writing=kill@1", "part.writing=kill@{mid}", "part.writing=kill@{P}",
]


@pytest.mark.parametrize("rule", KILL_POINTS)
def test_kill_at_a_named_point_then_rerun(bench, rule):
    rule = rule.format(**counts(bench))
    bench.task_trial(f"kill {rule}", rule, KILLED)


@pytest.mark.parametrize("rule", ["part.written=kill@2", "embed.batch=kill@3",
                                  "rename:*/part-*.json=kill@2"])
def test_one_task_killed_again_and_again_until_it_completes(bench, rule):
    outcomes = bench.task_trial(f"repeat {rule}", rule, KILLED, attempts=20, until_done=True)
    assert len(outcomes) >= 2


def test_one_task_killed_at_random_moments_until_it_completes(bench):
    """Each attempt is given a little longer (30 % of a clean task's time, then 45 %, ...,
    jittered), so kills land in start-up, mid-part and mid-write until one attempt completes."""
    rng, attempt = random.Random(SEED), iter(range(50))
    outcomes = bench.task_trial("repeat random", None, KILLED, attempts=50, until_done=True,
                                kill_after=lambda: (0.3 + 0.15 * next(attempt)) *
                                rng.uniform(0.8, 1.2) * bench.task_s)
    assert outcomes  # how many kills land before it completes depends on the machine's load


def _random_rule(rng: random.Random, bench) -> str:
    c = counts(bench)
    point, n = rng.choice([("models.load", 3), ("embed.batch", c["B"]),
                           ("part.written", c["P"]), ("create:*/part-*", 2 * c["P"]),
                           ("prefetch.part", c["P"]), ("part.writing", c["P"]),
                           ("write:*/part-*", 2 * c["P"]), ("rename:*/part-*", 2 * c["P"]),
                           ("rename:*/accounting.tsv", 1), ("write:*/DONE", 1),
                           ("rename:*/DONE", 1), ("task.parts_done", 1)])
    return f"{point}=kill@{rng.randint(1, n)}"


def test_random_kills_then_rerun(bench):
    """Half at a random moment of the task's life, half at a random named point."""
    rng, trials = random.Random(SEED), 0
    for k in range(RANDOM_TRIALS):
        if k % 2:
            trials += len(bench.task_trial(f"random point {k}", _random_rule(rng, bench),
                                           KILLED))
        else:
            delay = rng.uniform(0.0, 1.0) * bench.task_s
            trials += len(bench.task_trial(f"random time {k} ({delay:.2f} s)", None, KILLED,
                                           kill_after=lambda d=delay: d))
    assert trials >= RANDOM_TRIALS // 2


# -- feature storage: the trials above run on a scores-only run (`--features none`) ----------

def test_the_bench_keeps_the_scores_only(bench):
    from virnuc_hpc.core.rundir import RunDir
    from virnuc_hpc.parts import read_done

    task = RunDir(bench.clean).task(SHARD)
    assert bench.features == "none" and read_done(task.root)["features"] == "none"
    assert b'"dnabert"' not in task.part(0).read_bytes()[:200]  # the safetensors header


@pytest.mark.parametrize("rule", ["part.written=kill@{mid}", "rename:*/part-*.safetensors=kill@1",
                                  "write:*/part-*.safetensors=kill@{P}", "write:*/DONE=kill"])
def test_fp16_features_kill_at_a_named_point_then_rerun(bench_fp16, rule):
    rule = rule.format(**counts(bench_fp16))
    bench_fp16.task_trial(f"fp16 kill {rule}", rule, KILLED)


def test_fp16_features_random_kills_then_rerun(bench_fp16):
    rng = random.Random(SEED + 1)
    for k in range(4):
        delay = rng.uniform(0.0, 1.0) * bench_fp16.task_s
        bench_fp16.task_trial(f"fp16 random time {k} ({delay:.2f} s)", None, KILLED,
                              kill_after=lambda d=delay: d)


# -- duplicate reads: a study whose reads repeat within and across samples and shards ---------

def test_the_study_bench_is_rich_in_duplicates_across_shards_and_samples(bench_dups):
    from virnuc_hpc.plan import load_plan

    plan = load_plan(bench_dups.clean)
    assert plan.duplicate_count >= 8 and all(s.duplicates for s in plan.samples)
    fed = {(shard.index, sample) for shard in plan.shards for sample, _ in shard.feeds}
    assert (0, 1) in fed                                        # across samples
    assert any(s.duplicates for s in plan.shards[1:])           # a shard of later copies
    assert bench_dups.parts >= 2


@pytest.mark.parametrize("rule", ["part.written=kill@{mid}", "task.parts_done=kill",
                                  "rename:*/DONE=kill", "embed.batch=kill@{B}"])
def test_duplicates_kill_at_a_named_point_then_rerun(bench_dups, rule):
    rule = rule.format(**counts(bench_dups))
    bench_dups.task_trial(f"dups kill {rule}", rule, KILLED)


def test_duplicates_random_kills_then_rerun(bench_dups):
    """As test_random_kills_then_rerun, on the study (VIRNUC_SOAK_TRIALS sets the count)."""
    rng, trials = random.Random(SEED + 2), 0
    for k in range(RANDOM_TRIALS):
        if k % 2:
            trials += len(bench_dups.task_trial(f"dups random point {k}",
                                                _random_rule(rng, bench_dups), KILLED))
        else:
            delay = rng.uniform(0.0, 1.0) * bench_dups.task_s
            trials += len(bench_dups.task_trial(f"dups random time {k} ({delay:.2f} s)", None,
                                                KILLED, kill_after=lambda d=delay: d))
    assert trials >= RANDOM_TRIALS // 2


def test_duplicates_reduce_killed_at_random_moments_then_rerun(bench_dups):
    rng = random.Random(SEED + 3)
    for k in range(4):
        bench_dups.reduce_trial(f"dups reduce random {k}", None, KILLED,
                                kill_after=rng.uniform(0.05, 1.5))


# -- run-task: the scheduler's signals, I/O errors --------------------------------------------

@pytest.mark.parametrize("rule", ["models.load=term@2", "embed.batch=term@2",
                                  "embed.batch=usr2@{mid}", "part.written=usr2@1",
                                  "prefetch.part=term@2", "part.writing=usr2@{mid}"])
def test_sigterm_or_sigusr2_checkpoints_then_rerun_completes(bench, rule):
    rule = rule.format(**counts(bench))
    bench.task_trial(f"signal {rule}", rule, STOPPED)


@pytest.mark.parametrize("rule", ["write:*/part-*.safetensors=enospc@2",
                                  "create:*/part-*.json=eio@1", "rename:*/DONE=enospc",
                                  "write:*/accounting.tsv=eio", "rename:*/part-*.json=eio@{P}",
                                  "prefetch.part=eio@2", "part.writing=enospc@{mid}"])
def test_io_error_fails_the_task_in_one_line_then_rerun_completes(bench, rule):
    rule = rule.format(**counts(bench))
    bench.task_trial(f"io {rule}", rule, IO_FAILED)


def test_heartbeat_that_cannot_be_written_costs_nothing(bench):
    bench.task_trial("heartbeat enospc", "write:*/heartbeat.json=enospc@1+", (0,))


# -- reduce ----------------------------------------------------------------------------------

@pytest.mark.parametrize("rule,expect", [
    ("reduce.shard=kill@1", KILLED), ("reduce.shard=kill@2", KILLED),
    ("reduce.merged=kill", KILLED), ("write:*/prediction_results.txt=kill", KILLED),
    ("rename:*/predictions.tsv=kill", KILLED),
    ("rename:*/prediction_results_highestscore.csv=kill", KILLED),
    ("rename:*/features_index.json=kill", KILLED), ("write:*/summary.json=kill", KILLED),
    ("rename:*/virnuc_hpc_calls_mqc.json=kill", KILLED), ("write:*/versions.yml=enospc", IO_FAILED),
    ("reduce.merged=term", STOPPED), ("reduce.shard=usr2@1", STOPPED),
    ("write:*/predictions.tsv=enospc", IO_FAILED), ("rename:*/summary.json=eio", IO_FAILED),
])
def test_reduce_fault_then_rerun(bench, rule, expect):
    assert bench.reduce_trial(f"reduce {rule}", rule, expect) is not None


def test_reduce_killed_at_random_moments_then_rerun(bench):
    rng = random.Random(SEED)
    for k in range(6):
        bench.reduce_trial(f"reduce random {k}", None, KILLED,
                           kill_after=rng.uniform(0.05, 0.6))


# -- the file system: read-only, full --------------------------------------------------------

@contextmanager
def tmpfs(path: Path, size: str = "16m"):
    """A real tmpfs at `path` (root only; the test is skipped where mounting is refused)."""
    path.mkdir(parents=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def remount(path: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(path)], check=True)


def test_read_only_run_dir_is_reported_in_one_line(bench, tmp_path):
    with tmpfs(tmp_path / "ro") as mount:
        run = mount / "run"
        shutil.copytree(bench.fresh("read-only"), run)
        remount(mount, "ro")
        ran = bench.cli(["run-task", run, "--index", SHARD])
        assert ran.code in IO_FAILED, tail(ran.log)
        bench.outcome("read-only run dir", bench.problems(run, ran, "run-task"), recovered=False)
        remount(mount, "rw")
        bench.outcome("read-only run dir, made writable", bench.recover(run))


def test_full_disk_fails_the_task_in_one_line_then_rerun_completes(bench, tmp_path):
    with tmpfs(tmp_path / "full", "4m") as mount:
        run = mount / "run"
        shutil.copytree(bench.fresh("full disk"), run)
        ballast = mount / "ballast"
        free = shutil.disk_usage(mount).free
        ballast.write_bytes(b"\0" * (free - 24 * 1024))   # room for a few parts only
        ran = bench.cli(["run-task", run, "--index", SHARD])
        assert ran.code in IO_FAILED and "No space left" in ran.log, tail(ran.log)
        problem = bench.problems(run, ran, "run-task")
        ballast.unlink()
        bench.outcome("full disk", problem or bench.recover(run))


# -- the model cache --------------------------------------------------------------------------

def test_read_only_model_cache_is_enough(bench, tmp_path):
    with tmpfs(tmp_path / "cache") as mount:
        shutil.copytree(bench.cache, mount / "c")
        remount(mount, "ro")
        run = bench.fresh("read-only cache")
        ran = bench.cli(["run-task", run, "--index", SHARD], VIRNUC_HPC_CACHE=str(mount / "c"))
        assert ran.code == 0, tail(ran.log)
        bench.outcome("read-only cache", bench.problems(run, ran, "run-task") or
                      bench.recover(run))


def test_missing_model_cache_in_a_read_only_place_is_reported(bench, tmp_path):
    with tmpfs(tmp_path / "nocache") as mount:
        remount(mount, "ro")
        run = bench.fresh("missing cache")
        ran = bench.cli(["run-task", run, "--index", SHARD],
                        VIRNUC_HPC_CACHE=str(mount / "models"))
        assert ran.code == 2 and "models fetch" in ran.log, tail(ran.log)
        bench.outcome("missing cache, read-only", bench.problems(run, ran, "run-task"),
                      recovered=False)


def test_missing_model_cache_is_made_again(bench, tmp_path):
    run = bench.fresh("missing cache, writable")
    ran = bench.cli(["run-task", run, "--index", SHARD], VIRNUC_HPC_CACHE=str(tmp_path / "new"))
    assert ran.code == 0, tail(ran.log)
    bench.outcome("missing cache, writable", bench.problems(run, ran, "run-task") or
                  bench.recover(run))


def _replace(path: Path) -> None:
    """Another file of the same size renamed over `path` (what a careless copy does)."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    tmp = path.with_name(".replacement")
    tmp.write_bytes(bytes(data))
    os.replace(tmp, path)


@pytest.mark.parametrize("point", ["models.load:esm", "models.loaded"])
def test_cache_file_replaced_under_a_running_task(bench, tmp_path, point):
    """Between verification and loading it is caught (one line, the repair command); once
    loaded, the task goes on with the verified weights."""
    cache = tmp_path / "cache"
    shutil.copytree(bench.cache, cache)
    run = bench.fresh(f"cache replaced at {point}")
    command = bench.start(["run-task", run, "--index", SHARD], f"{point}=stop",
                          VIRNUC_HPC_CACHE=str(cache))
    assert command.wait_stopped(), "the task never reached " + point
    _replace(next((cache / "tiny-esm2").glob("*.pt")))
    os.kill(command.pid, signal.SIGCONT)
    ran = command.wait(300)
    problem = bench.problems(run, ran, "run-task")
    if point == "models.loaded":
        assert ran.code == 0, tail(ran.log)
    else:
        assert ran.code == 2 and "models fetch --repair" in ran.log, tail(ran.log)
        fix = bench.cli(["models", "fetch", "--repair", "--profile", "tiny"],
                        VIRNUC_HPC_CACHE=str(cache))
        assert fix.code == 0, tail(fix.log)
    bench.outcome(f"cache file replaced at {point}", problem or bench.recover(run))

"""run-task and the whole local run: accounting, sharding independence, resume after kills,
corruption caught by reduce and repaired by resubmit, racing writers."""

from __future__ import annotations

import csv
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import pytest

from tests.helpers import REPO, read_fasta, run_cli
from tests.helpers_run import (frame_scores, part_digests, plan, planned_run, predictions,
                               run_all)
from virnuc_hpc.reduce.merge import reduce_run
from virnuc_hpc.core.rundir import RunDir
from virnuc_hpc.parts import read_done, read_heartbeat, verify_task
from virnuc_hpc.plan import load_manifest


@pytest.fixture(scope="module")
def golden_run(tiny_cache, golden, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("golden-run") / "run"
    planned_run(golden / "generated/input.fa", run_dir, shards=3)
    return run_dir


def test_golden_input_every_sequence_accounted_and_frames_equal_golden(golden_run, golden):
    input_ids = [h.split()[0] for h, _ in read_fasta(golden / "generated/input.fa")]
    rows = predictions(golden_run)
    assert [r["sequence_id"] for r in rows] == input_ids          # input order, none lost
    for row in rows:
        assert (row["skip_reason"] == "") == (int(row["kept_frames"]) > 0)
        assert row["call"] in ("virus", "others") if not row["skip_reason"] else True
    summary = __import__("json").loads(RunDir(golden_run).summary.read_text())
    assert summary["input_sequences"] == 300
    assert summary["predicted"] + summary["skipped"] == 300
    identified = golden / "generated/chunk500/identified_nucleotide.fa"
    golden_frames = [h for h, _ in read_fasta(identified)]
    assert [r[0] for r in frame_scores(golden_run)] == golden_frames


def test_results_do_not_depend_on_sharding(golden_run, golden, tmp_path):
    seven = tmp_path / "seven"
    planned_run(golden / "generated/input.fa", seven, shards=7)
    one = tmp_path / "one"
    planned_run(golden / "generated/input.fa", one, shards=1)
    for other in (seven, golden_run):  # byte for byte: a frame's scores ignore its batch
        for name in ("prediction_results", "highestscore", "predictions"):
            assert getattr(RunDir(one), name).read_bytes() == \
                getattr(RunDir(other), name).read_bytes()


def test_a_frames_features_and_scores_do_not_depend_on_its_part(tiny_cache):
    """Bit for bit, whatever else is in the part (a sample's frames share parts with other
    samples' in a study, not in its one-sample run): short frames alone included."""
    import numpy as np

    from virnuc_hpc.models import LoadedModels, resolve_profile
    from virnuc_hpc.sequences import Frame
    from virnuc_hpc.task.frames import FramePipeline
    from virnuc_hpc.task.run import TaskOptions

    rng = np.random.default_rng(2)
    lengths = [1, 2, 4, 7, 9, *rng.integers(10, 100, 30).tolist()]
    frames = [Frame(f"f{i}", "".join(rng.choice(list("ACGT"), 3 * n + 1)),
                    "".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), n)))
              for i, n in enumerate(lengths)]
    with LoadedModels(resolve_profile("tiny", 300), device="cpu") as models:
        pipeline = FramePipeline(models, TaskOptions())
        whole = pipeline(frames)
        pieces = [pipeline(frames[i:i + 4]) for i in range(0, len(frames), 4)]
        alone = [pipeline([frame]) for frame in frames[:6]]
    for k in range(3):
        assert np.array_equal(np.concatenate([p[k] for p in pieces]), whole[k])
        assert np.array_equal(np.concatenate([a[k] for a in alone]), whole[k][:6])


def test_run_task_is_idempotent(golden_run):
    task = RunDir(golden_run).task(0)
    before = read_done(task.root)
    run_all(golden_run, indices=[0])
    assert read_done(task.root) == before


@pytest.fixture(scope="module")
def run_of_parts(tiny_cache, golden, tmp_path_factory):
    """A complete run of 3 shards in parts of 64 frames, copied by each test that damages it."""
    run_dir = tmp_path_factory.mktemp("run-of-parts") / "run"
    planned_run(golden / "generated/input.fa", run_dir, shards=3, part_rows=64)
    return run_dir


@pytest.mark.parametrize("damage", ["bit flip", "truncation", "deleted part", "deleted DONE"])
def test_reduce_refuses_damaged_shard_and_resubmit_repairs(run_of_parts, tmp_path, damage):
    run_dir = tmp_path / "run"
    shutil.copytree(run_of_parts, run_dir, symlinks=True)
    clean = RunDir(run_dir).prediction_results.read_text()
    task = RunDir(run_dir).task(1)
    part = task.part(1)
    if damage == "bit flip":
        data = bytearray(part.read_bytes())
        data[len(data) // 2] ^= 0x01
        part.write_bytes(bytes(data))
    elif damage == "truncation":
        part.write_bytes(part.read_bytes()[:-100])
    elif damage == "deleted part":
        part.unlink()
    else:
        task.done.unlink()
    result = run_cli("reduce", run_dir)
    assert result.returncode != 0
    assert "index 1" in result.stderr and "virnuc-hpc resubmit" in result.stderr
    assert "--indices 1" in result.stderr and "index 0" not in result.stderr
    status = run_cli("status", run_dir, "--json", "--verify")
    states = {s["index"]: s["state"] for s in __import__("json").loads(status.stdout)["shards"]}
    assert states[1] in ("corrupt", "failed", "pending") and states[0] == states[2] == "done"
    fixed = run_cli("resubmit", run_dir)
    assert fixed.returncode == 0, fixed.stderr
    assert "1" in fixed.stdout
    assert run_cli("reduce", run_dir).returncode == 0
    assert RunDir(run_dir).prediction_results.read_text() == clean


def _run_task_process(run_dir, index=0, lock=True):
    env = dict(os.environ, VIRNUC_HPC_HEARTBEAT_S="0.2", OMP_NUM_THREADS="1",
               VIRNUC_HPC_TASK_LOCK="1" if lock else "0")
    return subprocess.Popen([sys.executable, "-m", "virnuc_hpc", "run-task", str(run_dir),
                             "--index", str(index)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def _rows_done(run_dir) -> int:
    beat = read_heartbeat(RunDir(run_dir).task(0).root) or {}
    return beat.get("rows_done") or 0


@pytest.fixture(scope="module")
def some_reads(golden, tmp_path_factory):
    """The first 100 golden reads: enough parts for the process tests, a third of the time."""
    records = (golden / "generated/input.fa").read_text().split(">")[1:101]
    path = tmp_path_factory.mktemp("some-reads") / "reads.fa"
    path.write_text("".join(">" + record for record in records))
    return path


KILLS = 8


def test_sigkill_at_random_moments_then_rerun_equals_clean_run(tiny_cache, some_reads, tmp_path):
    """SIGKILLs of a real `run-task` process at random moments of its life (start-up, model
    load, inference, part, accounting and DONE writes), each followed by a rerun. Each kill
    lands at a random fraction of the time the remaining work should take, so kills spread over
    the whole run; when a rerun completes, its parts and results must equal a clean run's, byte
    for byte. The counted trials (dozens per CI run, thousands in soak mode, each moment named)
    are tests/reliability/test_fault_trials.py's; these few keep the plain process path."""
    inputs = some_reads
    clean = tmp_path / "clean"
    plan(inputs, clean, shards=1, part_rows=24)
    start = time.monotonic()
    proc = _run_task_process(clean)
    while not RunDir(clean).task(0).heartbeat.exists():
        time.sleep(0.02)
    startup_s = time.monotonic() - start
    assert proc.wait() == 0
    compute_s = time.monotonic() - start - startup_s
    total = read_done(RunDir(clean).task(0).root)["rows"]
    assert reduce_run(clean).ok
    rng, kills, completed = random.Random(11), 0, 0
    run_dir = tmp_path / "killed0"
    plan(inputs, run_dir, shards=1, part_rows=24)
    while kills < KILLS or not completed:
        left = startup_s + compute_s * (1 - _rows_done(run_dir) / total)
        proc = _run_task_process(run_dir)
        try:
            proc.wait(timeout=rng.uniform(0.05, 1.0) * left if kills < KILLS else None)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
            continue
        assert proc.returncode == 0
        completed += 1
        assert part_digests(run_dir) == part_digests(clean)
        assert reduce_run(run_dir).ok
        assert RunDir(run_dir).prediction_results.read_bytes() == \
            RunDir(clean).prediction_results.read_bytes()
        run_dir = tmp_path / f"killed{completed}"
        plan(inputs, run_dir, shards=1, part_rows=24)


@pytest.mark.parametrize("lock", [True, False], ids=["lock", "lock-disabled"])
def test_two_processes_on_the_same_index_never_leave_a_mixed_shard(tiny_cache, some_reads,
                                                                    tmp_path, lock):
    inputs = some_reads
    clean = tmp_path / "clean"
    plan(inputs, clean, shards=2, part_rows=8)
    assert _run_task_process(clean, 1).wait() == 0
    run_dir = tmp_path / "race"
    plan(inputs, run_dir, shards=2, part_rows=8)
    first, second = (_run_task_process(run_dir, 1, lock) for _ in range(2))
    codes = sorted([first.wait(), second.wait()])
    # with the lock the second either waits its turn (0) or is told the shard is busy (2)
    assert codes in ([0, 0], [0, 2]) if lock else codes == [0, 0]
    expectation = load_manifest(run_dir, 1).expectation()
    assert verify_task(RunDir(run_dir).task(1).root, expectation) == []
    assert part_digests(run_dir, 1) == part_digests(clean, 1)


def test_sigterm_finishes_the_current_part_then_stops_and_resumes(tiny_cache, some_reads,
                                                                   tmp_path):
    clean = tmp_path / "clean"       # run the same way (a subprocess, same BLAS threads)
    plan(some_reads, clean, shards=1, part_rows=16)
    assert _run_task_process(clean).wait() == 0
    run_dir = tmp_path / "run"
    plan(some_reads, run_dir, shards=1, part_rows=16)
    task = RunDir(run_dir).task(0)
    proc = _run_task_process(run_dir)
    deadline = time.monotonic() + 120
    while not task.sidecar(0).exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait() == 75                      # stopped, to be retried
    written = task.part_indices()
    assert written and not task.done.exists()
    assert all(task.sidecar(k).exists() for k in written)   # no half part left behind
    assert _run_task_process(run_dir).wait() == 0
    assert part_digests(run_dir) == part_digests(clean)


def test_status_shows_a_running_shard_with_rate(tiny_cache, golden, tmp_path):
    run_dir = tmp_path / "run"
    plan(golden / "generated/input.fa", run_dir, shards=1, part_rows=8)
    proc = _run_task_process(run_dir)
    try:
        seen = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            out = run_cli("status", run_dir, "--json")
            shard = __import__("json").loads(out.stdout)["shards"][0]
            if shard["state"] == "running" and shard.get("rate"):
                seen = shard
                break
            time.sleep(0.3)
        assert seen is not None, "never saw the shard running with a rate"
        assert seen["rows_done"] < seen["rows_total"] and seen["heartbeat_age_s"] < 30
        text = run_cli("status", run_dir).stdout
        assert "running" in text
    finally:
        proc.kill()
        proc.wait()


def test_accounting_rows_match_translate(golden_run, golden, tmp_path):
    acc = tmp_path / "acc.tsv"
    run_cli("translate", golden / "generated/input.fa", "--nucleotide-out", tmp_path / "n.fa",
            "--protein-out", tmp_path / "p.faa", "--accounting-out", acc)
    expected = {r["id"]: r for r in csv.DictReader(acc.open(), delimiter="\t")}
    for row in predictions(golden_run):
        ref = expected[row["sequence_id"]]
        assert (row["length"], row["chunks"], row["kept_frames"], row["skip_reason"]) == \
            (ref["length"], ref["chunks"], ref["kept_frames"], ref["skip_reason"])


def test_predict_command_and_rerun(tiny_cache, tmp_path):
    out = tmp_path / "out"
    result = run_cli("predict", "examples/reads.fa", "-o", out, "--models", "tiny",
                     cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "NOT biologically meaningful" in result.stdout
    assert RunDir(out).predictions.exists()
    again = run_cli("predict", "examples/reads.fa", "-o", out, "--models", "tiny",
                    "--chunk-size", "300", cwd=REPO)
    assert again.returncode == 2 and "new -o" in again.stderr
    shutil.rmtree(out)


def test_run_task_reads_the_runs_copy_and_refuses_a_damaged_one(tiny_cache, tmp_path):
    """Tasks never reopen the input: with it deleted after `plan`, a shard computes the same
    parts as a clean run's. A damaged copy is refused in one line naming it and the fix, and
    FAILED says why."""
    fasta = tmp_path / "in.fa"
    bases = "GCTGCAGCCATGAAA" * 20
    fasta.write_text("".join(f">s{i} sample\n{bases[i:] + bases[:i]}\n" for i in range(6)))
    clean, run_dir = tmp_path / "clean", tmp_path / "run"
    planned_run(fasta, clean, shards=2)
    plan(fasta, run_dir, shards=2)
    fasta.unlink()
    assert run_cli("run-task", run_dir, "--index", 0).returncode == 0
    assert part_digests(run_dir, 0) == part_digests(clean, 0)
    copy = RunDir(run_dir).seqfile
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0x04
    copy.write_bytes(bytes(data))
    refused = run_cli("run-task", run_dir, "--index", 1)
    assert refused.returncode == 2, refused.stderr
    lines = refused.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in refused.stderr, refused.stderr
    assert lines[0].startswith(f"virnuc-hpc run-task: error: {copy}: the frame at byte ")
    assert "damaged" in lines[0] and "fix: plan the input again in a new run dir" in lines[0]
    assert "damaged" in RunDir(run_dir).task(1).failed.read_text()


# -- what the fault-injection suite found (tests/reliability) ---------------------------------

@pytest.fixture
def small_run(tiny_cache, tmp_path):
    run_dir = tmp_path / "run"
    plan(REPO / "examples" / "reads.fa", run_dir, shards=2, part_rows=4)
    return run_dir


def test_an_io_error_fails_the_task_in_one_line_naming_shard_file_and_rerun(small_run,
                                                                           monkeypatch):
    from virnuc_hpc.task.run import TaskIOError, run_task, task_options

    monkeypatch.setenv("VIRNUC_HPC_FAULTS", "write:*/part-*.safetensors=enospc@2")
    with pytest.raises(TaskIOError) as caught:
        run_task(small_run, 0, task_options(small_run, "cpu"))
    message = str(caught.value)
    assert "\n" not in message and message.startswith("shard 0: No space left on device")
    assert "part-00001.safetensors" in message and caught.value.exit_code == 1
    assert f"virnuc-hpc run-task {small_run} --index 0" in message
    task = RunDir(small_run).task(0)
    assert "No space left" in task.failed.read_text() and not task.done.exists()
    monkeypatch.delenv("VIRNUC_HPC_FAULTS")
    run_all(small_run, indices=[0])
    assert verify_task(task.root, load_manifest(small_run, 0).expectation()) == []


def test_a_heartbeat_that_cannot_be_written_does_not_stop_the_task(small_run, monkeypatch):
    monkeypatch.setenv("VIRNUC_HPC_FAULTS", "write:*/heartbeat.json=eio@1+")
    run_all(small_run, indices=[0])
    task = RunDir(small_run).task(0)
    assert verify_task(task.root, load_manifest(small_run, 0).expectation()) == []
    assert not task.heartbeat.exists()


def test_sigterm_while_models_load_stops_cleanly_before_a_part(small_run, monkeypatch):
    from virnuc_hpc.task.run import StopRequested, run_task, task_options

    monkeypatch.setenv("VIRNUC_HPC_FAULTS", "models.load=term@2")
    with pytest.raises(StopRequested) as caught:
        run_task(small_run, 0, task_options(small_run, "cpu"))
    assert "before a part" in str(caught.value) and "virnuc-hpc run-task" in str(caught.value)
    assert RunDir(small_run).task(0).part_indices() == []
    assert signal.getsignal(signal.SIGTERM) is not None   # handlers restored


def test_temp_files_of_a_killed_writer_are_swept_by_the_next_run(small_run):
    task = RunDir(small_run).task(0)
    task.root.mkdir(parents=True)
    stale = task.root / ".part-00000.safetensors.abc123.tmp"
    stale.write_bytes(b"half a part")
    run_all(small_run, indices=[0])
    assert not stale.exists() and task.done.exists()


def test_one_copy_of_each_model_while_a_task_runs(small_run, monkeypatch):
    """Never two copies of a model in a process: count the loaded modules mid-task."""
    import gc

    import torch

    from virnuc_hpc.task import run as task_module

    seen = []
    original = task_module.FramePipeline.features

    def counting(self, part):
        modules = [type(o).__name__ for o in gc.get_objects()
                   if type(o).__name__ in ("ESM2", "DnabertModel", "MLPClassifier") and
                   isinstance(o, torch.nn.Module)]
        seen.append(sorted(modules))
        return original(self, part)

    monkeypatch.setattr(task_module.FramePipeline, "features", counting)
    run_all(small_run)
    assert seen and all(s == ["DnabertModel", "ESM2", "MLPClassifier"] for s in seen)


def test_a_gpu_that_cannot_run_the_planned_precision_is_refused_before_any_model_loads(
        tiny_cache, tmp_path, monkeypatch):
    """One precision per run: a bf16 run's task on a V100 (faked) fails at once, in one line
    naming the device and the fix, and FAILED says why."""
    import torch

    from virnuc_hpc.core.config import RunConfig

    from virnuc_hpc.task import run as task_module
    from virnuc_hpc.task.run import DeviceError, TaskOptions, run_task

    run_dir = tmp_path / "run"
    plan(REPO / "examples" / "reads.fa", run_dir, precision="bf16")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (7, 0))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "Tesla V100-SXM2-32GB")
    monkeypatch.setattr(task_module, "LoadedModels", lambda *a, **k: pytest.fail("loaded"))
    with pytest.raises(DeviceError) as caught:
        run_task(run_dir, 0, TaskOptions(RunConfig(precision="bf16"), device="cuda"))
    message = str(caught.value)
    assert "\n" not in message and "Tesla V100-SXM2-32GB (compute capability 7.0)" in message
    assert "bf16" in message and "--precision fp16" in message
    assert "DeviceError" in RunDir(run_dir).task(0).failed.read_text()
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (9, 0))
    h100 = TaskOptions(RunConfig(precision="bf16"), device="cuda")
    task_module.check_device(h100, 0)  # an H100 runs it


def test_a_temp_file_left_after_done_is_swept_by_the_next_run(small_run):
    """Found by the duplicate study's soak: a task killed while writing its last heartbeat,
    after DONE, left `.heartbeat.json.*.tmp`; the rerun finds the shard done and sweeps it."""
    from virnuc_hpc.task.run import run_task, task_options

    run_all(small_run, [0])
    task = RunDir(small_run).task(0)
    left = task.root / ".heartbeat.json.killed.tmp"
    left.write_text("{")
    assert run_task(small_run, 0, task_options(small_run, "cpu")).status == "already-done"
    assert not left.exists()

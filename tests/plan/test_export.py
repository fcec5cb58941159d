"""Shared-nothing tasks (plan/export.py, `run-task --out`, `reduce --tasks`): every shard of a
plan runs in a folder holding only its exported inputs, with the run dir moved out of reach,
its outputs are copied back, and `reduce` gives the bytes of `predict`; on real reads, with
duplicates across samples (so the shards' duplicate slices travel too). What cannot be merged
is refused in one line."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import run_cli
from tests.helpers_run import plan
from tests.invariance.test_real_genomes import study_sheet
from virnuc_hpc.core.errors import UserError
from virnuc_hpc.core.rundir import RunDir, TaskDir
from virnuc_hpc.plan import iter_shard_records, load_manifest, load_plan, seqfile
from virnuc_hpc.plan.export import export_shards, read_jobs
from virnuc_hpc.plan.samples import read_samplesheet
from virnuc_hpc.plan.sizing import LIMIT_MARGIN

RESULTS = ("prediction_results.txt", "prediction_results_highestscore.csv", "predictions.tsv",
           "samples.tsv", "versions.yml")


def results(run: Path) -> dict[str, bytes]:
    root = RunDir(run).results
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.name in RESULTS}


@pytest.fixture(scope="module")
def study(tiny_cache, tmp_path_factory):
    """A 3-sample study of real reads, 40 % of them repeating another (across samples), its
    `predict` run, and a plan of it in 3 shards."""
    root = tmp_path_factory.mktemp("study")
    sheet = study_sheet(root / "in", np.random.default_rng(7), [12, 9, 15], duplicate_share=0.4)
    done = run_cli("predict", "--samplesheet", sheet, "-o", root / "predicted", "--models",
                   "tiny", "--no-report", "--quiet")
    assert done.returncode == 0, done.stderr
    done = run_cli("plan", "--samplesheet", sheet, "--run-dir", root / "run", "--models",
                   "tiny", "--shards", "3")
    assert done.returncode == 0, done.stderr
    assert load_plan(root / "run").duplicate_count >= 5
    return root


def test_each_shard_runs_alone_from_its_inputs_and_reduce_equals_predict(study, tmp_path):
    run, exported = study / "run", tmp_path / "exported"
    assert run_cli("export-shards", run, "--to", exported).returncode == 0
    jobs = read_jobs(exported / "shards.tsv")
    assert [j.shard for j in jobs] == [0, 1, 2]
    hidden = tmp_path / "out-of-reach"
    run.rename(hidden)                        # nothing a task reads may be in the run dir
    try:
        for job in jobs:
            alone = tmp_path / f"node-{job.shard}"
            shutil.copytree(exported / job.inputs, alone / "inputs")
            assert str(hidden.name) not in _all_text(alone) and not _links(alone)
            done = run_cli("run-task", "inputs", "--index", job.shard, "--out", "task",
                           "--device", "cpu", cwd=alone)
            assert done.returncode == 0, done.stderr
            shutil.copytree(alone / "task", tmp_path / "back" / f"t{job.shard}")
    finally:
        hidden.rename(run)
    done = run_cli("reduce", run, "--tasks", tmp_path / "back", "--no-report")
    assert done.returncode == 0, done.stderr
    assert not (run / "tasks").exists()       # read where they were, not copied in
    assert results(run) == results(study / "predicted")


def _all_text(folder: Path) -> str:
    return "".join(p.read_bytes().decode("latin-1") for p in folder.rglob("*") if p.is_file())


def _links(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_symlink()]


def test_the_inputs_are_the_shards_slices_and_shards_tsv_its_resources(study, tmp_path):
    plan = load_plan(study / "run")
    jobs = export_shards(study / "run", tmp_path / "x")
    for job, shard in zip(jobs, plan.shards):
        inputs = load_plan(tmp_path / "x" / job.inputs)
        assert [s.index for s in inputs.shards] == [shard.index]
        assert inputs.fingerprint == plan.fingerprint and inputs.config == plan.config
        assert job.sequences == shard.sequences and job.gpus == 1
        assert job.runtime_min >= shard.minutes_est / LIMIT_MARGIN > job.runtime_min - 1
    sizes = [sum(p.stat().st_size for p in (tmp_path / "x" / j.inputs).rglob("*")
                 if p.is_file()) for j in jobs]
    run_bytes = sum(p.stat().st_size for p in RunDir(study / "run").shards.iterdir())
    assert sum(sizes) < 3 * run_bytes         # slices, not copies of the run's files
    again = export_shards(study / "run", tmp_path / "x", indices=[1])  # replaced in place
    assert [j.shard for j in again] == [1] and len(read_jobs(tmp_path / "x" / "shards.tsv")) == 1


def test_an_exported_shard_with_other_bases_is_refused(study, tmp_path):
    export_shards(study / "run", tmp_path / "x", indices=[0])
    rows = RunDir(tmp_path / "x" / "00000").rows
    data = bytearray(rows.read_bytes())
    data[10] ^= 0xFF
    rows.write_bytes(bytes(data))
    done = run_cli("run-task", tmp_path / "x" / "00000", "--index", "0", "--out",
                   tmp_path / "t", "--device", "cpu")
    assert done.returncode != 0 and "changed since planning; re-plan the run" in done.stderr
    assert not TaskDir(tmp_path / "t").done.exists()


def test_export_never_replaces_a_folder_of_the_users(study, tmp_path):
    mine = tmp_path / "x" / "00000"
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not a shard's inputs; nothing was written"):
        export_shards(study / "run", tmp_path / "x", indices=[0])
    assert (mine / "notes.txt").read_text() == "mine"


@pytest.fixture(scope="module")
def tasks(study, tmp_path_factory):
    """The study's three task folders, written outside the run dir."""
    root = tmp_path_factory.mktemp("tasks")
    export_shards(study / "run", root / "in")
    for index in range(3):
        done = run_cli("run-task", root / "in" / f"0000{index}", "--index", index, "--out",
                       root / "out" / f"0000{index}", "--device", "cpu")
        assert done.returncode == 0, done.stderr
    return root / "out"


def test_a_task_folder_of_another_run_or_shard_is_refused(study, tasks, tmp_path):
    other = tmp_path / "other"
    done = run_cli("plan", "--samplesheet", study / "in" / "samples.csv", "--run-dir", other,
                   "--models", "tiny", "--shards", "2")
    assert done.returncode == 0, done.stderr
    done = run_cli("reduce", other, "--tasks", tasks, "--no-report")   # the same study
    assert done.returncode != 0 and "this run has shards 0 to 1" in done.stderr
    foreign = run_cli("reduce", other, "--tasks", tasks / "00000", "--no-report")
    assert foreign.returncode == 1 and "index 0: accounting lists" in foreign.stderr  # other IDs
    swapped = tmp_path / "swapped"   # shard 2's folder where RUN/tasks/ keeps shard 1's
    shutil.copytree(study / "run", swapped)
    shutil.copytree(tasks / "00002", RunDir(swapped).task(1).root)
    shutil.copytree(tasks / "00000", RunDir(swapped).task(0).root)
    shutil.copytree(tasks / "00002", RunDir(swapped).task(2).root)
    done = run_cli("reduce", swapped, "--no-report")
    assert done.returncode == 1 and "1 shard(s) failed verification" in done.stderr
    assert "index 1: " in done.stderr


def test_folders_given_to_reduce_are_each_found_by_their_done(study, tasks, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(study / "run", run)
    named = [tmp_path / name for name in ("a", "b", "c")]
    for folder, index in zip(named, (2, 0, 1)):   # any names, any order
        shutil.copytree(tasks / f"0000{index}", folder)
    done = run_cli("reduce", run, "--tasks", *named, "--no-report")
    assert done.returncode == 0, done.stderr
    assert results(run) == results(study / "predicted")
    missing = run_cli("reduce", run, "--tasks", named[0], named[1], "--no-report")
    assert missing.returncode == 1 and "index 1: DONE missing" in missing.stderr
    twice = run_cli("reduce", run, "--tasks", named[0], tasks / "00002", "--no-report")
    assert twice.returncode != 0 and "shard 2: two task folders" in twice.stderr


@settings(max_examples=int(os.environ.get("VIRNUC_PROPERTY_EXAMPLES", "200")) // 4,
          deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(shards=st.integers(1, 9), frame_bytes=st.integers(200, 20_000),
       share=st.sampled_from([0.0, 0.5]), seed=st.integers(0, 2**16))
def test_every_exported_shard_reads_the_records_its_task_reads_in_the_run(
        tiny_cache, tmp_path_factory, monkeypatch, shards, frame_bytes, share, seed):
    """Whatever the shard count and the sequence file's frame size (so shards start and end
    anywhere in a frame), a shard's exported folder yields its task exactly the records, IDs
    and ordinals it reads in the run dir, and the slices of duplicates that go with them."""
    root = tmp_path_factory.mktemp("prop")
    sheet = study_sheet(root / "in", np.random.default_rng(seed), [7, 5, 9],
                        duplicate_share=share, lengths=(20, 900))
    monkeypatch.setattr(seqfile, "FRAME_BYTES", frame_bytes)
    plan(read_samplesheet(sheet), root / "run", shards=shards)
    planned = load_plan(root / "run")
    export_shards(root / "run", root / "x")
    for shard in planned.shards:
        inputs = root / "x" / f"{shard.index:05d}"
        assert list(iter_shard_records(inputs, shard.index)) == \
            list(iter_shard_records(root / "run", shard.index))
        mine, theirs = load_manifest(inputs, shard.index), load_manifest(root / "run",
                                                                         shard.index)
        assert (mine.ids, mine.first, mine.duplicates.tolist(), mine.representatives.tolist()
                ) == (theirs.ids, theirs.first, theirs.duplicates.tolist(),
                      theirs.representatives.tolist())

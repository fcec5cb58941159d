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

from tests.helpers import STUDY_FILES, results_bytes, run_cli
from tests.helpers_run import plan
from tests.invariance.genomes import study_sheet
from virnuc_hpc.core.errors import UserError
from virnuc_hpc.core.rundir import RunDir, TaskDir
from virnuc_hpc.plan import iter_shard_records, load_manifest, load_plan, seqfile
from virnuc_hpc.plan.export import export_shards, read_jobs
from virnuc_hpc.plan.samples import read_samplesheet
from virnuc_hpc.plan.sizing import LIMIT_MARGIN

def test_each_shard_runs_alone_from_its_inputs_and_reduce_equals_predict(dedup_study, tmp_path):
    run, exported = dedup_study / "run", tmp_path / "exported"
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
    assert results_bytes(run, STUDY_FILES) == results_bytes(dedup_study / "predicted", STUDY_FILES)


def _all_text(folder: Path) -> str:
    return "".join(p.read_bytes().decode("latin-1") for p in folder.rglob("*") if p.is_file())


def _links(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_symlink()]


def test_the_inputs_are_the_shards_slices_and_shards_tsv_its_resources(dedup_study, tmp_path):
    plan = load_plan(dedup_study / "run")
    jobs = export_shards(dedup_study / "run", tmp_path / "x")
    for job, shard in zip(jobs, plan.shards):
        inputs = load_plan(tmp_path / "x" / job.inputs)
        assert [s.index for s in inputs.shards] == [shard.index]
        assert inputs.fingerprint == plan.fingerprint and inputs.config == plan.config
        assert job.sequences == shard.sequences and job.gpus == 1
        assert job.runtime_min >= shard.minutes_est / LIMIT_MARGIN > job.runtime_min - 1
    sizes = [sum(p.stat().st_size for p in (tmp_path / "x" / j.inputs).rglob("*")
                 if p.is_file()) for j in jobs]
    run_bytes = sum(p.stat().st_size for p in RunDir(dedup_study / "run").shards.iterdir())
    assert sum(sizes) < 3 * run_bytes         # slices, not copies of the run's files
    again = export_shards(dedup_study / "run", tmp_path / "x", indices=[1])  # replaced in place
    assert [j.shard for j in again] == [1] and len(read_jobs(tmp_path / "x" / "shards.tsv")) == 1


def test_an_exported_shard_with_other_bases_is_refused(dedup_study, tmp_path):
    export_shards(dedup_study / "run", tmp_path / "x", indices=[0])
    rows = RunDir(tmp_path / "x" / "00000").rows
    data = bytearray(rows.read_bytes())
    data[10] ^= 0xFF
    rows.write_bytes(bytes(data))
    done = run_cli("run-task", tmp_path / "x" / "00000", "--index", "0", "--out",
                   tmp_path / "t", "--device", "cpu")
    assert done.returncode != 0 and "changed since planning; re-plan the run" in done.stderr
    assert not TaskDir(tmp_path / "t").done.exists()


def test_export_never_replaces_a_folder_of_the_users(dedup_study, tmp_path):
    mine = tmp_path / "x" / "00000"
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not a shard's inputs; nothing was written"):
        export_shards(dedup_study / "run", tmp_path / "x", indices=[0])
    assert (mine / "notes.txt").read_text() == "mine"


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

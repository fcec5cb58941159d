"""`reduce RUN --tasks PATH ...` (reduce/folders.py): task folders written anywhere, under any
name, are each found by the shard and plan their DONE names and merged where they are, equal to
`predict`; a folder of another run, two folders for one shard, a missing shard or a folder
copied under another shard's index are refused, naming the shard."""

from __future__ import annotations

import shutil

from tests.helpers import STUDY_FILES, results_bytes, run_cli
from virnuc_hpc.core.rundir import RunDir


def test_a_task_folder_of_another_run_or_shard_is_refused(dedup_study, study_tasks, tmp_path):
    other = tmp_path / "other"
    done = run_cli("plan", "--samplesheet", dedup_study / "in" / "samples.csv", "--run-dir", other,
                   "--models", "tiny", "--shards", "2")
    assert done.returncode == 0, done.stderr
    done = run_cli("reduce", other, "--tasks", study_tasks, "--no-report")   # the same study
    assert done.returncode != 0 and "this run has shards 0 to 1" in done.stderr
    foreign = run_cli("reduce", other, "--tasks", study_tasks / "00000", "--no-report")
    assert foreign.returncode == 1 and "index 0: accounting lists" in foreign.stderr  # other IDs
    swapped = tmp_path / "swapped"   # shard 2's folder where RUN/tasks/ keeps shard 1's
    shutil.copytree(dedup_study / "run", swapped)
    shutil.copytree(study_tasks / "00002", RunDir(swapped).task(1).root)
    shutil.copytree(study_tasks / "00000", RunDir(swapped).task(0).root)
    shutil.copytree(study_tasks / "00002", RunDir(swapped).task(2).root)
    done = run_cli("reduce", swapped, "--no-report")
    assert done.returncode == 1 and "1 shard(s) failed verification" in done.stderr
    assert "index 1: " in done.stderr


def test_folders_given_to_reduce_are_each_found_by_their_done(dedup_study, study_tasks, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(dedup_study / "run", run)
    named = [tmp_path / name for name in ("a", "b", "c")]
    for folder, index in zip(named, (2, 0, 1)):   # any names, any order
        shutil.copytree(study_tasks / f"0000{index}", folder)
    done = run_cli("reduce", run, "--tasks", *named, "--no-report")
    assert done.returncode == 0, done.stderr
    assert results_bytes(run, STUDY_FILES) == results_bytes(dedup_study / "predicted", STUDY_FILES)
    missing = run_cli("reduce", run, "--tasks", named[0], named[1], "--no-report")
    assert missing.returncode == 1 and "index 1: DONE missing" in missing.stderr
    twice = run_cli("reduce", run, "--tasks", named[0], study_tasks / "00002", "--no-report")
    assert twice.returncode != 0 and "shard 2: two task folders" in twice.stderr

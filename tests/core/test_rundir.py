"""Run dirs: a user's folder is never written into, and one command drives a run at a time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from tests.helpers import REPO, run_cli
from virnuc_hpc.core.errors import UserError
from virnuc_hpc.core.rundir import RunDir, claim_run_dir, driver_lock

EXAMPLE = REPO / "examples" / "reads.fa"


def _tree(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() if p.is_file() else None
            for p in sorted(root.rglob("*"))}


def test_folder_of_the_users_is_refused_before_anything_is_written(tiny_cache, tmp_path):
    out = tmp_path / "mine"
    (out / "results").mkdir(parents=True)
    (out / "notes.txt").write_text("my notes\n")
    (out / "results" / "prediction_results.txt").write_text("an older result\n")
    before = _tree(out)
    for argv in (["predict", EXAMPLE, "-o", out, "--models", "tiny"],
                 ["plan", EXAMPLE, "--run-dir", out, "--models", "tiny"],
                 ["submit", EXAMPLE, "--run-dir", out, "--models", "tiny", "--profile", "local"]):
        done = run_cli(*argv)
        assert done.returncode == 2, done.stderr
        lines = [x for x in done.stderr.splitlines() if "error" in x]
        assert len(lines) == 1 and "is not empty and is not a virnuc-hpc run" in lines[0]
        assert "notes.txt" in lines[0] and "give a new folder" in lines[0]
        assert _tree(out) == before


def test_a_file_is_not_a_run_dir_and_empty_folders_and_runs_are(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="is a file"):
        claim_run_dir(RunDir(tmp_path / "file"))
    empty = RunDir(tmp_path / "empty")
    empty.root.mkdir()
    claim_run_dir(empty)
    assert empty.marker.is_file()
    (empty.root / "shards").mkdir()      # an interrupted plan's leftovers are ours
    claim_run_dir(empty)
    legacy = RunDir(tmp_path / "legacy")  # a run planned before markers existed
    legacy.root.mkdir()
    legacy.plan.write_text("{}")
    claim_run_dir(legacy)


def test_bad_input_leaves_no_new_folder_behind(tiny_cache, tmp_path):
    bad = tmp_path / "bad.fa"
    bad.write_text("this is not FASTA\n")
    out = tmp_path / "out"
    done = run_cli("predict", bad, "-o", out, "--models", "tiny")
    assert done.returncode == 2 and str(bad) in done.stderr
    assert not out.exists()


def test_driver_lock_names_the_command_holding_it(tmp_path):
    run = RunDir(tmp_path)
    with driver_lock(run, "predict"):
        assert json.loads(run.driver.read_text())["pid"] == os.getpid()
        with pytest.raises(UserError, match=rf"another predict \(pid {os.getpid()}, host "):
            with driver_lock(RunDir(tmp_path), "run"):
                pass
    with driver_lock(run, "run"):       # released: the next command takes it
        pass


def test_second_predict_on_the_same_out_is_refused_at_once(tiny_cache, tmp_path):
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "virnuc_hpc", "predict", str(EXAMPLE), "-o", str(out),
            "--models", "tiny", "--shards", "2", "--quiet"]
    first = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    deadline = time.monotonic() + 120
    while not RunDir(out).driver.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    start = time.monotonic()
    second = subprocess.run(argv, cwd=REPO, capture_output=True, text=True)
    refused_in = time.monotonic() - start
    stdout, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    assert second.returncode == 2, second.stderr
    assert f"another predict (pid {first.pid}, host " in second.stderr
    assert refused_in < 30 and "prediction_results" in stdout
    again = subprocess.run(argv, cwd=REPO, capture_output=True, text=True)  # then it resumes
    assert again.returncode == 0 and "44 input sequences" in again.stdout, again.stderr


def test_a_samples_files_are_in_its_folder_and_a_single_runs_at_the_top(tmp_path):
    run = RunDir(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in run.outputs("gut_01")] == [
        "results/gut_01/prediction_results.txt",
        "results/gut_01/prediction_results_highestscore.csv", "results/gut_01/predictions.tsv"]
    assert list(run.outputs()) == [run.prediction_results, run.highestscore, run.predictions]
    assert run.samples_table == tmp_path / "results" / "samples.tsv"

"""Feature storage is a choice (`--features fp32|fp16|none`): the same scores, results files
and report for every choice, fp16 rows within 1e-3 of fp32, scores-only parts that resume,
verify, account and reduce like the others.

A run of the bundled example (3 shards, parts of 8 frames) and a small study (5 samples, one
all skipped) each run once per choice through the tiny models; every results file of the
fp16 and none runs is compared with the fp32 run's, byte for byte.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from safetensors.numpy import load_file

from tests.helpers import REPO, run_cli
from tests.helpers_run import plan, run_all
from tests.helpers_study import write_study
from virnuc_hpc.plan import load_plan
from virnuc_hpc.plan.samples import read_samplesheet
from virnuc_hpc.reduce.merge import reduce_run
from virnuc_hpc.views.report import (accounting_section, calls_section, collect, draw,
                                     frames_section, models_section, options_section,
                                     prediction_section, samples_section, write_report)
from virnuc_hpc.core.rundir import RunDir
from virnuc_hpc.views.status import run_status
from virnuc_hpc.parts import read_done

CHOICES = ("fp32", "fp16", "none")
SUMMARY_DIFFERS = {"time", "fingerprint", "features"}  # what may differ between the choices
CONTENT_SECTIONS = (accounting_section, samples_section, calls_section, frames_section,
                    prediction_section, models_section)  # from the results, not times or options


def _run(source, run_dir, features: str, **options):
    plan(source, run_dir, features=features, **options)
    run_all(run_dir)
    result = reduce_run(run_dir)
    assert result.ok, result.report()
    write_report(run_dir)
    return run_dir


@pytest.fixture(scope="module")
def example_runs(tiny_cache, tmp_path_factory):
    root = tmp_path_factory.mktemp("features")
    return {f: _run(REPO / "examples/reads.fa", root / f, f, shards=3, part_rows=8)
            for f in CHOICES}


@pytest.fixture(scope="module")
def study_runs(tiny_cache, tmp_path_factory):
    root = tmp_path_factory.mktemp("features-study")
    sheet, _ = write_study(root / "inputs", [60, 1, 12, 25, 8], orf_share=0.3)
    return {f: _run(read_samplesheet(sheet), root / f, f, shards=3, chunk_size=300,
                    part_rows=16) for f in CHOICES}


def result_files(run_dir) -> dict[str, bytes]:
    """Every results file but summary.json (compared apart) and features_index.json (which
    says what was kept), by path under RUN/results/."""
    results = RunDir(run_dir).results
    skip = {"summary.json", "features_index.json", "report.html"}
    return {str(p.relative_to(results)): p.read_bytes() for p in sorted(results.rglob("*"))
            if p.is_file() and p.name not in skip and not p.name.startswith(".")}


def summary(run_dir) -> dict:
    data = json.loads(RunDir(run_dir).summary.read_text())
    return {k: v for k, v in data.items() if k not in SUMMARY_DIFFERS}


def report_content(run_dir) -> str:
    """The report's sections drawn from the results (accounting, samples, calls and scores,
    kept frames, the prediction figure and its table, models), the run dir's path removed."""
    report = collect(run_dir)
    images = draw(report)
    page = "".join(render(report, images) for render in CONTENT_SECTIONS)
    return page.replace(str(report.run.root), "RUN")


def tensors(run_dir) -> list[dict[str, np.ndarray]]:
    """Every part of every shard, in order."""
    run, parts = RunDir(run_dir), []
    for shard in load_plan(run_dir).shards:
        task = run.task(shard.index)
        parts += [load_file(task.part(e["index"])) for e in read_done(task.root)["parts"]]
    return parts


@pytest.mark.parametrize("features", ["fp16", "none"])
def test_every_results_file_and_the_report_equal_the_fp32_runs(example_runs, features):
    reference, run = example_runs["fp32"], example_runs[features]
    files = result_files(run)
    assert {"prediction_results.txt", "prediction_results_highestscore.csv", "predictions.tsv",
            "prediction.png"} <= set(files)
    assert files == result_files(reference)
    assert summary(run) == summary(reference)
    assert report_content(run) == report_content(reference)


@pytest.mark.parametrize("features", ["fp16", "none"])
def test_a_studys_files_samples_table_and_report_equal_the_fp32_runs(study_runs, features):
    reference, run = study_runs["fp32"], study_runs[features]
    files = result_files(run)
    assert "samples.tsv" in files and "all_skipped/predictions.tsv" in files
    assert files == result_files(reference)
    assert summary(run) == summary(reference) and len(summary(run)["samples"]) == 5
    assert report_content(run) == report_content(reference)


def test_the_report_names_what_was_kept(example_runs):
    for features, run in example_runs.items():
        report = collect(run)
        assert f"<td>option features</td><td>{features}</td>" in options_section(report, {})


def test_fp16_rows_are_within_1e3_of_fp32_and_the_scores_are_the_same(example_runs):
    full, half, none = (tensors(example_runs[f]) for f in CHOICES)
    assert len(full) == len(half) == len(none) > 3
    for a, b, c in zip(full, half, none):
        assert set(a) == set(b) == {"dnabert", "esm", "scores"} and set(c) == {"scores"}
        assert np.array_equal(a["scores"], b["scores"]) and np.array_equal(a["scores"], c["scores"])
        for name in ("dnabert", "esm"):
            assert a[name].dtype == np.float32 and b[name].dtype == np.float16
            relative = np.abs(b[name].astype(np.float32) - a[name]).max(1) / \
                np.abs(a[name]).max(1)
            assert relative.max() <= 1e-3, (name, relative.max())


def test_features_index_says_what_was_kept_and_the_bytes_per_frame(example_runs):
    sizes = {}
    for features, run in example_runs.items():
        index = json.loads(RunDir(run).features_index.read_text())
        kept = index["features"]
        assert kept["stored"] == features and set(kept["tensors"]) == (
            {"scores"} if features == "none" else {"dnabert", "esm", "scores"})
        sizes[features] = index["stored"]["part_bytes"]
    assert sizes["none"] < sizes["fp16"] < sizes["fp32"]


def test_status_sees_every_choice_done(example_runs):
    for run in example_runs.values():
        status = run_status(run)
        assert {s["state"] for s in status["shards"]} == {"done"}


# --- a scores-only run: resume, verification, repair ----------------------------------------

def test_a_scores_only_task_killed_mid_run_resumes_and_ends_with_the_same_files(
        example_runs, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(example_runs["none"], run_dir, symlinks=True)
    shutil.rmtree(run_dir / "results")
    task = RunDir(run_dir).task(0)
    done = read_done(task.root)
    assert len(done["parts"]) >= 2 and done["features"] == "none"
    for k in range(1, len(done["parts"])):  # as if killed after its first part
        task.part(k).unlink()
        task.sidecar(k).unlink()
    task.done.unlink()
    before = task.part(0).stat().st_mtime_ns
    run_all(run_dir, indices=[0])
    assert task.part(0).stat().st_mtime_ns == before  # resumed after it, not rewritten
    assert read_done(task.root)["parts"] == done["parts"]
    assert reduce_run(run_dir).ok
    assert result_files(run_dir).keys() >= {"predictions.tsv"}
    for name in ("prediction_results.txt", "prediction_results_highestscore.csv",
                 "predictions.tsv"):
        assert (RunDir(run_dir).results / name).read_bytes() == \
            (RunDir(example_runs["fp32"]).results / name).read_bytes()


def test_a_bit_flip_in_a_scores_only_part_is_caught_and_resubmit_repairs(example_runs,
                                                                         tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(example_runs["none"], run_dir, symlinks=True)
    part = RunDir(run_dir).task(1).part(0)
    data = bytearray(part.read_bytes())
    data[-3] ^= 0x01  # inside the scores
    part.write_bytes(bytes(data))
    result = reduce_run(run_dir)
    assert not result.ok and result.bad_indices == [1]
    assert "part 0: sha256" in result.report()
    fixed = run_cli("resubmit", run_dir)
    assert fixed.returncode == 0, fixed.stderr
    assert reduce_run(run_dir).ok
    assert result_files(run_dir)["predictions.tsv"] == \
        result_files(example_runs["fp32"])["predictions.tsv"]


def test_a_run_replanned_with_other_features_never_reuses_the_old_parts(example_runs,
                                                                        tmp_path):
    """A task whose DONE or parts were written with other storage redoes them."""
    run_dir = tmp_path / "run"
    shutil.copytree(example_runs["fp16"], run_dir, symlinks=True)
    plan_file = RunDir(run_dir).plan
    record = json.loads(plan_file.read_text())
    record["config"] = {**record["config"], "features": "fp32"}
    plan_file.write_text(json.dumps(record))
    run_all(run_dir, indices=[0])
    done = read_done(RunDir(run_dir).task(0).root)
    assert done["features"] == "fp32"
    assert {t["esm"].dtype for t in tensors(run_dir)[:len(done["parts"])]} == {np.dtype("float32")}

"""reduce's MultiQC custom content and versions.yml, on a study with fake scores (no models):
every number agrees with samples.tsv and predictions.tsv. The real MultiQC reads them in
tests/workflows/test_multiqc.py."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from tests.helpers_study import write_study
from virnuc_hpc.reduce import mqc
from virnuc_hpc.plan import load_manifest, plan_input
from virnuc_hpc.reduce.merge import reduce_run
from virnuc_hpc.core.rundir import RunDir
from virnuc_hpc.plan.samples import RESERVED, read_samplesheet
from virnuc_hpc.reduce.scores import SCORE_EDGES
from virnuc_hpc.sequences.prepare import SKIP_REASONS
from virnuc_hpc.core.versions import versions_yaml

try:
    from test_report import fake_run
    from test_store import write_fake_task
except ImportError:  # tests/ imported as a package
    from tests.views.test_report import fake_run
    from tests.parts.test_parts import write_fake_task

PARTS = ("general_stats", "calls", "best_virus_score")


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> RunDir:
    """Five samples (one all skipped), two shards of fake scores, reduced."""
    root = tmp_path_factory.mktemp("mqc")
    sheet, _ = write_study(root / "inputs", [30, 5, 12, 8, 6])
    plan = plan_input(read_samplesheet(sheet), root / "run", shards=2)
    run = RunDir(root / "run")
    for shard in plan.shards:
        m = load_manifest(run, shard.index)
        write_fake_task(run.task(shard.index), *m.computed_rows(), part_rows=16)
    assert reduce_run(run).ok
    return run


def document(run: RunDir, part: str) -> dict:
    return json.loads(run.multiqc(part).read_text())


def samples_tsv(run: RunDir) -> dict[str, dict]:
    with open(run.samples_table) as handle:
        return {row["sample"]: row for row in csv.DictReader(handle, delimiter="\t")}


def test_general_stats_hold_each_samples_accounting(study):
    stats, table = document(study, "general_stats"), samples_tsv(study)
    assert stats["plot_type"] == "generalstats" and stats["namespace"] == "virnuc_hpc"
    assert list(stats["data"]) == list(table)
    columns = [key for header in stats["pconfig"] for key in header]
    assert "duplicates" not in columns                  # not counted yet: not made up
    for name, row in stats["data"].items():
        assert set(row) == set(columns) - ({"virus_percent"} if not row["predicted"] else set())
        for key in set(row) - {"virus_percent"}:
            assert row[key] == int(table[name][key]), (name, key)
        if row["predicted"]:
            assert row["virus_percent"] == pytest.approx(
                100 * row["virus_sequences"] / row["predicted"])


def test_calls_per_sample_add_up_to_its_input_sequences(study):
    calls, table = document(study, "calls"), samples_tsv(study)
    assert calls["plot_type"] == "bargraph" and calls["parent_id"] == "virnuc_hpc"
    assert set(calls["categories"]) == {"virus", "others", *(f"skipped_{r}" for r in SKIP_REASONS)}
    for name, bars in calls["data"].items():
        assert sum(bars.values()) == int(table[name]["input_sequences"])
        assert bars["virus"] == int(table[name]["virus_sequences"])


def test_best_virus_score_histogram_is_predictions_tsv_binned(study):
    scores = document(study, "best_virus_score")
    assert scores["plot_type"] == "linegraph" and scores["parent_id"] == "virnuc_hpc"
    for name, line in scores["data"].items():
        with open(study.outputs(name).predictions) as handle:
            best = [float(r["best_virus_score"]) for r in csv.DictReader(handle, delimiter="\t")
                    if r["call"] != "skipped"]
        assert list(line.values()) == np.histogram(best, SCORE_EDGES)[0].tolist()
        assert [float(x) for x in line] == pytest.approx((SCORE_EDGES[:-1] + SCORE_EDGES[1:]) / 2)


def test_the_section_says_when_the_tiny_profile_ran(study):
    assert mqc.TINY in document(study, "calls")["parent_description"]
    assert mqc.TINY not in mqc.calls([], "real")["parent_description"]


def test_versions_yml_twice_as_nf_core_and_multiqc_read_it(study):
    assert study.versions.read_text() == versions_yaml()
    assert study.multiqc_versions.read_text() == versions_yaml()


def test_a_sample_cannot_take_the_name_of_a_file_beside_the_sample_folders(study):
    beside = {p.name for p in study.results.iterdir() if p.is_file()} - {".reduce.lock"}
    assert {study.multiqc(part).name for part in PARTS} <= beside
    assert beside <= RESERVED


def test_duplicates_are_a_column_once_the_accounting_counts_them():
    account = {"sample": "a", "input_sequences": 4, "predicted": 3, "virus_sequences": 1,
               "skipped": 1, "skipped_by_reason": {"empty": 1}}
    stats = mqc.general_stats([{**account, "duplicates": 2}, {**account, "sample": "b"}])
    assert {"duplicates": mqc.GENERAL_STATS["duplicates"]} in stats["pconfig"]
    assert stats["data"]["a"]["duplicates"] == 2 and "duplicates" not in stats["data"]["b"]
    assert all("duplicates" not in h for h in mqc.general_stats([account])["pconfig"])


def test_a_run_of_one_file_has_one_row_named_after_it(tmp_path):
    run = RunDir(fake_run(tmp_path, [(f"s{i}", "ATG" * 60) for i in range(6)], shards=2))
    stats = json.loads(run.multiqc("general_stats").read_text())
    assert list(stats["data"]) == ["in"]
    assert stats["data"]["in"]["input_sequences"] == 6

"""A study of 30 samples through the tiny models: packed together into 4 balanced shards, and
every sample's three files byte-identical to a one-sample run of that sample.

The samples have 1 to 5,000 short reads (most small), in FASTA, FASTQ and gzip, with read
IDs repeated across samples; one sample has every sequence skipped (every reason). The study
runs once through plan, run-task, reduce (in this process); each sample then runs alone
(plan of its file, one shard, run-task, reduce) and its files are compared byte for byte:
sharing shards and batches with other samples must not change a single score.
"""

from __future__ import annotations

import csv
import json

import pytest

from tests.helpers_run import plan, run_all
from tests.helpers_study import ALL_SKIPPED, study_sizes, write_study
from virnuc_hpc.reduce.merge import reduce_run
from virnuc_hpc.views.report import write_report
from virnuc_hpc.core.rundir import RunDir
from virnuc_hpc.plan.samples import read_samplesheet
from virnuc_hpc.views.status import run_status

CHUNK = 300


@pytest.fixture(scope="module")
def study(tiny_cache, tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    sheet, samples = write_study(root / "inputs", study_sizes(30, 5000))
    run_dir = root / "run"
    planned = plan(read_samplesheet(sheet), run_dir, shards=4, chunk_size=CHUNK)
    run_all(run_dir)
    result = reduce_run(run_dir)
    assert result.ok, result.report()
    return {"root": root, "sheet": sheet, "samples": samples, "run": run_dir, "plan": planned}


def test_thirty_samples_make_four_balanced_shards_mixing_samples(study):
    planned = study["plan"]
    assert len(planned.samples) == 30 and len(planned.shards) == 4
    assert planned.imbalance <= 1.05
    sizes = [s.sequences for s in planned.samples]
    assert min(sizes) == 1 and max(sizes) == 5000
    assert sum(len(shard.samples) >= 10 for shard in planned.shards) >= 1  # mixes samples
    assert sum(any(s == sizes.index(5000) for s, _, _ in shard.samples)
               for shard in planned.shards) >= 3                  # the largest spans several


def test_every_sample_equals_its_one_sample_run_byte_for_byte(study):
    run = RunDir(study["run"])
    for name, path in study["samples"]:
        alone = study["root"] / f"alone-{name}"
        plan(path, alone, shards=1, chunk_size=CHUNK)
        run_all(alone)
        assert reduce_run(alone).ok
        for mine, theirs in zip(run.outputs(name), RunDir(alone).outputs()):
            assert mine.read_bytes() == theirs.read_bytes(), f"{name}: {mine.name} differs"


def test_samples_tsv_and_summary_add_up(study):
    run = RunDir(study["run"])
    with open(run.samples_table) as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    summary = json.loads(run.summary.read_text())
    assert [r["sample"] for r in rows] == [s.name for s in study["plan"].samples]
    for row, account in zip(rows, summary["samples"]):
        n = {k: int(v) for k, v in row.items() if k not in ("sample", "fasta", "batch")}
        assert n["input_sequences"] == n["predicted"] + n["skipped"]
        assert n["predicted"] == n["virus_sequences"] + n["others_sequences"]
        assert n["skipped"] == sum(v for k, v in n.items() if k.startswith("skipped_"))
        assert account["input_sequences"] == account["predicted"] + account["skipped"]
        assert (account["sample"], account["predicted"], account["kept_frames"]) == \
            (row["sample"], n["predicted"], n["kept_frames"])
        assert account["metadata"] == {"batch": row["batch"]}
    for key in ("input_sequences", "predicted", "skipped", "virus_sequences", "kept_frames"):
        assert summary[key] == sum(a[key] for a in summary["samples"])
    assert summary["input_sequences"] == summary["predicted"] + summary["skipped"] == \
        study["plan"].sequences
    skipped = next(a for a in summary["samples"] if a["sample"] == ALL_SKIPPED)
    assert skipped["predicted"] == 0 and set(skipped["skipped_by_reason"]) == {
        "empty", "too_short", "no_unambiguous_codon", "all_frames_have_stop"}
    assert [len(p.read_text().splitlines()) for p in run.outputs(ALL_SKIPPED)][:2] == [1, 1]


def test_status_by_sample_and_the_report_show_every_sample(study):
    samples = run_status(study["run"], by_sample=True)["samples"]
    assert len(samples) == 30 and {s["state"] for s in samples} == {"done"}
    assert all(s["done_fraction"] == 1.0 for s in samples)
    assert max(s["shards"] for s in samples) >= 3
    html = write_report(study["run"], top=3).html.read_text()
    assert "Samples (30)" in html and f"<td>{ALL_SKIPPED}</td>" in html
    assert "S00/r" in html                      # drawn sequences are named SAMPLE/ID
    named = write_report(study["run"], sequences=["S01/r0", f"{ALL_SKIPPED}/r3"]).html
    assert "S01/r0" in named.read_text() and f"{ALL_SKIPPED}/r3" in named.read_text()

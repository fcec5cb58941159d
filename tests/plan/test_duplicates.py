"""Never embed the same sequence twice: identical reads run-wide (at plan and reduce) and
identical frames inside a part, with every results file as if everything had been computed,
the accounting whole, the balance on the work left and a failed representative holding back
its duplicates."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import results_bytes
from tests.helpers_run import run_all
from tests.helpers_study import ALL_SKIPPED, sample_records, write_sample
from virnuc_hpc.models.cache import profile_fingerprints
from virnuc_hpc.plan import load_manifest, load_plan, plan_input
from virnuc_hpc.plan.samples import read_samplesheet
from virnuc_hpc.reduce.merge import reduce_run
from virnuc_hpc.core.rundir import RunDir
from virnuc_hpc.parts import read_done

NEW_COLUMNS = ("duplicates", "reused_frames")


def duplicate_study(folder: Path, fraction: float, samples: int = 10, size: int = 24,
                    seed: int = 5) -> Path:
    """`samples` samples of `size` reads, `fraction` of them copies of an earlier read of the
    study (its own sample or another, so within and across shards too); sample 4 has only
    skipped reads, which other samples copy too. The sheet."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    pool, rows = [], []
    for k in range(samples):
        name = ALL_SKIPPED if k == 4 else f"S{k:02d}"
        fresh = iter(sample_records(rng, name, size, 0.5))
        records = []
        for i in range(size):
            copy = pool and rng.random() < fraction
            seq = pool[int(rng.integers(len(pool)))] if copy else next(fresh)[1]
            records.append((f"r{i}", seq))
            pool.append(seq)
        path = write_sample(folder / f"{name}.fa", records)
        rows.append(f"{name},{path.name}\n")
    sheet = folder / "samples.csv"
    sheet.write_text("sample,fasta\n" + "".join(rows))
    return sheet


def planned(sheet: Path, run_dir: Path, shards: int = 4, **config):
    return plan_input(read_samplesheet(sheet), run_dir, shards=shards, chunk_size=300,
                      profile="tiny", config=config,
                      model_identities=profile_fingerprints("tiny", 300))


def computed(sheet: Path, run_dir: Path, **config):
    planned(sheet, run_dir, **config)
    run_all(run_dir)
    result = reduce_run(run_dir)
    assert result.ok, result.report()
    return result


def without_new_columns(path: Path) -> list[list[str]]:
    rows = list(csv.reader(path.read_text().splitlines(), delimiter="\t"))
    drop = [rows[0].index(name) for name in NEW_COLUMNS]
    return [[v for k, v in enumerate(row) if k not in drop] for row in rows]


@pytest.mark.parametrize("fraction", [0.0, 0.3, 0.9])
def test_every_results_file_is_the_same_with_and_without_dedup(tiny_cache, tmp_path, fraction):
    sheet = duplicate_study(tmp_path / "study", fraction)
    computed(sheet, tmp_path / "dedup")
    computed(sheet, tmp_path / "all", dedup=False)
    ours, reference = results_bytes(tmp_path / "dedup"), results_bytes(tmp_path / "all")
    assert len(ours) == 30 and ours == reference
    samples = RunDir(tmp_path / "dedup").samples_table
    assert without_new_columns(samples) == \
        without_new_columns(RunDir(tmp_path / "all").samples_table)
    plan = load_plan(tmp_path / "dedup")
    summary = json.loads(RunDir(tmp_path / "dedup").summary.read_text())
    assert summary["reused"]["sequences"] == plan.duplicate_count
    assert (plan.duplicate_count == 0) == (fraction == 0.0)
    embedded = sum(read_done(RunDir(tmp_path / "dedup").task(s.index))["rows"]
                   for s in plan.shards)
    assert embedded + summary["reused"]["frames"] == summary["kept_frames"]   # computed once
    assert summary["reused"]["encoder_work_saved"] == \
        round(summary["reused"]["frames"] / summary["kept_frames"], 6)
    assert plan.duplicate_count >= (fraction - 0.15) * plan.sequences


def test_a_copy_of_a_skipped_read_is_skipped_for_the_same_reason(tiny_cache, tmp_path):
    sheet = duplicate_study(tmp_path / "study", 0.5, samples=6, size=10, seed=8)
    computed(sheet, tmp_path / "run")
    skipped = {}
    for sample in load_plan(tmp_path / "run").samples:
        path = RunDir(tmp_path / "run").outputs(sample.name).predictions
        for row in csv.DictReader(path.read_text().splitlines(), delimiter="\t"):
            skipped.setdefault(row["skip_reason"], []).append(row["sequence_id"])
    dups = load_plan(tmp_path / "run").duplicate_count
    assert dups and len(skipped) > 1                      # kept and skipped reads, copied


def test_shards_are_cut_on_the_work_left_and_the_estimate_counts_it(tmp_path):
    sheet = duplicate_study(tmp_path / "study", 0.9, samples=4, size=200)
    plan = plan_input(read_samplesheet(sheet), tmp_path / "run", shards=4, dry_run=True)
    every = plan_input(read_samplesheet(sheet), tmp_path / "run", shards=4, dry_run=True,
                       config={"dedup": False})
    assert plan.imbalance <= 1.25                        # balanced on the chunks computed
    assert sum(s.chunks for s in plan.shards) < 0.3 * sum(s.chunks for s in every.shards)
    assert plan.gpu_hours_est < 0.3 * every.gpu_hours_est
    table = plan.table()
    assert "dup%" in table and "duplicates: " in table and "computed once" in table
    assert "not looked for (--no-dedup)" in every.table()


def test_identical_frames_of_a_part_share_one_forward(tiny_cache, tmp_path):
    """Reads that differ but hold the same frames (a read and its extension): fewer rows
    forwarded than frames, and the same part bytes as a run that forwards them all."""
    core = "ATG" + "GCT" * 60
    reads = [(f"r{k}", core + "ACGT"[k % 4] * (k + 1)) for k in range(8)]
    fasta = write_sample(tmp_path / "in.fa", reads)
    for name, dedup in (("dedup", True), ("all", False)):
        plan_input(fasta, tmp_path / name, shards=1, chunk_size=500, profile="tiny",
                   config={"dedup": dedup, "features": "fp32"},
                   model_identities=profile_fingerprints("tiny", 500))
        run_all(tmp_path / name)
    once, every = (read_done(RunDir(tmp_path / n).task(0)) for n in ("dedup", "all"))
    assert once["embedded"]["esm"] < once["rows"] == every["embedded"]["esm"]
    assert [p["sha256"] for p in once["parts"]] == [p["sha256"] for p in every["parts"]]


def test_a_failed_representative_holds_back_its_copies(tiny_cache, tmp_path):
    """status --by-sample names the state of the shards a sample's copies depend on, reduce
    refuses naming the shard, resubmit repairs it, and the results are then complete."""
    from tests.helpers import run_cli
    from virnuc_hpc.parts import mark_failed

    sheet = duplicate_study(tmp_path / "study", 0.6, samples=6, size=16)
    run_dir = tmp_path / "run"
    planned(sheet, run_dir, shards=3)
    run_all(run_dir)
    plan = load_plan(run_dir)
    others = {s.index: {f for f, _ in s.feeds} - {own for own, _, _ in s.samples}
              for s in plan.shards}
    source = next(s for s in plan.shards if others[s.index])   # computes others' copies
    reader = min(others[source.index])                         # a sample it does not hold
    (RunDir(run_dir).task(source.index).done).unlink()
    mark_failed(RunDir(run_dir).task(source.index).root, "test: failed")
    status = json.loads(run_cli("status", run_dir, "--json", "--by-sample").stdout)
    assert status["samples"][reader]["state"] == "failed"
    result = reduce_run(run_dir)
    assert not result.ok and result.bad_indices == [source.index]
    run_all(run_dir, [source.index])
    assert reduce_run(run_dir).ok
    assert load_manifest(run_dir, source.index).representatives.size


def test_the_report_shows_what_the_duplicates_saved(tiny_cache, tmp_path):
    from virnuc_hpc.views.report import write_report

    sheet = duplicate_study(tmp_path / "study", 0.5, samples=4, size=12)
    computed(sheet, tmp_path / "run")
    write_report(tmp_path / "run")
    page = RunDir(tmp_path / "run").report.read_text()
    summary = json.loads(RunDir(tmp_path / "run").summary.read_text())
    saved = f"{100 * summary['reused']['encoder_work_saved']:.1f}% of the encoder work saved"
    assert f"Duplicate reads: {summary['reused']['sequences']:,} of" in page and saved in page

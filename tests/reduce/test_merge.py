"""Reduce: every shard verified before anything is merged; results independent of sharding."""

from __future__ import annotations

import json

import numpy as np
import pytest

from virnuc_hpc.core.errors import IntegrityError
from virnuc_hpc.reduce.outputs import read_prediction_results
from virnuc_hpc.plan import load_manifest, plan_input
from virnuc_hpc.reduce.merge import reduce_run
from virnuc_hpc.reduce.schema import PREDICTIONS_HEADER
from virnuc_hpc.core.rundir import RunDir
from virnuc_hpc.parts import PartWriter

try:
    from test_plan import write_fasta
    from test_store import PRINTS, WIDTHS, fake_sequence, write_fake_task
except ImportError:  # tests/ imported as a package
    from tests.plan.test_planner import write_fasta
    from tests.parts.test_parts import PRINTS, WIDTHS, fake_sequence, write_fake_task

LENGTHS = [0, 150, 499, 500, 501, 1200, 3000, 60, 10_001, 800] * 6


def run_task(run_dir, index, **kw):
    kw.setdefault("part_rows", 16)  # few parts: every part costs fsyncs
    m = load_manifest(run_dir, index)   # the rows the task computes: duplicates aside
    write_fake_task(RunDir(run_dir).task(index), *m.computed_rows(), **kw)


def planned(tmp_path, name="run", shards=7, lengths=LENGTHS):
    fasta = tmp_path / "in.fa"
    if not fasta.exists():
        write_fasta(fasta, lengths)
    plan = plan_input(fasta, tmp_path / name, shards=shards)
    return tmp_path / name, plan


def complete_run(tmp_path, name="run", shards=7, **kw):
    run_dir, plan = planned(tmp_path, name, shards)
    for shard in plan.shards:
        run_task(run_dir, shard.index, **kw)
    return run_dir


def results(run_dir):
    run = RunDir(run_dir)
    files = (run.prediction_results, run.highestscore, run.predictions)
    return {p.name: p.read_bytes() for p in files}


def test_reduce_writes_results_in_input_order_with_accounting(tmp_path):
    run_dir = complete_run(tmp_path)
    result = reduce_run(run_dir, widths=WIDTHS, fingerprints=PRINTS)
    assert result.ok, result.report()
    run = RunDir(run_dir)
    rows = [line.split("\t") for line in run.predictions.read_text().splitlines()]
    assert tuple(rows[0]) == PREDICTIONS_HEADER
    assert [r[0] for r in rows[1:]] == [f"r{i}" for i in range(len(LENGTHS))]
    expected_frames = []
    for ordinal, row in enumerate(rows[1:]):
        account, frames = fake_sequence(ordinal, f"r{ordinal}", LENGTHS[ordinal], int(row[2]))
        expected_frames += frames
        assert int(row[3]) == account["kept_frames"] and row[7] == account["skip_reason"]
        assert row[6] in (("virus", "others") if frames else ("skipped",))
        if frames:
            assert row[5] == str(max(f[3][1] for f in frames))
    got = list(read_prediction_results(run.prediction_results))
    assert [g[0] for g in got] == [f[0] for f in expected_frames]
    assert all(np.float32(g[3]) == f[3][1] for g, f in zip(got, expected_frames))
    summary = json.loads(run.summary.read_text())
    assert summary["input_sequences"] == len(LENGTHS) == summary["predicted"] + summary["skipped"]
    assert summary["skipped"] > 0 and summary["skipped_by_reason"]["empty"] == 6
    assert summary["kept_frames"] == len(expected_frames)


def test_results_do_not_depend_on_sharding(tmp_path):
    one = complete_run(tmp_path, "one", shards=1, part_rows=13)
    seven = complete_run(tmp_path, "seven", shards=7, part_rows=7)
    assert reduce_run(one).ok and reduce_run(seven).ok
    assert results(one) == results(seven)


def test_highestscore_groups_chunks_lexicographically(tmp_path):
    run_dir = complete_run(tmp_path, shards=3)
    assert reduce_run(run_dir).ok
    lines = RunDir(run_dir).highestscore.read_text().splitlines()
    keys = [line.split("\t")[0] for line in lines[1:]]
    assert lines[0] == "Modified_ID\tIs_Virus"
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert any("_chunk_10" in k for k in keys)


def test_features_index_points_at_the_verified_parts(tmp_path):
    run_dir = complete_run(tmp_path, shards=2)
    assert reduce_run(run_dir).ok
    index = json.loads(RunDir(run_dir).features_index.read_text())
    assert index["widths"] == {"dnabert": 6, "esm": 10, "scores": 2}
    from virnuc_hpc.core.fsio import sha256_file
    for shard in index["shards"]:
        for part in shard["parts"]:
            assert sha256_file(RunDir(run_dir).root / part["path"]) == part["sha256"]


KEPT = {  # features -> (tensors of every part, their feature dtype, tensor bytes per frame)
    "fp32": ({"dnabert": "float32", "esm": "float32", "scores": "float32"}, "float32",
             4 * (6 + 10) + 8),
    "fp16": ({"dnabert": "float16", "esm": "float16", "scores": "float32"}, "float16",
             2 * (6 + 10) + 8),
    "none": ({"scores": "float32"}, None, 8),
}


@pytest.mark.parametrize("features", sorted(KEPT))
def test_features_index_says_what_was_kept(tmp_path, features):
    fasta = tmp_path / "in.fa"
    write_fasta(fasta, LENGTHS)
    run_dir = tmp_path / "run"
    plan = plan_input(fasta, run_dir, shards=2, config={"features": features})
    for shard in plan.shards:
        run_task(run_dir, shard.index, features=features)
    assert reduce_run(run_dir).ok
    index = json.loads(RunDir(run_dir).features_index.read_text())
    tensors, dtype, per_frame = KEPT[features]
    kept = index["features"]
    assert (kept["stored"], kept["dtype"], kept["bytes_per_frame"]) == (features, dtype, per_frame)
    assert {name: t["dtype"] for name, t in kept["tensors"].items()} == tensors
    frames = sum(shard["rows"] for shard in index["shards"])
    assert index["stored"]["frames"] == frames
    assert index["stored"]["part_bytes"] == sum(p["bytes"] for s in index["shards"]
                                                for p in s["parts"])
    assert ("not kept" in index["layout"]) == (features == "none")
    assert json.loads(RunDir(run_dir).summary.read_text())["features"] == features


def test_a_shard_stored_otherwise_than_planned_is_refused_naming_it(tmp_path):
    run_dir, plan = planned(tmp_path, shards=3)
    for shard in plan.shards:
        run_task(run_dir, shard.index, features="fp16" if shard.index == 1 else "none")
    result = reduce_run(run_dir)
    assert not result.ok and result.bad_indices == [1]
    assert "features stored as fp16, the plan keeps none" in result.report()


def _flip(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x04
    path.write_bytes(bytes(data))


DAMAGE = {
    "bit flip": lambda task: _flip(task.part(0)),
    "truncation": lambda task: task.part(0).write_bytes(task.part(0).read_bytes()[:-7]),
    "deleted part": lambda task: task.part(0).unlink(),
    "no DONE": lambda task: task.done.unlink(),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_shard_fails_reduce_naming_the_index_and_resubmit_repairs(tmp_path, damage):
    run_dir = complete_run(tmp_path, shards=4)
    run = RunDir(run_dir)
    DAMAGE[damage](run.task(2))
    result = reduce_run(run_dir)
    assert not result.ok and result.bad_indices == [2]
    assert result.resubmit_command == f"virnuc-hpc resubmit {run_dir} --indices 2"
    assert "index 2:" in result.report() and "resubmit" in result.report()
    assert [p.name for p in run.results.iterdir()] in ([], [".reduce.lock"])  # nothing merged
    run_task(run_dir, 2)  # what resubmit reruns: the task resumes from its verified parts
    assert reduce_run(run_dir).ok


def test_several_bad_shards_are_all_listed(tmp_path):
    run_dir = complete_run(tmp_path, shards=5)
    run = RunDir(run_dir)
    run.task(1).done.unlink()
    _flip(run.task(4).part(0))
    result = reduce_run(run_dir)
    assert result.bad_indices == [1, 4] and result.resubmit_command.endswith("--indices 1,4")


def test_shards_with_different_model_fingerprints_are_rejected(tmp_path):
    run_dir, plan = planned(tmp_path, shards=3)
    for shard in plan.shards:
        prints = dict(PRINTS, esm="other") if shard.index == 1 else PRINTS
        run_task(run_dir, shard.index, fingerprints=prints)
    result = reduce_run(run_dir)
    assert result.bad_indices == [1] and "differ from shard 0" in result.report()
    assert reduce_run(run_dir, fingerprints=PRINTS).bad_indices == [1]


def test_accounting_identity_is_checked_and_nothing_is_written(tmp_path):
    run_dir = complete_run(tmp_path, shards=2)
    run = RunDir(run_dir)
    plan = json.loads(run.plan.read_text())
    plan["sequences"] += 1  # the plan claims an input sequence no shard accounts for
    run.plan.write_text(json.dumps(plan))
    with pytest.raises(IntegrityError, match="does not add up"):
        reduce_run(run_dir)
    assert not run.summary.exists() and not run.predictions.exists()
    assert not run.prediction_results.exists() and not list(run.results.glob(".reduce-*"))


def test_rerun_of_reduce_is_idempotent(tmp_path):
    run_dir = complete_run(tmp_path, shards=2)
    assert reduce_run(run_dir).ok
    first = results(run_dir)
    assert reduce_run(run_dir).ok and results(run_dir) == first


def test_unfinished_task_is_reported_not_merged(tmp_path):
    run_dir, plan = planned(tmp_path, shards=2)
    run_task(run_dir, 0)
    PartWriter(RunDir(run_dir).task(1), WIDTHS, PRINTS)  # started, nothing written
    result = reduce_run(run_dir)
    assert result.bad_indices == [1] and "DONE missing" in result.report()


# -- what the fault-injection suite found (tests/reliability) ---------------------------------

def test_an_io_error_is_one_line_naming_the_file_and_rerun_and_publishes_nothing(tmp_path,
                                                                                 monkeypatch):
    from virnuc_hpc.reduce.merge import ReduceIOError

    run_dir = complete_run(tmp_path, shards=2)
    monkeypatch.setenv("VIRNUC_HPC_FAULTS", "write:*/predictions.tsv=enospc")
    with pytest.raises(ReduceIOError) as caught:
        reduce_run(run_dir)
    message = str(caught.value)
    assert "\n" not in message and "predictions.tsv" in message and caught.value.exit_code == 1
    assert f"virnuc-hpc reduce {run_dir}" in message
    results = RunDir(run_dir).results
    assert not RunDir(run_dir).summary.exists() and not RunDir(run_dir).predictions.exists()
    assert [p.name for p in results.iterdir() if p.name != ".reduce.lock"] == []
    monkeypatch.delenv("VIRNUC_HPC_FAULTS")
    assert reduce_run(run_dir).ok


def test_sigterm_stops_reduce_cleanly(tmp_path, monkeypatch):
    from virnuc_hpc.reduce.merge import ReduceStopped

    run_dir = complete_run(tmp_path, shards=2)
    monkeypatch.setenv("VIRNUC_HPC_FAULTS", "reduce.merged=term")
    with pytest.raises(ReduceStopped) as caught:
        reduce_run(run_dir)
    assert caught.value.exit_code == 75 and f"virnuc-hpc reduce {run_dir}" in str(caught.value)
    results = RunDir(run_dir).results
    assert [p.name for p in results.iterdir() if p.name != ".reduce.lock"] == []


def test_what_a_killed_reduce_left_is_swept_by_the_next(tmp_path):
    run_dir = complete_run(tmp_path, shards=2)
    results = RunDir(run_dir).results
    (results / ".reduce-x1y2").mkdir(parents=True)
    (results / ".reduce-x1y2" / "shard-00000.tsv").write_text("half")
    (results / ".predictions.tsv.abc.tmp").write_text("half")
    provenance = RunDir(run_dir).provenance("reduce")
    provenance.parent.mkdir(exist_ok=True)
    stale = provenance.parent / ".reduce.json.def456.tmp"
    stale.write_text("half")
    assert reduce_run(run_dir).ok and not stale.exists()
    assert sorted(p.name for p in results.iterdir() if p.name.startswith(".")) == \
        [".reduce.lock"]


# --- studies -----------------------------------------------------------------------------------

def planned_study(tmp_path, name="study", shards=5, sizes=(12, 1, 30, 4)):
    """A study of samples with the same read IDs (r0, r1, ...), fake tasks written."""
    from virnuc_hpc.plan.samples import read_samplesheet

    folder = tmp_path / "inputs"
    if not folder.exists():
        folder.mkdir()
        for k, size in enumerate(sizes):
            write_fasta(folder / f"s{k}.fa", LENGTHS[k:k + size], seed=k)
        (folder / "sheet.csv").write_text("sample,fasta,site\n" + "".join(
            f"S{k},s{k}.fa,site{k}\n" for k in range(len(sizes))))
    plan = plan_input(read_samplesheet(folder / "sheet.csv"), tmp_path / name, shards=shards)
    for shard in plan.shards:
        run_task(tmp_path / name, shard.index)
    return tmp_path / name, plan


def sample_results(run_dir, names):
    run = RunDir(run_dir)
    return {(n, p.name): p.read_bytes() for n in names for p in run.outputs(n)}


def test_a_study_writes_each_samples_files_samples_tsv_and_the_accounting(tmp_path):
    run_dir, plan = planned_study(tmp_path)
    result = reduce_run(run_dir, widths=WIDTHS, fingerprints=PRINTS)
    assert result.ok, result.report()
    run = RunDir(run_dir)
    assert not run.predictions.exists() and not run.prediction_results.exists()
    rows = [line.split("\t") for line in run.samples_table.read_text().splitlines()]
    assert rows[0][:6] == ["sample", "input_sequences", "predicted", "virus_sequences",
                           "others_sequences", "skipped"] and rows[0][-2:] == ["fasta", "site"]
    summary = json.loads(run.summary.read_text())
    for row, sample, account in zip(rows[1:], plan.samples, summary["samples"]):
        predictions = [line.split("\t") for line in
                       run.outputs(sample.name).predictions.read_text().splitlines()[1:]]
        assert [p[0] for p in predictions] == [f"r{i}" for i in range(sample.sequences)]
        counted = {k: sum(p[6] == k for p in predictions) for k in ("virus", "others", "skipped")}
        assert row[:6] == [sample.name, str(sample.sequences),
                           str(counted["virus"] + counted["others"]), str(counted["virus"]),
                           str(counted["others"]), str(counted["skipped"])]
        assert int(row[1]) == int(row[2]) + int(row[5]) == account["input_sequences"]
        assert sum(map(int, row[6:10])) == int(row[5])
        assert row[-1] == f"site{plan.samples.index(sample)}"
        assert account["sample"] == sample.name and account["metadata"] == sample.metadata
        frames = run.outputs(sample.name).prediction_results.read_text().splitlines()[1:]
        assert len(frames) == account["kept_frames"] == int(row[10])
        chunks = run.outputs(sample.name).highestscore.read_text().splitlines()[1:]
        keys = [c.split("\t")[0] for c in chunks]
        assert keys == sorted(set(keys)) and len(keys) == account["highestscore_rows"]
        assert {f.split("\t")[0][:-2] for f in frames} == set(keys)
    for key in ("input_sequences", "predicted", "skipped", "kept_frames", "virus_sequences"):
        assert summary[key] == sum(a[key] for a in summary["samples"])
    assert summary["input_sequences"] == plan.sequences == 47


def test_a_studys_results_do_not_depend_on_sharding(tmp_path):
    one, plan = planned_study(tmp_path, "one", shards=1)
    five, _ = planned_study(tmp_path, "five", shards=5)
    assert reduce_run(one).ok and reduce_run(five).ok
    names = [s.name for s in plan.samples]
    assert sample_results(one, names) == sample_results(five, names)
    assert RunDir(one).samples_table.read_bytes() == RunDir(five).samples_table.read_bytes()


def test_nothing_is_published_unless_every_sample_adds_up(tmp_path):
    run_dir, _ = planned_study(tmp_path)
    run = RunDir(run_dir)
    plan = json.loads(run.plan.read_text())
    plan["samples"][2]["sequences"] += 1   # S2 claims a sequence no shard holds
    plan["samples"][3]["sequences"] -= 1
    run.plan.write_text(json.dumps(plan))
    with pytest.raises(IntegrityError, match="sample 'S2': accounting does not add up: the "
                                             "plan counts input sequence 43 in it, the shards "
                                             "in sample 3"):
        reduce_run(run_dir)
    assert sorted(p.name for p in run.results.iterdir()) == [".reduce.lock"]
    plan["samples"][3]["sequences"] += 2   # now the last sample claims one more (5)
    plan["samples"][2]["sequences"] -= 1
    plan["sequences"] += 1
    run.plan.write_text(json.dumps(plan))
    with pytest.raises(IntegrityError, match="sample 'S3': accounting does not add up: 5 "
                                             "input sequences, 4 merged"):
        reduce_run(run_dir)
    assert sorted(p.name for p in run.results.iterdir()) == [".reduce.lock"]


def test_reduce_reads_each_part_once(tmp_path, monkeypatch):
    from pathlib import Path

    run_dir, _ = planned_study(tmp_path)
    reads = []
    real = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: (reads.append(self), real(self))[1])
    assert reduce_run(run_dir).ok
    parts = [p for p in reads if p.suffix == ".safetensors"]
    assert parts and len(parts) == len(set(parts)) == \
        len(list(run_dir.glob("tasks/*/part-*.safetensors")))


def test_a_failure_while_publishing_takes_back_what_this_reduce_published(tmp_path,
                                                                          monkeypatch):
    from virnuc_hpc.reduce import merge as reducing

    run_dir, _ = planned_study(tmp_path)
    real, calls = reducing.publish, []

    def failing(source, target):
        calls.append(target)
        if len(calls) == 5:
            raise OSError(28, "No space left on device", str(target))
        real(source, target)

    monkeypatch.setattr(reducing, "publish", failing)
    with pytest.raises(reducing.ReduceIOError, match="No space left.*S1/"):
        reduce_run(run_dir)
    results = RunDir(run_dir).results
    assert sorted(p.name for p in results.rglob("*") if p.is_file()) == [".reduce.lock"]

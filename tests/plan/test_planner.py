"""The planner: one streaming read, balanced shards, checksummed manifests, dry run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from virnuc_hpc.core.errors import ConfigError, InputError, IntegrityError, UserError
from virnuc_hpc.plan import (
    cut, imbalance, iter_shard_records, load_manifest, load_plan, plan_input,
)
from virnuc_hpc.plan.packing import Cutter, weighted
from virnuc_hpc.core.rundir import RunDir
from virnuc_hpc.sequences.prepare import chunk_spans


def write_fasta(path, lengths, seed=0):
    rng = np.random.default_rng(seed)
    with open(path, "w") as out:
        for i, length in enumerate(lengths):
            seq = "".join(rng.choice(list("ACGT"), size=int(length)))
            out.write(f">r{i} some description\n")
            for start in range(0, len(seq), 60):
                out.write(seq[start:start + 60] + "\n")
    return path


def skewed_lengths(kind, n, seed=1):
    rng = np.random.default_rng(seed)
    if kind == "lognormal":
        return np.clip(rng.lognormal(6.5, 1.2, n), 1, 60_000).astype(int)
    if kind == "pareto":
        return np.clip((rng.pareto(1.2, n) + 1) * 150, 1, 60_000).astype(int)
    return np.where(rng.random(n) < 0.05, 20_000, 150)  # bimodal: reads and a few contigs


@pytest.mark.parametrize("seed", range(5))
def test_cuts_are_contiguous_never_empty_and_within_one_cost_of_the_share(seed):
    rng = np.random.default_rng(seed)
    costs = rng.integers(0, 6, size=rng.integers(1, 300)) ** rng.integers(1, 4)
    shards = int(min(rng.integers(1, 12), len(costs)))
    assign = cut(weighted(costs), shards)
    assert (np.diff(assign) >= 0).all() and (np.diff(assign) <= 1).all()   # contiguous, in order
    assert set(assign.tolist()) == set(range(shards))                      # none empty
    loads = np.bincount(assign, weights=weighted(costs), minlength=shards)
    assert loads.max() - loads.min() <= 2 * weighted(costs).max()


@pytest.mark.parametrize("kind", ["lognormal", "pareto", "bimodal"])
@pytest.mark.parametrize("shards", [7, 64])
def test_skewed_lengths_balance_within_5_percent(kind, shards):
    lengths = skewed_lengths(kind, 40_000)
    costs = np.array([len(chunk_spans(int(n), 500)) for n in lengths])
    loads = np.bincount(cut(weighted(costs), shards), weights=costs, minlength=shards)
    assert imbalance(loads) <= 1.05
    assert loads.max() - loads.min() <= 2 * costs.max()   # each within one cost of its share


def test_zero_cost_sequences_are_spread_by_count():
    assign = cut(weighted(np.zeros(10, int)), 3)
    assert sorted(np.bincount(assign, minlength=3).tolist()) == [3, 3, 4]


def test_cutting_block_by_block_equals_cutting_at_once():
    costs = weighted(np.random.default_rng(4).integers(0, 5, 1000) ** 2)
    cutter = Cutter(int(costs.sum()), len(costs), 7)
    blocks = np.concatenate([cutter(costs[i:i + 37]) for i in range(0, 1000, 37)])
    assert blocks.tolist() == cut(costs, 7).tolist()


def test_plan_writes_manifests_covering_the_input_in_order(tmp_path):
    lengths = skewed_lengths("lognormal", 400)
    fasta = write_fasta(tmp_path / "in.fa", lengths)
    plan = plan_input(fasta, tmp_path / "run", shards=5)
    costs = [len(chunk_spans(int(n), 500)) for n in lengths]
    assert plan.sequences == 400 and len(plan.shards) == 5
    assert plan.imbalance <= 1 + max(costs) / (sum(costs) / 5)   # within one sequence's cost
    assert plan.chunks == sum(len(chunk_spans(int(n), 500)) for n in lengths)
    seen = []
    for shard in plan.shards:
        manifest = load_manifest(tmp_path / "run", shard.index)
        assert manifest.ordinals.tolist() == sorted(manifest.ordinals.tolist())
        assert manifest.ids == [f"r{o}" for o in manifest.ordinals]
        assert manifest.lengths.tolist() == [int(lengths[o]) for o in manifest.ordinals]
        assert int(manifest.chunks.sum()) == shard.chunks and len(manifest.ids) == shard.sequences
        seen.extend(manifest.ordinals.tolist())
    assert sorted(seen) == list(range(400))
    assert load_plan(tmp_path / "run") == plan
    assert not list((tmp_path / "run" / "shards").glob(".*"))  # no temp files left


def test_fixed_length_reads_reduce_to_sequence_count(tmp_path):
    fasta = write_fasta(tmp_path / "in.fa", [150] * 1000)
    plan = plan_input(fasta, tmp_path / "run", sequences_per_shard=300)
    assert [s.sequences for s in plan.shards] == [250, 250, 250, 250]
    assert plan.imbalance == 1.0


def test_dry_run_writes_nothing_and_matches_the_real_plan(tmp_path):
    fasta = write_fasta(tmp_path / "in.fa", skewed_lengths("pareto", 200))
    dry = plan_input(fasta, tmp_path / "run", shards=3, dry_run=True)
    assert not (tmp_path / "run").exists()
    real = plan_input(fasta, tmp_path / "run", shards=3)
    assert [s.chunks for s in dry.shards] == [s.chunks for s in real.shards]
    assert dry.fingerprint == real.fingerprint
    table = dry.table()
    assert "total" in table and "imbalance" in table and "estimate" in table


def test_fingerprint_depends_on_what_results_depend_on(tmp_path):
    fasta = write_fasta(tmp_path / "in.fa", [700, 1200, 90])
    base = plan_input(fasta, tmp_path / "a", shards=1, dry_run=True).fingerprint
    assert plan_input(fasta, tmp_path / "a", shards=3, dry_run=True).fingerprint == base
    for change in ({"chunk_size": 300}, {"profile": "real"}, {"config": {"invariant": False}},
                   {"model_identities": {"esm": "abc"}}):
        assert plan_input(fasta, tmp_path / "a", dry_run=True, **change).fingerprint != base
    other = write_fasta(tmp_path / "other.fa", [700, 1200, 91])
    assert plan_input(other, tmp_path / "a", dry_run=True).fingerprint != base


def test_plan_refuses_bad_options_and_an_existing_plan(tmp_path):
    fasta = write_fasta(tmp_path / "in.fa", [500] * 4)
    with pytest.raises(ConfigError, match="not both"):
        plan_input(fasta, tmp_path / "run", shards=2, sequences_per_shard=2)
    with pytest.raises(ConfigError, match="300, 500"):
        plan_input(fasta, tmp_path / "run", chunk_size=400)
    with pytest.raises(ConfigError, match="positive"):
        plan_input(fasta, tmp_path / "run", shards=0)
    plan = plan_input(fasta, tmp_path / "run", shards=10)
    assert len(plan.shards) == 4  # never more shards than sequences
    with pytest.raises(UserError, match="already holds a plan"):
        plan_input(fasta, tmp_path / "run")


def test_failed_read_leaves_no_shards_and_a_crashed_plan_is_cleaned(tmp_path):
    bad = tmp_path / "bad.fa"
    bad.write_text(">a\nACGT\n>a\nACGT\n")  # duplicate IDs: the reader raises at the end
    with pytest.raises(InputError):
        plan_input(bad, tmp_path / "run")
    assert not (tmp_path / "run" / "shards").exists()
    assert not (tmp_path / "run" / "plan.json").exists()
    (tmp_path / "run" / "shards").mkdir()
    (tmp_path / "run" / "shards" / "shard-00007.manifest.json").write_text("stale\n")
    plan_input(write_fasta(tmp_path / "in.fa", [100, 200]), tmp_path / "run")
    assert not (tmp_path / "run" / "shards" / "shard-00007.manifest.json").exists()


def test_tampered_manifest_is_rejected(tmp_path):
    fasta = write_fasta(tmp_path / "in.fa", [100, 200, 300, 400])
    plan_input(fasta, tmp_path / "run", shards=2)
    ids = RunDir(tmp_path / "run").ids
    ids.write_text(ids.read_text().replace("r3", "x3"))     # shard 1's slice
    load_manifest(tmp_path / "run", 0)
    with pytest.raises(IntegrityError, match="shard 1: ids.txt changed since planning"):
        load_manifest(tmp_path / "run", 1)


def test_tasks_read_the_runs_copy_so_a_changed_input_changes_nothing(tmp_path):
    """After planning the input may change, move or vanish: the tasks read the run's copy."""
    lengths = [100, 2000, 300, 50, 900, 1200]
    fasta = write_fasta(tmp_path / "in.fa", lengths)
    plan = plan_input(fasta, tmp_path / "run", shards=2)
    planned = {r.ordinal: (r.id, r.seq) for s in plan.shards
               for r in iter_shard_records(tmp_path / "run", s.index)}
    assert sorted(planned) == list(range(6))
    assert [len(planned[i][1]) for i in range(6)] == lengths
    fasta.unlink()
    again = {r.ordinal: (r.id, r.seq) for s in plan.shards
             for r in iter_shard_records(tmp_path / "run", s.index)}
    assert again == planned


def test_plan_json_records_fingerprint_inputs_and_estimates(tmp_path):
    fasta = write_fasta(tmp_path / "in.fa", [500] * 10)
    plan_input(fasta, tmp_path / "run", shards=2, model_identities={"esm": "sha-e"})
    data = json.loads((tmp_path / "run" / "plan.json").read_text())
    assert len(data["samples"][0]["sha256"]) == 64 and data["models"] == {"esm": "sha-e"}
    assert data["samples"][0]["sequences"] == 10 and data["sheet"] is None
    assert data["shards"][0]["tokens_est"] > 0 and "estimate" in data["estimate_note"]
    assert (tmp_path / "run" / "provenance" / "plan.json").exists()


def test_gpu_hour_estimate_says_goal_until_a_measurement_is_recorded(tmp_path, monkeypatch):
    from virnuc_hpc.plan.throughput import GOALS, esm_rate, record_measurement

    cache = tmp_path / "cache"
    goal = esm_rate("bf16", cache)
    assert (goal.residues_per_s, goal.measured) == (GOALS["bf16"], False)
    assert "goal, not a measurement" in goal.describe() and "virnuc-hpc bench" in goal.describe()
    assert esm_rate("fp32", cache).residues_per_s == GOALS["fp32"]
    record_measurement({"precision": "bf16", "residues_per_s": 81234.5,
                        "device": "cuda (NVIDIA H200)"}, cache)
    measured = esm_rate("bf16", cache)
    assert measured.measured and measured.residues_per_s == 81234.5
    assert "measured: `virnuc-hpc bench` on cuda (NVIDIA H200)" in measured.describe()
    fasta = tmp_path / "in.fa"
    write_fasta(fasta, [500] * 40)
    monkeypatch.setenv("VIRNUC_HPC_CACHE", str(cache))
    bf16 = plan_input(fasta, tmp_path / "a", shards=2, config={"precision": "bf16"})
    fp32 = plan_input(fasta, tmp_path / "b", shards=2)
    assert "81,234 residues/s per GPU (measured" in bf16.table()
    assert "6,700 residues/s per GPU (goal, not a measurement" in fp32.table()
    assert fp32.gpu_hours_est == pytest.approx(bf16.gpu_hours_est * 81234.5 / GOALS["fp32"])


def test_a_damaged_copy_is_caught_by_the_shards_that_read_it(tmp_path):
    """A bit flipped in the run's sequence file: its frame's checksum refuses it, and a
    frame rewritten with other bases is refused by the sequences' digests."""
    fasta = write_fasta(tmp_path / "in.fa", [300] * 40)
    plan = plan_input(fasta, tmp_path / "run", shards=2)
    path = RunDir(tmp_path / "run").seqfile
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="sequences.zst.*damaged.*plan the input again"):
        for shard in plan.shards:
            list(iter_shard_records(tmp_path / "run", shard.index))


def test_a_sequence_with_other_bases_than_planned_is_refused_naming_it(tmp_path, monkeypatch):
    from virnuc_hpc.plan import shard_reads as records

    fasta = write_fasta(tmp_path / "in.fa", [300] * 6)
    plan_input(fasta, tmp_path / "run", shards=1)
    real = records.read_range
    monkeypatch.setattr(records, "read_range", lambda *a: (
        s if k != 3 else b"A" * 300 for k, s in enumerate(real(*a))))
    with pytest.raises(IntegrityError, match=r"sequence 'r3' \(ordinal 3\) has other bases"):
        list(iter_shard_records(tmp_path / "run", 0))


def test_a_plan_of_an_older_format_is_refused_with_the_fix(tmp_path):
    fasta = write_fasta(tmp_path / "in.fa", [100, 200])
    plan_input(fasta, tmp_path / "run", shards=1)
    path = tmp_path / "run" / "plan.json"
    path.write_text(path.read_text().replace('"format": 5', '"format": 3'))
    with pytest.raises(UserError, match=r"plan format 3, this virnuc-hpc reads format 5 .*"
                                        r"fix: plan the input again in a new run dir"):
        load_plan(tmp_path / "run")


# --- studies: several samples planned together ---------------------------------------------

def write_study(tmp_path, sizes, seed=3, metadata=True):
    """Samples of variable-length reads whose IDs repeat across samples, and their sheet."""
    from virnuc_hpc.plan.samples import read_samplesheet

    rng = np.random.default_rng(seed)
    folder = tmp_path / "study"
    folder.mkdir(exist_ok=True)
    rows = []
    for k, size in enumerate(sizes):
        write_fasta(folder / f"s{k}.fa", rng.integers(1, 1600, size), seed=seed + k)
        rows.append(f"S{k},s{k}.fa" + (f",g{k % 2}" if metadata else ""))
    sheet = folder / "samples.csv"
    sheet.write_text(("sample,fasta,group\n" if metadata else "sample,fasta\n")
                     + "\n".join(rows) + "\n")
    return read_samplesheet(sheet)


def test_a_study_is_packed_together_with_global_ordinals_and_a_sample_column(tmp_path):
    from virnuc_hpc.core.fsio import sha256_file
    from virnuc_hpc.sequences import iter_records

    study = write_study(tmp_path, [40, 3, 1, 120, 9])
    plan = plan_input(study, tmp_path / "run", shards=4)
    assert plan.per_sample and plan.format == 5 and plan.imbalance <= 1.25
    assert [s.name for s in plan.samples] == ["S0", "S1", "S2", "S3", "S4"]
    assert [s.sequences for s in plan.samples] == [40, 3, 1, 120, 9] and plan.sequences == 173
    assert plan.samples[3].sha256 == sha256_file(study.samples[3].path)
    assert plan.samples[1].metadata == {"group": "g1"}
    starts = plan.sample_starts().tolist()
    records = [r for s in study.samples for r in iter_records(s.path)]
    held = np.zeros((5, 2), int)
    for shard in plan.shards:
        m = load_manifest(tmp_path / "run", shard.index)
        assert m.ordinals.tolist() == sorted(m.ordinals.tolist())
        assert m.samples.tolist() == [np.searchsorted(starts, o, "right") - 1 for o in m.ordinals]
        assert m.ids == [records[o].id for o in m.ordinals]  # r0, r1... in every sample
        counts = {int(s): (int((m.samples == s).sum()), int(m.chunks[m.samples == s].sum()))
                  for s in set(m.samples.tolist())}
        assert {s: (n, c) for s, n, c in shard.samples} == counts
        for sample, n, c in shard.samples:
            held[sample] += (n, c)
    assert held.tolist() == [[s.sequences, s.chunks] for s in plan.samples]
    assert sum(len(s.samples) > 1 for s in plan.shards) >= 2       # shards mix samples
    assert sum(any(x[0] == 3 for x in s.samples) for s in plan.shards) >= 2  # S3 spans shards
    assert load_plan(tmp_path / "run") == plan


def test_planning_in_small_blocks_writes_the_same_shards(tmp_path, monkeypatch):
    from virnuc_hpc.plan import route
    from virnuc_hpc.sequences import blocks

    study = write_study(tmp_path, [30, 7, 1, 50])
    plan_input(study, tmp_path / "big", shards=3)
    monkeypatch.setattr(route, "BLOCK", 4)      # cut blocks straddle samples and shards
    monkeypatch.setattr(blocks, "BUFFER", 512)  # so do the parser's buffers
    small = plan_input(study, tmp_path / "small", shards=3)
    for name in ("rows.bin", "ids.txt"):
        assert (tmp_path / "big" / "shards" / name).read_bytes() == \
            (tmp_path / "small" / "shards" / name).read_bytes()
    assert load_plan(tmp_path / "big").shards == small.shards
    for shard in small.shards:
        assert [r.seq for r in iter_shard_records(tmp_path / "big", shard.index)] == \
            [r.seq for r in iter_shard_records(tmp_path / "small", shard.index)]


def test_a_task_opens_no_input_file_and_reads_only_its_slices(tmp_path, monkeypatch):
    """The last shard's task reads as few bytes as the first's: its manifest's slices and the
    frames that hold its sequences, never an input file."""
    import builtins

    from virnuc_hpc.plan import seqfile
    from virnuc_hpc.sequences import blocks

    monkeypatch.setattr(blocks, "BUFFER", 16 << 10)   # many frames
    study = write_study(tmp_path, [5, 5, 2000, 5, 5])
    plan = plan_input(study, tmp_path / "run", shards=8)
    inputs = {str(s.path) for s in study.samples}
    opened, real_open = [], builtins.open
    monkeypatch.setattr(builtins, "open", lambda f, *a, **k: (opened.append(str(f)),
                                                              real_open(f, *a, **k))[1])
    read, real_frame = [], seqfile._frame_lines
    monkeypatch.setattr(seqfile, "_frame_lines",
                        lambda p, h, frame: (read.append(int(frame["size"])),
                                             real_frame(p, h, frame))[1])
    costs = []
    for shard in plan.shards:
        read.clear()
        assert len(list(iter_shard_records(tmp_path / "run", shard.index))) == shard.sequences
        costs.append(sum(read))
    assert not inputs & set(opened)
    assert max(costs) <= 2 * min(costs) + 2 * (16 << 10)  # frames at its two ends at most


def test_the_fingerprint_covers_every_sample_and_needs_no_parse(tmp_path):
    from virnuc_hpc.core.fsio import sha256_file
    from virnuc_hpc.plan import fingerprint, study_fingerprint
    from virnuc_hpc.plan.samples import Study

    study = write_study(tmp_path, [5, 8])
    base = plan_input(study, tmp_path / "a", dry_run=True).fingerprint
    assert study_fingerprint(study) == base
    one = study.samples[0].path
    assert study_fingerprint(one) == plan_input(one, tmp_path / "b", dry_run=True).fingerprint \
        == fingerprint(sha256_file(one), 500, "tiny", {}, {})       # one file: as before
    renamed = Study((study.samples[0], study.samples[1].__class__(
        "other", study.samples[1].path, "", study.samples[1].metadata)), study.sheet)
    assert study_fingerprint(renamed) != base
    relabelled = write_study(tmp_path, [5, 8], metadata=False)   # same files, no metadata
    assert study_fingerprint(relabelled) != base
    write_fasta(study.samples[1].path, [5, 5, 5])
    assert study_fingerprint(study) != base


def test_dry_run_prints_the_samples_above_the_shards_elided_past_40(tmp_path):
    study = write_study(tmp_path, [1] * 45)
    table = plan_input(study, tmp_path / "run", shards=2, dry_run=True).table()
    lines = table.splitlines()
    assert lines[0].split() == ["sample", "sequences", "chunks", "dup%", "est_GPU_h"]
    assert [lines[1].split()[0], lines[21], lines[41].split()[0]] == ["S0", "   ...", "S44"]
    assert lines[42] == f"samples: 45 (from {study.sheet})" and lines[43] == ""
    assert lines[44].split()[0] == "shard" and "imbalance" in table
    assert not (tmp_path / "run").exists()

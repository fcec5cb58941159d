"""Feature parts: atomic publication, resume, verification and concurrent writers."""

from __future__ import annotations

import json
import multiprocessing
import os

import numpy as np
import pytest

from virnuc_hpc.core.errors import ConfigError
from virnuc_hpc.core.rundir import TaskDir
from virnuc_hpc.core.config import DEFAULT_FEATURES
from virnuc_hpc.parts import (
    Expectation, PartWriter, frame_key, ids_digest, mark_failed, read_accounting, read_done,
    read_failed, read_heartbeat, resume_point, verify_task, write_accounting, write_heartbeat,
)

WIDTHS = {"dnabert": 6, "esm": 10}
PRINTS = {"dnabert": "d" * 8, "esm": "e" * 8, "classifier": "c" * 8}
FRAMES = ("F1", "F2", "F3", "R1", "R2", "R3")


def fake_sequence(ordinal: int, seq_id: str, length: int, chunks: int, salt: int = 0):
    """Deterministic frames, features and scores of one sequence (a function of its ordinal
    only, so any sharding produces the same values). Returns (accounting row, frames)."""
    rng = np.random.default_rng([ordinal, salt])
    names = [f"{seq_id}_chunk_{c + 1}{f}" for c in range(chunks) for f in FRAMES
             if rng.random() < 0.3]
    if ordinal % 11 == 3:
        names = []  # some sequences keep no frame at all
    n = len(names)
    logits = rng.normal(size=(n, 2)).astype(np.float32)
    if n and ordinal % 13 == 5:
        logits[0] = [0.25, 0.25]  # an exact tie
    scores = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    frames = [(name, rng.normal(size=WIDTHS["dnabert"]).astype(np.float32),
               rng.normal(size=WIDTHS["esm"]).astype(np.float32), scores[i].astype(np.float32))
              for i, name in enumerate(names)]
    reason = "" if n else ("empty" if length == 0 else "all_frames_have_stop")
    row = {"id": seq_id, "length": length, "chunks": chunks, "kept_frames": n,
           "skip_reason": reason}
    return row, frames


def write_fake_task(task_dir, ordinals, ids, lengths, chunks, part_rows=4, salt=0,
                    fingerprints=PRINTS, stop_after_parts=None, done=True,
                    features=DEFAULT_FEATURES):
    """Write a task as run-task would: parts of `part_rows` frames, accounting, DONE."""
    writer = PartWriter(task_dir, WIDTHS, fingerprints, features)
    rows, frames = [], []
    for ordinal, seq_id, length, count in zip(ordinals, ids, lengths, chunks):
        row, seq_frames = fake_sequence(int(ordinal), seq_id, int(length), int(count), salt)
        rows.append(row)
        frames.extend(seq_frames)
    while writer.rows_done < len(frames):
        if stop_after_parts is not None and writer.next_part >= stop_after_parts:
            return writer
        block = frames[writer.rows_done:writer.rows_done + part_rows]
        writer.write_part(writer.next_part, [f[0] for f in block], np.stack([f[1] for f in block]),
                          np.stack([f[2] for f in block]), np.stack([f[3] for f in block]))
    if done:
        write_accounting(task_dir, rows)
        writer.write_done({"sequences": len(rows)})
    return writer


def simple_shard(n=12):
    ids = [f"s{i}" for i in range(n)]
    return list(range(n)), ids, [500 * (1 + i % 3) for i in range(n)], [1 + i % 3 for i in range(n)]


@pytest.fixture
def shard():
    return simple_shard()


def expectation(shard, **kw):
    _, ids, lengths, chunks = shard
    return Expectation(ids, lengths, chunks, **kw)


def test_complete_task_verifies_and_resumes_from_the_end(tmp_path, shard):
    write_fake_task(tmp_path, *shard)
    assert verify_task(tmp_path, expectation(shard, widths=WIDTHS, fingerprints=PRINTS)) == []
    point = resume_point(tmp_path)
    done = read_done(tmp_path)
    assert (point.parts, point.rows) == (len(done["parts"]), done["rows"]) and done["rows"] > 8
    assert done["sequence_ids_digest"] == ids_digest(shard[1])
    assert [r.id for r in read_accounting(tmp_path)] == shard[1]


def test_resume_skips_stray_temp_and_unsidecarred_parts(tmp_path, shard):
    write_fake_task(tmp_path, *shard, stop_after_parts=2)
    task = TaskDir(tmp_path)
    (tmp_path / ".part-00002.safetensors.123.tmp").write_bytes(b"partial")
    task.part(2).write_bytes(b"published without a sidecar")
    assert resume_point(tmp_path).parts == 2
    write_fake_task(tmp_path, *shard)  # the rerun continues at part 2 and overwrites it
    assert verify_task(tmp_path, expectation(shard)) == []


def test_resume_stops_at_first_bad_part_and_rerun_repairs(tmp_path, shard):
    write_fake_task(tmp_path, *shard, stop_after_parts=3)
    data = bytearray(TaskDir(tmp_path).part(1).read_bytes())
    data[-3] ^= 0x10
    TaskDir(tmp_path).part(1).write_bytes(bytes(data))
    assert resume_point(tmp_path).parts == 1
    assert resume_point(tmp_path, widths={"dnabert": 7, "esm": 10}).parts == 0
    write_fake_task(tmp_path, *shard)
    assert verify_task(tmp_path, expectation(shard)) == []


def test_same_content_gives_identical_bytes(tmp_path, shard):
    write_fake_task(tmp_path / "a", *shard)
    write_fake_task(tmp_path / "b", *shard)
    a, b = read_done(tmp_path / "a"), read_done(tmp_path / "b")
    assert a["parts"] == b["parts"] and a["accounting_sha256"] == b["accounting_sha256"]


def _flip(path, position=-5):
    data = bytearray(path.read_bytes())
    data[position] ^= 0x01
    path.write_bytes(bytes(data))


def _resave_part(task_dir, change):
    """Replace part 0 by `change(its tensors)`, consistently re-sidecarred: only the tensor
    checks can catch it (DONE's sha256 list still differs, which is reported too)."""
    from safetensors.numpy import load, save
    from virnuc_hpc.core.fsio import sha256_bytes
    task = TaskDir(task_dir)
    tensors = load(task.part(0).read_bytes())
    change(tensors)
    data = save(tensors)
    task.part(0).write_bytes(data)
    done = read_done(task_dir)
    done["parts"][0].update(sha256=sha256_bytes(data), bytes=len(data))
    task.done.write_text(json.dumps(done))
    sidecar = json.loads(task.sidecar(0).read_text())
    sidecar["sha256"] = sha256_bytes(data)
    task.sidecar(0).write_text(json.dumps(sidecar))


def _nan_part(task_dir):
    """A NaN in the features where they are kept, else in the scores."""
    def change(tensors):
        tensors["esm" if "esm" in tensors else "scores"][0, 0] = np.nan
    _resave_part(task_dir, change)


FAULTS = {
    "bit flip": (lambda t: _flip(TaskDir(t).part(1)), "part 1: sha256"),
    "truncation": (lambda t: TaskDir(t).part(0).write_bytes(TaskDir(t).part(0).read_bytes()[:100]),
                   "part 0: sha256"),
    "deleted part": (lambda t: TaskDir(t).part(2).unlink(), "part 2: file missing"),
    "deleted sidecar": (lambda t: TaskDir(t).sidecar(1).unlink(), "part 1: sidecar"),
    "no DONE": (lambda t: TaskDir(t).done.unlink(), "DONE missing"),
    "accounting changed": (lambda t: TaskDir(t).accounting.write_text("x"), "accounting.tsv"),
    "NaN": (_nan_part, "NaN"),
}


@pytest.mark.parametrize("features", ["fp32", "fp16", "none"])
@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_verify_names_each_fault(tmp_path, shard, fault, features):
    write_fake_task(tmp_path, *shard, features=features)
    damage, message = FAULTS[fault]
    damage(tmp_path)
    problems = verify_task(tmp_path, expectation(shard))
    assert any(message in p for p in problems), problems


def test_verify_checks_manifest_order_widths_and_fingerprints(tmp_path, shard):
    write_fake_task(tmp_path, *shard)
    ordinals, ids, lengths, chunks = shard
    swapped = Expectation([ids[1], ids[0], *ids[2:]], None, None)
    assert "IDs or order" in verify_task(tmp_path, swapped)[0]
    assert "length" in verify_task(tmp_path, Expectation(ids, [1] * len(ids), chunks))[0]
    real = {"dnabert": 768, "esm": 2560}
    assert "widths" in verify_task(tmp_path, expectation(shard, widths=real))[0]
    assert "fingerprints" in verify_task(tmp_path, expectation(shard, fingerprints={"esm": "x"}))[0]


def test_verify_rejects_frames_of_the_wrong_sequence(tmp_path):
    shard = simple_shard()
    write_fake_task(tmp_path, *shard)
    task = TaskDir(tmp_path)
    sidecar = json.loads(task.sidecar(0).read_text())
    sidecar["ids"][0] = sidecar["ids"][0].replace("s0_", "s1_")
    sidecar["ids_digest"] = ids_digest(sidecar["ids"])
    task.sidecar(0).write_text(json.dumps(sidecar))
    problems = verify_task(tmp_path, expectation(shard))
    assert any("frame IDs" in p for p in problems), problems


def test_writer_rejects_bad_shapes_and_order(tmp_path):
    writer = PartWriter(tmp_path, WIDTHS, PRINTS, features="fp32")
    ok = dict(dnabert=np.zeros((1, 6)), esm=np.zeros((1, 10)), scores=np.zeros((1, 2)))
    with pytest.raises(ValueError, match="out of order"):
        writer.write_part(1, ["a_chunk_1F1"], **ok)
    with pytest.raises(ValueError, match="esm"):
        writer.write_part(0, ["a_chunk_1F1"], **{**ok, "esm": np.zeros((1, 9))})
    with pytest.raises(ValueError, match="scores"):
        PartWriter(tmp_path, WIDTHS, PRINTS, "none").write_part(
            0, ["a_chunk_1F1"], None, None, np.zeros((1, 3)))
    writer.write_part(0, ["a_chunk_1F1"], **ok)
    write_accounting(tmp_path, [{"id": "a", "length": 5, "chunks": 1, "kept_frames": 2}])
    with pytest.raises(ValueError, match="kept frames"):
        writer.write_done()
    assert not TaskDir(tmp_path).done.exists()


def test_rerun_removes_stale_done_and_leftover_parts(tmp_path, shard):
    write_fake_task(tmp_path, *shard, part_rows=2)
    many = len(read_done(tmp_path)["parts"])
    TaskDir(tmp_path).sidecar(3).unlink()  # resume stops at part 3
    writer = PartWriter(tmp_path, WIDTHS, PRINTS)
    assert writer.next_part == 3 and not TaskDir(tmp_path).done.exists()
    write_fake_task(tmp_path, *shard, part_rows=100)  # part 3 now holds all the remaining rows
    assert TaskDir(tmp_path).part_indices() == [0, 1, 2, 3] and many > 4
    assert verify_task(tmp_path, expectation(shard)) == []


def test_heartbeat_failed_marker_and_frame_key(tmp_path):
    write_heartbeat(tmp_path, 5, 10, 2.5, stage="esm")
    beat = read_heartbeat(tmp_path)
    got = (beat["rows_done"], beat["rows_total"], beat["rate"], beat["stage"])
    assert got == (5, 10, 2.5, "esm")
    mark_failed(tmp_path, "CUDA out of memory")
    assert read_failed(tmp_path)["reason"] == "CUDA out of memory"
    assert frame_key("a_chunk_1_chunk_12R3", "a_chunk_1") == (12, "R3")
    assert frame_key("a_chunk_12R3", "b") is None and frame_key("a_chunk_0F1", "a") is None


def _concurrent_writer(task_dir, salt, barrier):
    barrier.wait()
    write_fake_task(task_dir, *simple_shard(40), part_rows=3, salt=salt)


def _run_pair(task_dir, salts):
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_concurrent_writer, args=(task_dir, s, barrier)) for s in salts]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    return [p.exitcode for p in procs]


def _part_rows(task_dir):
    from safetensors.numpy import load_file
    task = TaskDir(task_dir)
    return [load_file(task.part(e["index"]))["scores"] for e in read_done(task_dir)["parts"]]


@pytest.mark.parametrize("round_", range(3))
def test_two_processes_same_index_deterministic_content(tmp_path, round_):
    assert _run_pair(tmp_path, (0, 0)) == [0, 0]
    assert verify_task(tmp_path, expectation(simple_shard(40))) == []
    write_fake_task(tmp_path / "clean", *simple_shard(40), part_rows=3)
    assert read_done(tmp_path)["parts"] == read_done(tmp_path / "clean")["parts"]


@pytest.mark.parametrize("round_", range(4))
def test_two_processes_different_content_never_pass_mixed(tmp_path, round_):
    """Writers with different content (a non-deterministic GPU): either the shard verifies
    and each part is one writer's computation of those rows, or verify rejects it."""
    codes = _run_pair(tmp_path, (1, 2))
    problems = verify_task(tmp_path, expectation(simple_shard(40)))
    if problems:
        return
    assert 0 in codes
    for salt in (1, 2):
        write_fake_task(tmp_path / f"clean{salt}", *simple_shard(40), part_rows=3, salt=salt)
    clean = {salt: _part_rows(tmp_path / f"clean{salt}") for salt in (1, 2)}
    for k, rows in enumerate(_part_rows(tmp_path)):
        assert any(k < len(clean[salt]) and np.array_equal(rows, clean[salt][k]) for salt in (1, 2))
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


def test_reduce_verdict_is_bound_to_the_done_it_judged(tmp_path):
    from virnuc_hpc.parts import mark_rejected, read_rejection

    task = TaskDir(tmp_path / "t")
    task.root.mkdir()
    assert mark_rejected(task, ["part 0: sha256 differs"]) is False   # no DONE: nothing judged
    task.done.write_text('{"rows": 1}\n')
    assert mark_rejected(task, ["part 0: sha256 differs"]) is True
    assert read_rejection(task)["problems"] == ["part 0: sha256 differs"]
    task.done.write_text('{"rows": 2}\n')                              # a rerun's new DONE
    assert read_rejection(task) is None
    mark_rejected(task, ["x"])
    PartWriter(task, WIDTHS, PRINTS)                                   # a rerun starts
    assert not task.rejected.exists() and not task.done.exists()


# --- feature storage: fp32, fp16, none ------------------------------------------------------

def _tensors(task_dir) -> list[dict]:
    from safetensors.numpy import load_file
    task = TaskDir(task_dir)
    return [load_file(task.part(e["index"])) for e in read_done(task_dir)["parts"]]


@pytest.mark.parametrize("features", ["fp32", "fp16", "none"])
def test_each_storage_keeps_its_tensors_and_the_same_scores(tmp_path, shard, features):
    write_fake_task(tmp_path / "fp32", *shard, features="fp32")
    write_fake_task(tmp_path / features, *shard, features=features)
    assert verify_task(tmp_path / features, expectation(shard, features=features)) == []
    done = read_done(tmp_path / features)
    assert done["features"] == features and done["widths"] == {**WIDTHS, "scores": 2}
    reference, stored = _tensors(tmp_path / "fp32"), _tensors(tmp_path / features)
    kept = {"fp32": {"dnabert", "esm", "scores"}, "fp16": {"dnabert", "esm", "scores"},
            "none": {"scores"}}[features]
    for ref, part in zip(reference, stored, strict=True):
        assert set(part) == kept and part["scores"].dtype == np.float32
        assert np.array_equal(part["scores"], ref["scores"])  # the results come from these
        for name in kept - {"scores"}:
            assert part[name].dtype == (np.float16 if features == "fp16" else np.float32)
            relative = np.abs(part[name] - ref[name]).max(1) / np.abs(ref[name]).max(1)
            assert relative.max() <= 1e-3, relative.max()


def test_fp16_rows_are_the_fp32_rows_rounded(tmp_path, shard):
    """fp16 storage is a cast at write time, within 1e-3 of fp32 per row (max |a-b| / max |a|)."""
    write_fake_task(tmp_path / "fp32", *shard, features="fp32")
    write_fake_task(tmp_path / "fp16", *shard, features="fp16")
    for ref, half in zip(_tensors(tmp_path / "fp32"), _tensors(tmp_path / "fp16")):
        for name in ("dnabert", "esm"):
            assert np.array_equal(half[name], ref[name].astype(np.float16))


def test_a_writer_never_resumes_parts_of_another_storage(tmp_path, shard):
    write_fake_task(tmp_path, *shard, features="fp16", stop_after_parts=2)
    assert resume_point(tmp_path, features="fp16").parts == 2
    assert resume_point(tmp_path, features="fp32").parts == 0
    assert PartWriter(tmp_path, WIDTHS, PRINTS, "none").next_part == 0
    write_fake_task(tmp_path, *shard, features="fp32")     # every part rewritten as fp32
    assert verify_task(tmp_path, expectation(shard, features="fp32")) == []
    assert {frozenset(t) for t in _tensors(tmp_path)} == {frozenset({"dnabert", "esm", "scores"})}


def test_verify_refuses_a_shard_stored_otherwise_than_planned(tmp_path, shard):
    write_fake_task(tmp_path, *shard, features="fp16")
    problems = verify_task(tmp_path, expectation(shard, features="none"))
    assert problems == ["features stored as fp16, the plan keeps none (written with other "
                        "options)"]


@pytest.mark.parametrize("features, change, message", [
    ("none", lambda t: t.update(esm=np.zeros((len(t["scores"]), 10), np.float32)),
     "features none keeps ['scores']"),
    ("fp32", lambda t: t.pop("dnabert"), "tensors ['esm', 'scores']"),
    ("fp16", lambda t: t.update(esm=t["esm"].astype(np.float32)), "expected float16"),
])
def test_a_part_holding_other_tensors_than_its_storage_is_refused(tmp_path, shard, features,
                                                                  change, message):
    write_fake_task(tmp_path, *shard, features=features)
    _resave_part(tmp_path, change)
    problems = verify_task(tmp_path, expectation(shard))
    assert any(message in p for p in problems), problems


def test_fp16_refuses_features_beyond_its_range_naming_the_fix(tmp_path):
    writer = PartWriter(tmp_path, WIDTHS, PRINTS, "fp16")
    big = np.full((1, 10), 1e6, np.float32)
    with pytest.raises(ConfigError, match="--features fp32"):
        writer.write_part(0, ["a_chunk_1F1"], np.zeros((1, 6)), big, np.zeros((1, 2)))
    assert TaskDir(tmp_path).part_indices() == []


def test_none_needs_no_features_and_ignores_given_ones(tmp_path):
    writer = PartWriter(tmp_path, WIDTHS, PRINTS, "none")
    scores = np.array([[0.25, 0.75]], np.float32)
    writer.write_part(0, ["a_chunk_1F1"], None, None, scores)
    writer.write_part(1, ["a_chunk_1F2"], np.zeros((1, 6)), np.zeros((1, 10)), scores)
    assert [set(t) for t in map(_load_part, (TaskDir(tmp_path).part(k) for k in (0, 1)))] == \
        [{"scores"}, {"scores"}]


def _load_part(path):
    from safetensors.numpy import load_file
    return load_file(path)


def test_parts_written_before_the_choice_read_as_fp32(tmp_path, shard):
    """A DONE and sidecars without `features` (an older version) hold fp32 features."""
    write_fake_task(tmp_path, *shard, features="fp32")
    task = TaskDir(tmp_path)
    for path in [task.done, *(task.sidecar(k) for k in task.part_indices())]:
        record = json.loads(path.read_text())
        del record["features"]
        path.write_text(json.dumps(record))
    assert verify_task(tmp_path, expectation(shard, features="fp32")) == []
    assert resume_point(tmp_path, features="fp32").parts == len(task.part_indices())


def test_unknown_storage_is_refused_listing_the_choices(tmp_path):
    with pytest.raises(ConfigError, match="fp32, fp16, none"):
        PartWriter(tmp_path, WIDTHS, PRINTS, "fp64")

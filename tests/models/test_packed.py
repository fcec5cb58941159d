"""Fixed-shape batches (models/packed.py): a frame's features and scores are the same bits
alone, among short frames, among long ones, first or last, whatever the thread count and the
budget, for DNABERT-S, ESM-2 (the fp32 reference and the fused bf16 path) and the classifier;
and the packed forward is still the published math (the one-at-a-time reference within 1e-5).

Frames come from reads of real genomes (tests/data/genomes). tests/invariance/ reruns this
file on MKL's other code path (tests/invariance/test_mkl_paths.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.invariance.genomes import sample_reads
from virnuc_hpc.models.encoders import DnabertEncoder, EsmEncoder
from virnuc_hpc.models.packed import BlockTable, pack, padding
from virnuc_hpc.core.shapes import CPU_SHAPES, GPU_SHAPES, WIDTH_STEP, Shapes
from virnuc_hpc.sequences import prepare
from virnuc_hpc.sequences.reader import Record

SHAPES = [CPU_SHAPES, Shapes(chunk_tokens=96, group_tokens=40)]


@pytest.fixture(scope="module")
def frames():
    """Kept frames of 40 reads of 20-1,400 bp of real genomes, in 500-bp chunks."""
    reads = sample_reads(np.random.default_rng(3), 40, low=20, high=1400)
    records = [Record(rid, seq, i, 1) for i, (rid, seq) in enumerate(reads)]
    found = [f for p in prepare(records, 500) for f in p.frames]
    assert len(found) > 60 and len({len(f.protein) for f in found}) > 20
    return found


@pytest.fixture(scope="module")
def models(tiny_cache):
    """The tiny profile at fp32 and at bf16 (an encoder casts its model in place)."""
    from virnuc_hpc.models import LoadedModels, resolve_profile

    loaded = {p: LoadedModels(resolve_profile("tiny", 500), precision=p) for p in ("fp32", "bf16")}
    yield loaded
    for held in loaded.values():
        held.release()


def encoder(models, kind: str, precision: str, shapes: Shapes, budget: int | None = None):
    if kind == "dnabert":
        tokenizer, model = models[precision].dnabert
        return DnabertEncoder(model, tokenizer, precision=precision, shapes=shapes,
                              tokens_per_batch=budget)
    model, alphabet = models[precision].esm
    return EsmEncoder(model, alphabet, precision=precision, shapes=shapes,
                      tokens_per_batch=budget)


def texts(frames, kind: str) -> list[str]:
    return [f.nucleotide if kind == "dnabert" else f.protein for f in frames]


def contexts(seqs: list[str]) -> dict[str, list[str]]:
    """The frame under test (seqs[0]) alone, first and last among short ones, among long ones."""
    me, rest = seqs[0], sorted(seqs[1:], key=len)
    short, long = rest[: len(rest) // 2], rest[len(rest) // 2:]
    return {"alone": [me], "first among short": [me, *short], "last among short": [*short, me],
            "first among long": [me, *long], "last among long": [*long, me],
            "among all": [*rest[:9], me, *rest[9:]]}


@pytest.mark.parametrize("shapes", SHAPES, ids=["cpu-shapes", "small-shapes"])
@pytest.mark.parametrize("kind,precision", [("dnabert", "fp32"), ("dnabert", "bf16"),
                                            ("esm", "fp32"), ("esm", "bf16")])
def test_a_frame_is_the_same_bits_alone_first_last_among_short_or_long(models, frames, kind,
                                                                       precision, shapes):
    enc = encoder(models, kind, precision, shapes)
    seqs = texts(frames, kind)
    for pick in (0, len(seqs) // 3, len(seqs) - 1):   # a short, a middling and a long frame
        order = [seqs[pick], *seqs[:pick], *seqs[pick + 1:]]
        rows = {}
        for name, batch in contexts(order).items():
            got = enc.embed(batch)
            rows[name] = got[batch.index(order[0])]
        first = rows["alone"]
        for name, row in rows.items():
            assert np.array_equal(row, first), f"frame {pick} {name}: other bits than alone"


@pytest.mark.parametrize("kind", ["dnabert", "esm"])
def test_rows_do_not_depend_on_the_budget_the_thread_count_or_the_order(models, frames, kind):
    """The budget decides what shares a batch (and an OOM retry halves it); threads how a CPU
    kernel splits its work: neither may show in the bits."""
    seqs = texts(frames, kind)
    reference = encoder(models, kind, "fp32", CPU_SHAPES).embed(seqs)
    before = torch.get_num_threads()
    try:
        for threads, budget in [(1, 1), (2, 300), (3, 5000), (2, None)]:
            torch.set_num_threads(threads)
            got = encoder(models, kind, "fp32", CPU_SHAPES, budget).embed(seqs[::-1])[::-1]
            assert np.array_equal(got, reference), f"{threads} threads, budget {budget}"
    finally:
        torch.set_num_threads(before)


def test_the_classifiers_scores_do_not_depend_on_how_many_rows_share_the_call(models):
    from virnuc_hpc.task.frames import FramePipeline
    from virnuc_hpc.task.run import TaskOptions

    pipeline = FramePipeline(models["fp32"], TaskOptions())
    width = sum(pipeline.widths.values())
    features = np.random.default_rng(5).normal(size=(700, width)).astype(np.float32)
    whole = pipeline.scores(features)
    assert whole.shape == (700, 2)
    for rows in ([3], [0, 699], list(range(255, 260)), list(range(600, 700))):
        assert np.array_equal(pipeline.scores(features[rows]), whole[rows])


@pytest.mark.parametrize("kind", ["dnabert", "esm"])
def test_the_packed_forward_is_the_one_at_a_time_reference_within_1e_5(models, frames, kind):
    """VirNucPro runs one sequence per forward: the fixed-shape path keeps its math."""
    seqs = texts(frames, kind)[:30]
    got = encoder(models, kind, "fp32", SHAPES[1]).embed(seqs)
    legacy = encoder(models, kind, "fp32", None, budget=1)   # one sequence per batch
    assert np.abs(got - legacy.embed(seqs)).max() < 1e-5


def test_token_dropout_rescale_of_a_masked_protein(models):
    """<mask> tokens zero their embedding and rescale their own sequence, not its neighbours."""
    model, alphabet = models["fp32"].esm
    seqs = ["MKT<mask>YIAKQR", "ACDEFGHIKLMNPQRSTVWY", "W<mask><mask>LLK"]
    fixed = EsmEncoder(model, alphabet, shapes=CPU_SHAPES)
    legacy = EsmEncoder(model, alphabet, tokens_per_batch=1)
    assert np.abs(fixed.embed(seqs) - legacy.embed(seqs)).max() < 1e-5
    assert np.array_equal(fixed.embed(seqs)[0], fixed.embed(seqs[:1])[0])


def test_a_row_has_the_same_bits_in_every_slot_of_a_fixed_shape_matmul():
    """What fixed shapes leave to the kernel: one algorithm for one shape, whatever the row's
    position in it (checked on this machine's BLAS, at the tiny and the real widths)."""
    rng = torch.Generator().manual_seed(0)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for k, n in [(48, 144), (64, 192), (768, 2304)]:
            weight, row = torch.randn(n, k, generator=rng), torch.randn(k, generator=rng)
            outs = []
            for slot in (0, 1, 7, 100, 255):
                x = torch.randn(256, k, generator=rng)
                x[slot] = row
                outs.append(torch.nn.functional.linear(x, weight)[slot])
            assert all(torch.equal(o, outs[0]) for o in outs), (k, n)
    finally:
        torch.set_num_threads(before)


def test_pack_puts_every_token_once_in_chunks_and_groups_of_fixed_shape():
    shapes = Shapes(chunk_tokens=16, group_tokens=24)
    lengths = [1, 5, 8, 9, 17, 3, 8]
    tokens = [np.arange(n, dtype=np.int64) + 10 * i for i, n in enumerate(lengths)]
    packed = pack(tokens, shapes, pad_id=-1)
    assert packed.padded == 64 and packed.padded % shapes.chunk_tokens == 0
    assert packed.tokens[:sum(lengths)].tolist() == np.concatenate(tokens).tolist()
    assert (packed.tokens[sum(lengths):] == -1).all()
    flat = packed.buffer(1, torch.zeros(1))
    assert flat.shape == (65, 1) and (flat[sum(lengths):] == 0).all()   # padding, zero row
    flat[:sum(lengths), 0] = packed.tokens[:sum(lengths)].float()
    seen = []
    for group in packed.groups:
        assert group.rows == shapes.group_rows(group.width)        # fixed for the width
        assert all(shapes.width(lengths[i]) == group.width for i in group.members)
        grid = group.gather(flat).squeeze(-1)
        for slot, index in enumerate(group.members):
            n = lengths[index]
            assert grid[slot, :n].tolist() == tokens[index].tolist()
            assert (grid[slot, n:] == 0).all()                     # padding is zeros
        back = torch.full_like(flat, -5.0)
        group.scatter(grid[:, None, :, None], back)             # [rows, 1 head, W, 1]
        assert torch.equal(back[group.source], flat[group.source])
        seen += group.members
    assert sorted(seen) == list(range(len(lengths)))


def test_widths_and_group_rows_depend_on_a_sequences_own_length_only():
    shapes = GPU_SHAPES
    assert [shapes.width(n) for n in (1, 8, 9, 52, 168)] == [8, 8, 16, 56, 168]
    assert all(shapes.width(n) % WIDTH_STEP == 0 and shapes.width(n) >= n for n in range(1, 999))
    assert shapes.group_rows(56) == 73 and shapes.group_rows(8192) == 1


def test_padding_counts_the_last_chunk_and_empty_group_slots():
    shapes = Shapes(chunk_tokens=10, group_tokens=16)
    gemm, attention = padding([8, 8, 3], shapes, [[0, 1, 2]])
    assert gemm == pytest.approx(1 - 19 / 20)           # 19 tokens in 2 chunks of 10
    assert attention == pytest.approx(1 - 19 / 32)      # three of width 8, two a call: 4 slots


def test_a_table_row_does_not_depend_on_how_long_a_table_was_asked_for():
    table = BlockTable(lambda positions: torch.stack([positions.float().cos(),
                                                      (positions.float() * 0.37).sin()], 1))
    long = table.rows(700, "cpu")
    assert torch.equal(table.rows(10, "cpu"), long[:10]) and long.shape == (700, 2)
    fresh = BlockTable(table.build)
    assert torch.equal(fresh.rows(300, "cpu")[:300], long[:300])

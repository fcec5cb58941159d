"""Chunking and frame selection against the spec's worked examples and the golden files."""

import random

import pytest

from tests.helpers import read_fasta
from virnuc_hpc.core.errors import ConfigError
from virnuc_hpc.sequences import chunk_spans, iter_records, prepare
from virnuc_hpc.sequences.prepare import (STANDARD_CODE, frame_nucleotides, revcomp,
                                          translate_frame)
from virnuc_hpc.sequences.reader import Record


@pytest.mark.parametrize("length,size,expected", [
    (300, 500, [(0, 300)]),
    (500, 500, [(0, 500)]),
    (1000, 500, [(0, 500), (500, 1000)]),
    (1200, 500, [(0, 500), (399, 899), (798, 1200)]),        # the short-last-chunk bug
    (1499, 500, [(0, 500), (499, 999), (999, 1499)]),        # the correct path
    (1001, 500, [(0, 500), (333, 833), (666, 1001)]),
    (501, 500, [(0, 500), (250, 501)]),
    (700, 300, [(0, 300), (233, 533), (466, 700)]),
    (0, 500, []),
])
def test_chunk_spans_match_spec_examples(length, size, expected):
    assert chunk_spans(length, size) == expected


def test_chunk_spans_long_sequences():
    spans = chunk_spans(10001, 500)
    assert len(spans) == 21 and spans[-1] == (9520, 10001)
    spans = chunk_spans(100001, 500)
    assert len(spans) == 201 and all(e - s == 500 for s, e in spans)


def _reference_frames(seq_id: str, seq: str):
    """VirNucPro's identify_seq, written the slow original way."""
    seq = seq.upper()
    strands = [seq, seq[::-1].translate(str.maketrans("ACGTacgt", "TGCAtgca"))]
    out = []
    for num in range(1, 7):
        source = strands[0] if num <= 3 else strands[1]
        protein = translate_frame(source, (num - 1) % 3)
        if "*" in protein or not protein:
            continue
        p = len(protein)
        nt = seq[num - 1:num + 3 * p] if num <= 3 else strands[1][num - 4:num - 3 + 3 * p]
        name = f"F{num}" if num <= 3 else f"R{num - 3}"
        out.append((seq_id + name, nt, protein))
    return out


def test_vectorised_translation_equals_original_on_random_iupac_input():
    rng = random.Random(7)
    alphabet = "ACGT" * 20 + "acgtNRYKMSWBDHV"
    records, expected = [], []
    for i in range(400):
        length = rng.choice([0, 1, 2, 3, 4, 5, rng.randint(6, 1600)])
        seq = "".join(rng.choice(alphabet) for _ in range(length))
        records.append(Record(f"s{i}", seq, i, 1))
        for k, (s, e) in enumerate(chunk_spans(length, 300)):
            expected += _reference_frames(f"s{i}_chunk_{k + 1}", seq[s:e])
    got = [(f.id, f.nucleotide, f.protein) for p in prepare(records, 300, batch_chunks=64)
           for f in p.frames]
    assert got == expected and len(got) > 50


def test_standard_code_and_helpers():
    assert len(STANDARD_CODE) == 64 and STANDARD_CODE["ATG"] == "M" and STANDARD_CODE["TGA"] == "*"
    assert revcomp("ACGTNacgt") == "acgtNACGT"
    assert translate_frame("ATGNNNTTT", 0) == "MF"   # codons with N are dropped, no X
    assert frame_nucleotides("ATGAAATTTC", None, 1, 3) == "ATGAAATTTC"  # 3p + 1 bases


@pytest.mark.parametrize("size", [300, 500])
def test_golden_generated(golden, size):
    prepared = list(prepare(iter_records(golden / "generated/input.fa"), size))
    folder = golden / f"generated/chunk{size}"
    assert [(c.id, c.seq) for p in prepared for c in p.chunks] == read_fasta(folder / "chunked.fa")
    frames = [f for p in prepared for f in p.frames]
    assert [(f.id, f.nucleotide) for f in frames] == read_fasta(folder / "identified_nucleotide.fa")
    assert [(f.id, f.protein) for f in frames] == read_fasta(folder / "identified_protein.faa")
    assert len(prepared) == 300
    assert sum(p.skip_reason is None for p in prepared) + sum(
        p.skip_reason is not None for p in prepared) == 300


@pytest.mark.parametrize("base", ["test_with_orfs", "test_fixed_500bp"])
def test_golden_virnucpro_broad(golden, base):
    folder = golden / "virnucpro-broad"
    prepared = list(prepare(iter_records(folder / f"{base}.fa"), 500))
    frames = [f for p in prepared for f in p.frames]
    assert [(c.id, c.seq) for p in prepared for c in p.chunks] == read_fasta(
        folder / f"{base}_chunked500.fa")
    assert [(f.id, f.nucleotide) for f in frames] == read_fasta(
        folder / f"{base}_identified_nucleotide.fa")
    assert [(f.id, f.protein) for f in frames] == read_fasta(
        folder / f"{base}_identified_protein.faa")


def test_sequences_without_kept_frames_are_accounted_not_dropped(golden):
    prepared = list(prepare(iter_records(golden / "virnucpro-broad/test_sequences_small.fa"), 500))
    assert len(prepared) == 11
    assert all(not p.frames and p.skip_reason == "all_frames_have_stop" for p in prepared)


@pytest.mark.parametrize("seq,reason", [
    ("", "empty"), ("AC", "too_short"), ("NNNNNNNNN", "no_unambiguous_codon"),
    ("TAATAATAATAA", None), ("TTAATTAATTAACTC", "all_frames_have_stop"),
])
def test_skip_reasons(seq, reason):
    (prepared,) = prepare([Record("x", seq, 0, 1)], 300)
    assert prepared.skip_reason == reason
    assert prepared.accounting()["skip_reason"] == (reason or "")


def test_invalid_chunk_size_lists_choices():
    with pytest.raises(ConfigError, match="300, 500"):
        list(prepare([], 400))

"""The block reader reads every input exactly as the reference reader does: the same records
(IDs, sequences, order) or the same one-line error, over the whole bad-input corpus, the golden
inputs and inputs cut into many buffers."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from tests.helpers import GOLDEN, REPO
from tests.reliability.bad_inputs import CORPUS, fasta
from virnuc_hpc.core.errors import UserError
from virnuc_hpc.sequences import blocks
from virnuc_hpc.sequences.blocks import iter_blocks
from virnuc_hpc.sequences.reader import iter_records


def alike(path) -> None:
    """Both readers give the same records, or the same error (records before an error may
    come in a block that the error discards: the plan stops either way)."""
    ours, theirs = by_blocks(path), reference(path)
    assert ours[1] == theirs[1]
    if theirs[1] is None:
        assert ours[0] == theirs[0]


def reference(path) -> tuple[list, str | None]:
    records = []
    try:
        for record in iter_records(path, check_duplicates=False):
            records.append((record.id, record.seq.encode()))
    except UserError as exc:
        return records, str(exc)
    return records, None


def by_blocks(path) -> tuple[list, str | None]:
    records = []
    try:
        for block in iter_blocks(path):
            assert block.first == len(records)
            records.extend(zip((i.decode() for i in block.ids), block.seqs))
    except UserError as exc:
        return records, str(exc)
    return records, None


SMALL_KINDS = [k for k in CORPUS if k.huge is None and "fifo" not in k.name.lower()
               and "process substitution" not in k.name.lower()]


@pytest.mark.parametrize("kind", SMALL_KINDS, ids=[k.name for k in SMALL_KINDS])
def test_every_corpus_input_reads_as_the_reference_reads_it(kind, tmp_path):
    made = kind.make(tmp_path)
    if not isinstance(made, Path):
        pytest.skip("a bash word, not a file")
    alike(made)


@pytest.mark.parametrize("name", ["generated/input.fa", "virnucpro-broad/test_sequences_small.fa"])
def test_golden_inputs_read_alike(name):
    path = GOLDEN / name
    if not path.exists():
        pytest.skip(f"{path} not present")
    assert by_blocks(path) == reference(path)


def test_many_buffers_of_fastq_and_multiline_fasta_read_alike(tmp_path, monkeypatch):
    monkeypatch.setattr(blocks, "BUFFER", 4096)  # records straddle many buffers
    monkeypatch.setattr(blocks, "FASTQ_BLOCK", 100)
    reads = [(f"r{i} lane:{i % 7}", "ACGTN"[i % 5] * (i % 150 + 1)) for i in range(3000)]
    fq = tmp_path / "r.fq.gz"
    with gzip.open(fq, "wt") as out:
        out.writelines(f"@{rid}\n{seq}\n+\n{'I' * len(seq)}\n" for rid, seq in reads)
    fa = tmp_path / "r.fa"
    fa.write_bytes(fasta([(rid, seq * 3) for rid, seq in reads[:500]], width=60))
    for path in (fq, fa, REPO / "examples" / "reads.fa"):
        alike(path)
    monkeypatch.setattr(blocks, "_reference_blocks", lambda *a: pytest.fail("reference used"))
    for path in (fq, fa):
        assert len(list(iter_blocks(path))) > 10     # the block path took all of it


@pytest.mark.parametrize("kind", ["fasta", "fastq"])
def test_the_block_path_hands_over_mid_file_at_the_first_record_it_cannot_vouch_for(
        tmp_path, monkeypatch, kind):
    """Spaces inside a sequence in a later block (the reference drops them): the first blocks
    come from the block path, the rest from the reference reader, and together they are the
    reference's records."""
    monkeypatch.setattr(blocks, "BUFFER", 4096)
    monkeypatch.setattr(blocks, "FASTQ_BLOCK", 100)
    records = [(f"r{i}", "ACGT" * 20 if i != 400 else "ACGT " * 20) for i in range(600)]
    path = tmp_path / f"mixed.{kind}"
    path.write_bytes(fasta(records, width=80) if kind == "fasta" else "".join(
        f"@{rid}\n{seq}\n+\n{'I' * len(seq)}\n" for rid, seq in records).encode())
    taken = []
    real = blocks._reference_blocks
    monkeypatch.setattr(blocks, "_reference_blocks",
                        lambda p, skip: (taken.append(skip), real(p, skip))[1])
    assert by_blocks(path) == reference(path)
    assert taken and 0 < taken[0] <= 400

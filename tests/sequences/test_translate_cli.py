"""`virnuc-hpc translate` end to end: golden files, accounting totals, atomic outputs."""

import csv
import json

import pytest

from tests.helpers import read_fasta, run_cli


@pytest.mark.parametrize("size", [300, 500])
def test_translate_reproduces_golden_and_accounts_for_every_sequence(golden, tmp_path, size):
    out = {k: tmp_path / k for k in ("n.fa", "p.faa", "c.fa", "acc.tsv")}
    result = run_cli("translate", golden / "generated/input.fa", "--chunk-size", size,
                     "--nucleotide-out", out["n.fa"], "--protein-out", out["p.faa"],
                     "--chunks-out", out["c.fa"], "--accounting-out", out["acc.tsv"])
    assert result.returncode == 0, result.stderr
    folder = golden / f"generated/chunk{size}"
    assert read_fasta(out["n.fa"]) == read_fasta(folder / "identified_nucleotide.fa")
    assert read_fasta(out["p.faa"]) == read_fasta(folder / "identified_protein.faa")
    assert read_fasta(out["c.fa"]) == read_fasta(folder / "chunked.fa")
    assert out["n.fa"].read_bytes() == (folder / "identified_nucleotide.fa").read_bytes()
    rows = list(csv.DictReader(out["acc.tsv"].open(), delimiter="\t"))
    input_ids = [h.split()[0] for h, _ in read_fasta(golden / "generated/input.fa")]
    assert [r["id"] for r in rows] == input_ids
    kept = [r for r in rows if int(r["kept_frames"]) > 0]
    skipped = [r for r in rows if r["skip_reason"]]
    assert len(kept) + len(skipped) == len(rows) == 300
    assert not any(r["skip_reason"] for r in kept) and all(r["skip_reason"] for r in skipped)
    assert sum(int(r["kept_frames"]) for r in rows) == len(read_fasta(out["n.fa"]))
    totals = json.loads(result.stderr.strip().splitlines()[-1])
    assert totals["input_sequences"] == 300
    assert totals["with_kept_frames"] + totals["skipped"] == 300
    assert totals["with_kept_frames"] == len(kept)


def test_translate_sequences_with_no_kept_frame_are_listed(golden, tmp_path):
    acc = tmp_path / "acc.tsv"
    result = run_cli("translate", golden / "virnucpro-broad/test_sequences_small.fa",
                     "--nucleotide-out", tmp_path / "n.fa", "--protein-out", tmp_path / "p.faa",
                     "--accounting-out", acc)
    assert result.returncode == 0
    assert (tmp_path / "n.fa").read_bytes() == b""      # as the original: no frame kept
    rows = list(csv.DictReader(acc.open(), delimiter="\t"))
    assert len(rows) == 11 and {r["skip_reason"] for r in rows} == {"all_frames_have_stop"}


def test_invalid_chunk_size_is_refused(tmp_path, golden):
    result = run_cli("translate", golden / "generated/input.fa", "--chunk-size", 400,
                     "--nucleotide-out", tmp_path / "n.fa", "--protein-out", tmp_path / "p.faa")
    assert result.returncode == 2 and "300" in result.stderr and "500" in result.stderr

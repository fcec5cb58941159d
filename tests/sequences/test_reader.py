"""Input reading: formats, compression, and one-line errors for bad input."""

import gzip
import subprocess

import pytest

from virnuc_hpc.core.errors import InputError
from virnuc_hpc.sequences import iter_records

FASTA = ">a first read\nACGTAC\nGTTT\r\n>b\nacgtnn\n>empty\n>c\tx\nAC GT\n"


def _ids_and_seqs(path):
    return [(r.id, r.seq) for r in iter_records(path)]


EXPECTED = [("a", "ACGTACGTTT"), ("b", "acgtnn"), ("empty", ""), ("c", "ACGT")]


def test_fasta_multiline_crlf_lowercase_and_empty_record(tmp_path):
    path = tmp_path / "in.fa"
    path.write_bytes(FASTA.replace("\n", "\r\n").encode())
    assert _ids_and_seqs(path) == EXPECTED


def test_gzip_and_bgzip_read_the_same(tmp_path):
    plain = tmp_path / "in.fa"
    plain.write_text(FASTA)
    gz = tmp_path / "in.fa.gz"
    gz.write_bytes(gzip.compress(FASTA.encode()))
    assert _ids_and_seqs(gz) == EXPECTED
    bgz = tmp_path / "in.fa.bgz"   # bgzip: concatenated gzip members
    half = FASTA.index(">b")
    bgz.write_bytes(gzip.compress(FASTA[:half].encode()) + gzip.compress(FASTA[half:].encode()))
    assert _ids_and_seqs(bgz) == EXPECTED
    if subprocess.run(["which", "bgzip"], capture_output=True).returncode == 0:
        real = tmp_path / "real.fa.gz"
        subprocess.run(["bgzip", "-c", str(plain)], stdout=real.open("wb"), check=True)
        assert _ids_and_seqs(real) == EXPECTED


def test_fastq_including_multiline(tmp_path):
    path = tmp_path / "in.fq"
    path.write_text("@r1 desc\nACGT\n+\nIIII\n@r2\nAC\nGT\n+r2\nII\nII\n\n@r3\n\n+\n\n")
    assert _ids_and_seqs(path) == [("r1", "ACGT"), ("r2", "ACGT"), ("r3", "")]
    ordinals = [r.ordinal for r in iter_records(path)]
    assert ordinals == [0, 1, 2]


def test_reading_is_streaming(tmp_path):
    path = tmp_path / "in.fa"
    path.write_text(">x\nACGT\n>y\nAC!!\n")   # the second record is bad
    records = iter_records(path)
    assert next(records).id == "x"      # the first record arrives before the bad one is read
    with pytest.raises(InputError):
        next(records)


# Every kind of bad input through the commands: tests/reliability/test_bad_inputs.py.


def test_corrupt_gzip_raises_input_error(tmp_path):
    data = bytearray(gzip.compress((">a\n" + "ACGT" * 100 + "\n").encode()))
    data[20] ^= 0xFF
    path = tmp_path / "bad.fa.gz"
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match="truncated or corrupt"):
        list(iter_records(path))


def test_protein_alphabet_reads_proteins_and_still_checks(tmp_path):
    path = tmp_path / "p.faa"
    path.write_text(">p1\nMKVLAAGIVGLLLAQPEF*\n>p2\nacdefghik\n")
    assert [r.seq for r in iter_records(path, alphabet="protein")] == [
        "MKVLAAGIVGLLLAQPEF*", "acdefghik"]
    with pytest.raises(InputError, match="protein"):
        list(iter_records(path))                       # DNA expected by default
    path.write_text(">p1\nMKV1\n>p1\nMK\n")
    with pytest.raises(InputError, match="amino-acid letters"):
        list(iter_records(path, alphabet="protein"))
    path.write_text(">p1\nMKV\n>p1\nMK\n")
    with pytest.raises(InputError, match="duplicate ID"):
        list(iter_records(path, alphabet="protein"))


def test_ids_and_line_endings_as_biopython_reads_them(tmp_path):
    """VirNucPro parses with Bio.SeqIO: the same IDs and sequences, whatever the endings."""
    from Bio import SeqIO

    text = "> lead desc\nGCT\nGC\n>tab\tdesc\nAC GT\n>séq_α x\nAC\n>empty\n"
    for newline in ("\n", "\r\n", "\r"):
        path = tmp_path / "in.fa"
        path.write_bytes(text.replace("\n", newline).encode())
        with open(path, encoding="utf-8") as handle:
            expected = [(r.id, str(r.seq)) for r in SeqIO.parse(handle, "fasta")]
        assert _ids_and_seqs(path) == expected
        assert [rid for rid, _ in expected] == ["lead", "tab", "séq_α", "empty"]

"""Input reading: formats, compression, and one-line errors for bad input."""

import gzip
import subprocess

import pytest

from tests.helpers import run_cli
from virnuc_hpc.errors import InputError
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


BAD_INPUTS = {
    "empty file": (b"", "the file is empty", "sequences"),
    "whitespace only": (b"\n\n  \n", "the file is empty", None),
    "not fasta": (b"hello world\nthis is text\n", "line 1: not FASTA or FASTQ",
                  "FASTA or FASTQ file"),
    "binary": (bytes(range(256)) * 4, "binary data", "FASTA/FASTQ"),
    "binary in record": (b">a\nACGT\x00\x01\x02\n", "record 'a' (line 1): binary data", None),
    "duplicate ids": (b">a\nACGT\n>b\nAC\n>a x\nGG\n", "record 'a' (line 5): duplicate ID, first "
                      "seen at line 1", "unique"),
    "protein": (b">p1\nMKVLAAGIVGLLLAQPEF\n", "record 'p1' (line 1): this looks like a protein",
                "nucleotide"),
    "bad characters": (b">a\nACGT123\n", "invalid sequence characters '123'", "IUPAC"),
    "empty id": (b">\nACGT\n", "line 1: a record has an empty ID", None),
    "fastq without plus": (b"@r1\nACGT\n", "no '+' line", "truncated"),
    "fastq short quality": (b"@r1\nACGT\n+\nII\n", "quality is shorter", "truncated"),
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_is_one_line_error_with_exit_code_2(tmp_path, name):
    data, message, fix_word = BAD_INPUTS[name]
    path = tmp_path / "bad.fa"
    path.write_bytes(data)
    result = run_cli("translate", path, "--nucleotide-out", tmp_path / "n.fa",
                     "--protein-out", tmp_path / "p.faa")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert str(path) in lines[0] and message in lines[0] and "fix:" in lines[0]
    if fix_word:
        assert fix_word in lines[0].split("fix:")[1]
    assert not (tmp_path / "n.fa").exists()   # nothing half-written is published


def test_truncated_gzip(tmp_path):
    data = gzip.compress((">a\n" + "ACGT" * 5000 + "\n").encode())
    path = tmp_path / "cut.fa.gz"
    path.write_bytes(data[: len(data) // 2])
    result = run_cli("translate", path, "--nucleotide-out", tmp_path / "n.fa",
                     "--protein-out", tmp_path / "p.faa")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "gzip data is truncated or corrupt" in result.stderr and "gzip -t" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_corrupt_gzip_raises_input_error(tmp_path):
    data = bytearray(gzip.compress((">a\n" + "ACGT" * 100 + "\n").encode()))
    data[20] ^= 0xFF
    path = tmp_path / "bad.fa.gz"
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match="truncated or corrupt"):
        list(iter_records(path))


def test_missing_file(tmp_path):
    result = run_cli("translate", tmp_path / "nope.fa", "--nucleotide-out", tmp_path / "n.fa",
                     "--protein-out", tmp_path / "p.faa")
    assert result.returncode == 2 and "no such file" in result.stderr


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

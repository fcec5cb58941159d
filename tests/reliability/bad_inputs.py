"""The bad-input corpus: one generator per kind of bad input, with the behaviour it gets.

Each `Kind` writes its input into a folder and says what `translate`, `plan` and `predict` all
do with it: exit 2 with one line naming the file (`error`: a part of the problem, `fix`: a part
of the fix), or process it with every sequence accounted for (`rows`: (ID, skip reason) per
input sequence in input order, "" for a sequence with kept frames). `same_as` names a clean
input whose translate outputs must be byte-identical. docs/reliability.md's table is rendered
from this list (`python -m tests.reliability.bad_inputs` rewrites it; a test checks it).
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from virnuc_hpc.core.errors import InputError
from virnuc_hpc.sequences import iter_records
from virnuc_hpc.sequences.source import _zstd

DOC = Path(__file__).resolve().parents[2] / "docs" / "reliability.md"
TABLE_START, TABLE_END = "<!-- corpus table: start -->", "<!-- corpus table: end -->"

# The clean input: one sequence with kept frames, one crossing a chunk boundary, and one of
# each skip reason (spec: stops in every frame, under 3 bases, no bases, only ambiguous codons).
CLEAN_RECORDS = [("kept", "GCT" * 100), ("two_chunks", "GCTGCA" * 120),
                 ("stops", "TAGCTAGCTAGCTAG"), ("short", "AC"), ("empty", ""),
                 ("ambiguous", "N" * 12)]
CLEAN_ROWS = [("kept", ""), ("two_chunks", ""), ("stops", "all_frames_have_stop"),
              ("short", "too_short"), ("empty", "empty"), ("ambiguous", "no_unambiguous_codon")]
HUGE_BASES, HUGE_READS, SMALL_READS = 100_000_000, 1_000_000, 200


def fasta(records, width: int = 60, newline: str = "\n") -> bytes:
    out = []
    for rid, seq in records:
        out.append(f">{rid}")
        out.extend(seq[i:i + width] for i in range(0, len(seq), width))
    return (newline.join(out) + newline).encode()


CLEAN = fasta(CLEAN_RECORDS)


def _write(name: str, data: bytes) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        path = folder / name
        path.write_bytes(data)
        return path
    return make


def _clean(folder: Path) -> Path:
    return _write("clean.fa", CLEAN)(folder)


def _truncated(compress: Callable[[bytes], bytes], name: str) -> Callable[[Path], Path]:
    data = compress(fasta([("a", "ACGT" * 50_000)]))
    return _write(name, data[: len(data) // 2])


def _zero_filled(folder: Path) -> Path:
    path = folder / "zeros.fa"
    with open(path, "wb") as out:
        out.truncate(1 << 22)  # a file a crashed copy preallocated and never wrote
    return path


def _fifo(folder: Path) -> Path:
    path = folder / "reads.fifo"
    os.mkfifo(path)
    return path


def _process_substitution(folder: Path) -> str:
    _clean(folder)
    return f"<(cat {folder / 'clean.fa'})"


def _directory(folder: Path) -> Path:
    (folder / "reads.fa").mkdir()
    return folder / "reads.fa"


def _dangling(folder: Path) -> Path:
    (folder / "reads.fa").symlink_to("gone.fa")
    return folder / "reads.fa"


def _loop(folder: Path) -> Path:
    (folder / "a.fa").symlink_to(folder / "b.fa")
    (folder / "b.fa").symlink_to(folder / "a.fa")
    return folder / "a.fa"


def _late_carriage_return(folder: Path) -> Path:
    """A CR-only part appended after the first MiB of a LF file."""
    head = fasta([(f"r{i}", "GCT" * 100) for i in range(3_500)])
    return _write("mixed.fa", head + b">late\rGCTGCT\r")(folder)


def random_bases(n: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    return np.frombuffer(b"ACGT", np.uint8)[rng.integers(0, 4, n, dtype=np.uint8)].tobytes()


def huge_sequence(folder: Path, bases: int = HUGE_BASES) -> Path:
    """One sequence of `bases` random bases, 60 per line, written in blocks."""
    path, block = folder / "genome.fa", 6_000_000
    with open(path, "wb") as out:
        out.write(b">genome one long sequence\n")
        for start in range(0, bases, block):
            seq = random_bases(min(block, bases - start), start)
            out.write(b"".join(seq[i:i + 60] + b"\n" for i in range(0, len(seq), 60)))
    return path


def many_reads(folder: Path, reads: int = HUGE_READS) -> Path:
    """`reads` FASTQ reads of 10 random bases."""
    path, block = folder / "reads.fq", 100_000
    with open(path, "wb") as out:
        for start in range(0, reads, block):
            count = min(block, reads - start)
            seq = random_bases(10 * count, start)
            records = (b"@read%d\n%s\n+\nIIIIIIIIII\n" % (start + i, seq[10 * i:10 * i + 10])
                       for i in range(count))
            out.write(b"".join(records))
    return path


@dataclass(frozen=True)
class Kind:
    name: str
    make: Callable[[Path], Path | str]  # a path, or a bash word (process substitution)
    behaviour: str  # the doc's words (for a refused kind: why, after its message)
    error: str | None = None  # part of the one-line error (exit 2)
    fix: str | None = None  # part of its fix
    rows: tuple[tuple[str, str], ...] | None = None  # processed: (ID, skip reason) in order
    same_as: Callable[[Path], Path] | None = None  # translate outputs byte-identical to this
    chunks_as: Callable[[bytes], bytes] = bytes  # its chunk file from same_as's chunk file
    huge: Callable[[Path, int], Path] | None = None  # a huge kind's generator, given a size
    sizes: tuple[int, int, int] = (0, 0, 0)  # the sizes plan, translate and predict run on
    ids: Callable[[int], list[str]] | None = None  # a huge kind's IDs, given its size

    @property
    def processed(self) -> bool:
        return self.error is None

    @property
    def shell(self) -> bool:
        """Its input is a bash word (`<(...)`): commands run through bash."""
        return self.make is _process_substitution

    @property
    def why(self) -> str:
        return self.behaviour if not self.processed else ""


def refused(name, make, error, fix, why=""):
    return Kind(name, make, why, error=error, fix=fix)


def processed(name, make, behaviour, rows=CLEAN_ROWS, same_as=None, chunks_as=bytes):
    return Kind(name, make, behaviour, rows=tuple(rows), same_as=same_as, chunks_as=chunks_as)


LF_SAME = "processed; outputs byte-identical to the same file with LF line endings"
CORPUS: list[Kind] = [
    refused("empty file", _write("empty.fa", b""), "the file is empty", "give a FASTA or FASTQ"),
    refused("blank lines only", _write("blank.fa", b"\n  \n\t\n\n"), "the file is empty",
            "give a FASTA or FASTQ"),
    refused("binary file", _write("random.bin", bytes(range(256)) * 64),
            "line 1: binary data", "plain or compressed with gzip"),
    refused("file of NUL bytes", _zero_filled, "line 1: binary data", "re-copy",
            "Refused from the first block, never read as one 4 MiB line"),
    refused("NUL bytes in a sequence", _write("nul.fa", b">a\nACGT\n>b\nACG\x00\x00\x00TT\n"),
            "record 'b' (line 3): binary data", "re-copy"),
    refused("NUL byte in a header", _write("nulhead.fa", b">a\x00b\nACGT\n"),
            "line 1: a control character (byte 0x00) in the header", "re-copy"),
    refused("text that is not FASTA", _write("notes.txt", b"hello world\nthis is text\n"),
            "line 1: not FASTA or FASTQ", "give a FASTA or FASTQ file"),
    refused("sequence without a header line", _write("raw.fa", b"ACGTACGT\nACGT\n"),
            "line 1: a sequence without a header line", "put a header line"),
    refused("GenBank flat file", _write("x.gb", b"LOCUS       X 12 bp DNA\nORIGIN\n"),
            "line 1: this is a GenBank flat file", "convert it to FASTA"),
    refused("SAM file", _write("x.sam", b"@HD\tVN:1.6\n@SQ\tSN:c\tLN:9\nr\t0\tc\t1\t60\t4M\t*"
                                         b"\t0\t0\tACGT\tIIII\n"),
            "line 1: this is a SAM file", "samtools fastq"),
    refused("protein FASTA", _write("p.faa", b">p1\nMKVLAAGIVGLLLAQPEF\n"),
            "record 'p1' (line 1): this looks like a protein sequence", "nucleotide sequences"),
    refused("numbered sequence lines (pasted from GenBank)",
            _write("num.fa", b">a\n        1 acgtacgtac gtacgtacgt\n"),
            "record 'a' (line 1): invalid sequence characters '1'", "IUPAC nucleotide letters"),
    refused("FASTQ quality longer than its sequence",
            _write("long.fq", b"@r1\nACGT\n+\nIIIII\n@r2\nACGT\n+\nIIII\n"),
            "record 'r1' (line 1): FASTQ quality has 5 characters", "equal length"),
    refused("FASTQ quality cut short (truncated file)",
            _write("short.fq", b"@r1\nACGT\n+\nIIII\n@r2\nACGTAC\n+\nII\n"),
            "record 'r2' (line 5): FASTQ quality is shorter", "truncated"),
    refused("FASTQ record without '+' line", _write("noplus.fq", b"@r1\nACGT\n"),
            "record 'r1' (line 1): FASTQ record has no '+' line", "re-copy"),
    refused("duplicate IDs", _write("dup.fa", b">a\nACGT\n>b\nACGT\n>a\nGGGG\n"),
            "record 'a' (line 5): duplicate ID, first seen at line 1", "unique"),
    refused("IDs that differ only after the first space",
            _write("dupdesc.fa", b">a sample 1\nACGT\n>a sample 2\nGGGG\n"),
            "record 'a' (line 3): duplicate ID", "up to its first space",
            "The ID is the header up to the first whitespace, as VirNucPro (Biopython) takes it"),
    refused("empty ID", _write("noid.fa", b">\nACGT\n"), "line 1: a record has an empty ID",
            "give every record an ID"),
    refused("non-UTF-8 header", _write("latin1.fa", b">s\xe9q1\nACGT\n"),
            "line 1: the ID is not UTF-8 text (byte 0xe9)", "iconv",
            "VirNucPro (Biopython) fails on it with a UnicodeDecodeError"),
    refused("UTF-16 text", _write("utf16.fa", ">a\nACGT\n".encode("utf-16")),
            "line 1: UTF-16 text", "iconv -f UTF-16"),
    refused("truncated gzip", _truncated(gzip.compress, "cut.fa.gz"),
            "the gzip data is truncated or corrupt", "gzip -t"),
    refused("truncated zstd", _truncated(lambda d: _zstd().compress(d), "cut.fa.zst"),
            "the zstd data is truncated or corrupt", "zstd -t"),
    refused("a directory", _directory, "is a directory", "give a FASTA or FASTQ file"),
    refused("missing file", lambda folder: folder / "nope.fa", "no such file", "check the path"),
    refused("dangling symbolic link", _dangling, "is a symbolic link to a missing file",
            "point the link at an existing file"),
    refused("symbolic link loop", _loop, "is a symbolic link loop", "point the link at the real"),
    refused("named pipe", _fifo, "is a named pipe or process substitution, not a regular file",
            "save it to a regular file first",
            "plan parses and hashes the input, a resume hashes it again: a stream is never read "
            "(not even opened)"),
    refused("process substitution `<(cat reads.fa)`", _process_substitution,
            "is a named pipe or process substitution, not a regular file",
            "save it to a regular file first", "bash hands the command a pipe, `/dev/fd/63`"),
    refused("a carriage return after the first MiB (mixed line endings)", _late_carriage_return,
            "line 21001: a carriage return inside a line", "dos2unix",
            "Endings are detected in the first MiB; a CR after it is refused, never misread"),
    processed("header only", _write("header.fa", b">only\n"),
              "processed; the record is listed as skipped `empty`", [("only", "empty")]),
    processed("one record of each skip reason", _clean,
              "processed; each record predicted or listed with its skip reason "
              "(`all_frames_have_stop`, `too_short`, `empty`, `no_unambiguous_codon`)"),
    processed("CRLF line endings", _write("crlf.fa", fasta(CLEAN_RECORDS, newline="\r\n")),
              LF_SAME, same_as=_clean),
    processed("CR-only line endings (classic Mac)",
              _write("cr.fa", fasta(CLEAN_RECORDS, newline="\r")),
              LF_SAME + " (read with universal newlines, as Biopython does)", same_as=_clean),
    processed("UTF-8 byte order mark", _write("bom.fa", b"\xef\xbb\xbf" + CLEAN),
              "processed; the mark is dropped (VirNucPro's Biopython refuses the file)",
              same_as=_clean),
    processed("tabs in headers", _write("tabs.fa", b">t1\tsample A\tlane 2\n" + b"GCT" * 30),
              "processed; the ID ends at the tab, as in Biopython", [("t1", "")]),
    processed("space right after '>'", _write("space.fa", b"> s1 description\n" + b"GCT" * 30),
              "processed; the ID is the first word (`s1`), as in Biopython", [("s1", "")]),
    processed("non-ASCII UTF-8 IDs", _write("utf8.fa", ">séq_α1\nGCTGCTGCT\n".encode()),
              "processed; the ID is kept as written", [("séq_α1", "")]),
    processed("lowercase (soft-masked) sequence", _write("lower.fa", CLEAN.lower()),
              "processed; translated as uppercase, as VirNucPro (nucleotide and protein files "
              "identical to the uppercase input's, the chunk file keeps the case)",
              same_as=_clean, chunks_as=bytes.lower),
    processed("IUPAC ambiguity codes",
              _write("iupac.fa", fasta([("mixed", "GCT" * 30 + "RYKMSWBDHV" + "GCT" * 30),
                                        ("codes_only", "RYKMSWBDHV" * 3)])),
              "processed as VirNucPro: a codon with a non-ACGT letter is dropped; a sequence "
              "with no ACGT codon is skipped `no_unambiguous_codon`",
              [("mixed", ""), ("codes_only", "no_unambiguous_codon")]),
    processed("N runs", _write("nrun.fa", fasta([("gap", "GCT" * 50 + "N" * 1000 + "GCT" * 50),
                                                 ("all_n", "N" * 600)])),
              "processed as VirNucPro: codons with N are dropped (no X), an all-N sequence is "
              "skipped `no_unambiguous_codon`", [("gap", ""), ("all_n", "no_unambiguous_codon")]),
    processed("RNA (U instead of T)", _write("rna.fa", fasta([("rna", "GCU" * 40)])),
              "processed as VirNucPro: U is not T, so codons with U are dropped and an RNA "
              "sequence is usually skipped `no_unambiguous_codon` (convert U to T first)",
              [("rna", "no_unambiguous_codon")]),
    processed("bzip2", _write("clean.fa.bz2", bz2.compress(CLEAN)),
              "processed (Python's bz2); outputs identical to the plain file's", same_as=_clean),
    processed("xz", _write("clean.fa.xz", lzma.compress(CLEAN)),
              "processed (Python's lzma); outputs identical to the plain file's", same_as=_clean),
    processed("zstd", _write("clean.fa.zst", _zstd().compress(CLEAN)),
              "processed (`backports-zstd`, pinned; `compression.zstd` from Python 3.14); "
              "outputs identical to the plain file's", same_as=_clean),
    Kind("100 Mb single sequence", huge_sequence,
         "processed; translate and plan in bounded memory (peak RSS checked under 1 GiB, about "
         "5x the sequence); predict runs on a 20 kb version", huge=huge_sequence,
         sizes=(HUGE_BASES, HUGE_BASES, 20_000), ids=lambda size: ["genome"]),
    Kind("a million 10-bp reads", many_reads,
         "processed; plan reads all 1,000,000 (peak RSS checked under 1 GiB); translate runs on "
         "50,000 of them and predict on 200 (the full-size translate is a bench figure)",
         huge=many_reads, sizes=(HUGE_READS, 50_000, SMALL_READS),
         ids=lambda size: [f"read{i}" for i in range(size)]),
]
KINDS = {kind.name: kind for kind in CORPUS}


def message_of(kind: Kind, folder: Path) -> str:
    """The one-line error the reader gives for a refused kind, its path shortened to the name
    (a process substitution is a pipe: it gets the named pipe's message)."""
    made = kind.make(folder)
    path = made if isinstance(made, Path) else _fifo(folder)
    try:
        for _ in iter_records(path):
            pass
    except InputError as exc:
        return str(exc).replace(str(path), "/dev/fd/63" if kind.shell else path.name)
    raise AssertionError(f"{kind.name}: {path} was read without an error")


def behaviour_of(kind: Kind, folder: Path) -> str:
    if kind.processed:
        return kind.behaviour
    message = message_of(kind, folder).replace("`", "'")
    return f"exit 2: `{message}`" + (f"<br>{kind.why}" if kind.why else "")


def table(folder: Path) -> str:
    """The doc's table; refused kinds show the message the reader gives today."""
    rows = ["| # | kind | behaviour of `translate`, `plan` and `predict` |", "|---|---|---|"]
    for number, kind in enumerate(CORPUS, 1):
        (folder / str(number)).mkdir()
        behaviour = behaviour_of(kind, folder / str(number)).replace("|", "\\|")
        rows.append(f"| {number} | {kind.name} | {behaviour} |")
    return "\n".join(rows)


def render(doc: str, folder: Path) -> str:
    """`doc` with the text between the table markers replaced by the current table."""
    pattern = re.compile(re.escape(TABLE_START) + ".*?" + re.escape(TABLE_END), re.S)
    return pattern.sub(lambda _: f"{TABLE_START}\n{table(folder)}\n{TABLE_END}", doc)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as scratch:
        DOC.write_text(render(DOC.read_text(), Path(scratch)))
    print(f"wrote the table of {len(CORPUS)} kinds into {DOC}", file=sys.stderr)

"""Streaming FASTA/FASTQ reader: multi-line records, any line endings, any case.

The file is opened by `source.open_input` (regular files only; gzip/bgzip, bzip2, xz or zstd;
a UTF-8 byte order mark dropped). The record ID is the first whitespace-delimited token of
the header, as Biopython takes it; it must be UTF-8 without control characters. Bad input
raises `InputError` naming the file, the line or record, and the fix. The whole file is never
held in memory: duplicate IDs are found from 8-byte hashes kept per record.
"""

from __future__ import annotations

from array import array
from pathlib import Path
from typing import BinaryIO, Iterator, NamedTuple, NoReturn

import numpy as np

from ..core.errors import InputError
from .source import BLOCK, open_input, read_error

NUCLEOTIDE_LETTERS = b"ACGTUNRYKMSWBDHVacgtunrykmswbdhv-."
PROTEIN_ONLY_LETTERS = b"EFIJLOPQXZefijlopqxz*"
PROTEIN_LETTERS = bytes(range(65, 91)) + bytes(range(97, 123)) + b"*-."
ALPHABETS = ("dna", "protein")
TEXT_CONTROL = bytes(range(0, 9)) + bytes(range(14, 32)) + b"\x7f"
HEADER_CONTROL = TEXT_CONTROL + b"\r"
BINARY_BYTES = TEXT_CONTROL + bytes(range(128, 256))
BINARY_FIX = ("give FASTA/FASTQ text, plain or compressed with gzip/bgzip, bzip2, xz or zstd "
              "(a damaged copy: re-copy it)")
MIXED_ENDINGS = ("a carriage return inside a line (mixed line endings)",
                 "convert the line endings (`dos2unix FILE`)")
OTHER_FORMATS = (  # (how the first line starts, what the file is, the fix)
    ((b"@HD\t", b"@SQ\t", b"@RG\t", b"@PG\t", b"@CO\t"), "a SAM file",
     "convert the reads to FASTQ (`samtools fastq FILE > reads.fq`)"),
    ((b"BAM\x01",), "a BAM file", "convert the reads to FASTQ (`samtools fastq FILE > reads.fq`)"),
    ((b"LOCUS ",), "a GenBank flat file", "convert it to FASTA (e.g. `seqret -osformat fasta`)"),
    ((b"ID   ",), "an EMBL flat file", "convert it to FASTA (e.g. `seqret -osformat fasta`)"),
    ((b"PK\x03\x04",), "a zip archive", "unzip it (`unzip -p FILE > reads.fa`)"),
)


class Record(NamedTuple):
    """One input sequence: `ordinal` is its 0-based position in the file, `line` its header line."""

    id: str
    seq: str
    ordinal: int
    line: int

    @property
    def length(self) -> int:
        return len(self.seq)


def iter_records(path: str | Path, check_duplicates: bool = True,
                 alphabet: str = "dna") -> Iterator[Record]:
    """Yield every record of a FASTA or FASTQ file, in file order. `alphabet="protein"` reads
    amino-acid sequences (for `embed` with a protein model) instead of refusing them."""
    path = Path(path)
    with open_input(path) as handle:
        _check_start(path, _head(path, handle))
        lines = _numbered_lines(path, handle)
        first = _first_content_line(path, lines)
        hashes = array("q")
        for record in _parser(path, first)(path, first, lines, alphabet == "protein"):
            hashes.append(hash(record.id))
            yield record
    if check_duplicates:
        _check_duplicates(path, hashes, alphabet)


def _numbered_lines(path: Path, handle: BinaryIO) -> Iterator[tuple[int, bytes]]:
    number = 0
    try:
        for number, line in enumerate(handle, 1):
            yield number, line.rstrip(b"\r\n")
    except Exception as exc:
        error = read_error(path, exc, f"line {number + 1}")
        if error is None:
            raise
        raise error from None


def _head(path: Path, handle: BinaryIO) -> bytes:
    try:
        return handle.peek(BLOCK)[:BLOCK]
    except Exception as exc:
        raise read_error(path, exc, "line 1") or exc from None


def _first_content_line(path: Path, lines: Iterator[tuple[int, bytes]]) -> tuple[int, bytes]:
    for number, line in lines:
        if line.strip():
            return number, line
    raise InputError(path, "", "the file is empty", "give a FASTA or FASTQ file with sequences")


def _check_start(path: Path, head: bytes) -> None:
    """Refuse a file that does not start like FASTA/FASTQ from its first block, so that a
    binary file without line breaks is never read as one huge line."""
    content = head.lstrip()
    if content and content[:1] not in (b">", b"@"):
        number = head[:len(head) - len(content)].count(b"\n") + 1
        _reject_start(path, (number, content.split(b"\n", 1)[0]))


def _parser(path: Path, first: tuple[int, bytes]):
    if first[1].startswith(b">"):
        return _parse_fasta
    _reject_start(path, first)
    return _parse_fastq


def _reject_start(path: Path, first: tuple[int, bytes]) -> None:
    """Raise for a first line that is not a FASTA/FASTQ header; return for a FASTQ one."""
    number, line = first
    for prefixes, what, fix in OTHER_FORMATS:
        if line.startswith(prefixes):
            raise InputError(path, f"line {number}", f"this is {what}, not FASTA/FASTQ", fix)
    if line.startswith(b"@"):
        return
    if line.translate(None, BINARY_BYTES) != line:
        raise InputError(path, f"line {number}", "binary data, not FASTA/FASTQ text", BINARY_FIX)
    if not line.strip().translate(None, NUCLEOTIDE_LETTERS):
        raise InputError(path, f"line {number}", "a sequence without a header line",
                         "put a header line (`>name`) before each sequence")
    raise InputError(path, f"line {number}", "not FASTA or FASTQ (a record starts with '>' or "
                     f"'@', this line with {line[:20].decode('utf-8', 'replace')!r})",
                     "give a FASTA or FASTQ file")


def _parse_fasta(path, first, lines, protein) -> Iterator[Record]:
    """Sequence lines are appended to one bytearray (a list of line objects would take twice
    the memory of a 100 Mb sequence), released before the record is yielded."""
    ordinal, header_line, header, seq = 0, first[0], first[1], bytearray()
    for number, line in lines:
        if line.startswith(b">"):
            record = _make_record(path, header, seq, ordinal, header_line, protein)
            ordinal, header_line, header, seq = ordinal + 1, number, line, bytearray()
            yield record
        else:
            seq += line
    record = _make_record(path, header, seq, ordinal, header_line, protein)
    del seq
    yield record


def _parse_fastq(path, first, lines, protein) -> Iterator[Record]:
    ordinal, pending = 0, first
    while pending is not None:
        header_line, header = pending
        if not header.startswith(b"@"):
            raise InputError(path, f"line {header_line}",
                             "expected a FASTQ header starting with '@'",
                             "check the file is complete FASTQ (4 lines per record)")
        where = f"record '{_loose_id(header)}' (line {header_line})"
        seq = _fastq_sequence(path, where, lines)
        _fastq_quality(path, where, len(seq), lines)
        yield _make_record(path, header, seq, ordinal, header_line, protein)
        ordinal, pending = ordinal + 1, _next_non_blank(lines)


def _fastq_sequence(path, where, lines) -> bytes:
    parts = []
    for _, line in lines:
        if line.startswith(b"+"):
            return b"".join(parts)
        parts.append(line)
    raise InputError(path, where, "FASTQ record has no '+' line",
                     "the file is truncated or not FASTQ; re-copy it")


def _fastq_quality(path, where, length, lines) -> None:
    got, number = 0, None
    while got < length:
        number, line = next(lines, (None, None))
        if line is None:
            raise InputError(path, where, f"FASTQ quality is shorter than the sequence ({got} "
                             f"of {length} characters) at the end of the file",
                             "the file is truncated; re-copy it")
        got += len(line)
    if got != length:
        raise InputError(path, where, f"FASTQ quality has {got} characters (to line {number}), "
                         f"the sequence {length}",
                         "repair the record so quality and sequence have equal length, or "
                         "re-export the reads")


def _next_non_blank(lines) -> tuple[int, bytes] | None:
    for number, line in lines:
        if line.strip():
            return number, line
    return None


def _loose_id(header: bytes) -> str:
    """The ID for a message about a record that may not parse."""
    fields = header[1:].split(None, 1)
    return fields[0].decode("utf-8", "replace") if fields else ""


def _make_record(path: Path, header: bytes, seq: bytes | bytearray, ordinal: int, line: int,
                 protein: bool = False) -> Record:
    rid = _record_id(path, header, line)
    return Record(rid, _sequence_text(path, rid, seq, line, protein), ordinal, line)


def _record_id(path: Path, header: bytes, line: int) -> str:
    """The first whitespace-delimited token after '>' or '@', as Biopython's `record.id`."""
    if header.translate(None, HEADER_CONTROL) != header:
        _reject_header(path, header, line)
    fields = header[1:].split(None, 1)
    if not fields:
        raise InputError(path, f"line {line}", "a record has an empty ID",
                         "give every record an ID after '>' or '@'")
    try:
        return fields[0].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(path, f"line {line}", f"the ID is not UTF-8 text (byte "
                         f"0x{fields[0][exc.start]:02x})", "re-encode the headers as UTF-8 "
                         "(e.g. `iconv -f latin1 -t utf-8`)") from None


def _reject_header(path: Path, header: bytes, line: int) -> NoReturn:
    if b"\r" in header:
        raise InputError(path, f"line {line}", *MIXED_ENDINGS)
    byte = next(b for b in header if b in TEXT_CONTROL)
    raise InputError(path, f"line {line}", f"a control character (byte 0x{byte:02x}) in the "
                     "header: binary data or a damaged file", BINARY_FIX)


def _sequence_text(path: Path, rid: str, seq: bytes | bytearray, line: int,
                   protein: bool) -> str:
    """The sequence with spaces and tabs dropped (as Biopython does), its letters checked."""
    odd = seq.translate(None, PROTEIN_LETTERS if protein else NUCLEOTIDE_LETTERS)
    if odd and not odd.translate(None, b" \t"):
        seq, odd = seq.replace(b" ", b"").replace(b"\t", b""), b""
    if odd:
        _reject_sequence(path, f"record '{rid}' (line {line})", odd.translate(None, b" \t"),
                         protein)
    return seq.decode("ascii")


def _reject_sequence(path: Path, where: str, odd: bytes, protein: bool) -> NoReturn:
    if b"\r" in odd:
        raise InputError(path, where, *MIXED_ENDINGS)
    if odd.translate(None, BINARY_BYTES) != odd:
        raise InputError(path, where, "binary data, not FASTA/FASTQ text", BINARY_FIX)
    if not protein and odd.translate(None, PROTEIN_ONLY_LETTERS) != odd:
        raise InputError(path, where, "this looks like a protein sequence, DNA is expected",
                         "give nucleotide sequences (VirNucPro translates them itself)")
    bad = sorted(set(odd.decode("ascii")))
    letters = "amino-acid letters" if protein else "IUPAC nucleotide letters"
    raise InputError(path, where, f"invalid sequence characters {''.join(bad)!r}",
                     f"use {letters} only")


def _check_duplicates(path: Path, hashes: array, alphabet: str) -> None:
    values = np.frombuffer(hashes, dtype=np.int64)
    order = np.argsort(values, kind="stable")
    same = np.flatnonzero(values[order][1:] == values[order][:-1])
    if same.size:
        suspects = {int(order[i]) for i in same} | {int(order[i + 1]) for i in same}
        _confirm_duplicate(path, suspects, alphabet)


def _confirm_duplicate(path: Path, ordinals: set[int], alphabet: str) -> None:
    """Hashes collide for these ordinals: re-read just their IDs to name a true duplicate."""
    seen: dict[str, Record] = {}
    for record in iter_records(path, check_duplicates=False, alphabet=alphabet):
        if record.ordinal not in ordinals:
            continue
        if record.id in seen:
            raise InputError(path, f"record '{record.id}' (line {record.line})",
                             f"duplicate ID, first seen at line {seen[record.id].line}",
                             "make every ID (the header up to its first space) unique, "
                             "e.g. `seqkit rename`")
        seen[record.id] = record


def read_all(path: str | Path) -> list[Record]:
    """Convenience for small inputs and tests."""
    return list(iter_records(path))


__all__ = ["Record", "iter_records", "open_input", "read_all"]

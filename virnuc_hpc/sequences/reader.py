"""Streaming FASTA/FASTQ reader: plain, gzip or bgzip; multi-line records, CRLF, any case.

The record ID is the first whitespace-delimited token of the header, as Biopython takes it.
Bad input raises `InputError` naming the file, the line or record, and the fix. The whole
file is never held in memory: duplicate IDs are found from 8-byte hashes kept per record.
"""

from __future__ import annotations

import gzip
import zlib
from array import array
from pathlib import Path
from typing import BinaryIO, Iterator, NamedTuple

import numpy as np

from ..errors import InputError

GZIP_MAGIC = b"\x1f\x8b"
NUCLEOTIDE_LETTERS = b"ACGTUNRYKMSWBDHVacgtunrykmswbdhv-."
PROTEIN_ONLY_LETTERS = b"EFIJLOPQXZefijlopqxz*"
PROTEIN_LETTERS = bytes(range(65, 91)) + bytes(range(97, 123)) + b"*-."
ALPHABETS = ("dna", "protein")
TEXT_CONTROL = bytes(range(0, 9)) + bytes(range(14, 32)) + b"\x7f"
BINARY_BYTES = TEXT_CONTROL + bytes(range(128, 256))


class Record(NamedTuple):
    """One input sequence: `ordinal` is its 0-based position in the file, `line` its header line."""

    id: str
    seq: str
    ordinal: int
    line: int

    @property
    def length(self) -> int:
        return len(self.seq)


def open_input(path: str | Path) -> BinaryIO:
    """Open plain, gzip or bgzip input as a binary stream."""
    path = Path(path)
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        raise InputError(path, "", "no such file", "check the path") from None
    except IsADirectoryError:
        raise InputError(path, "", "is a directory", "give a FASTA or FASTQ file") from None
    if handle.peek(2)[:2] == GZIP_MAGIC:
        return gzip.GzipFile(fileobj=handle, mode="rb")  # type: ignore[return-value]
    return handle


def iter_records(path: str | Path, check_duplicates: bool = True,
                 alphabet: str = "dna") -> Iterator[Record]:
    """Yield every record of a FASTA or FASTQ file, in file order. `alphabet="protein"` reads
    amino-acid sequences (for `embed` with a protein model) instead of refusing them."""
    with open_input(path) as handle:
        lines = _numbered_lines(path, handle)
        first = _first_content_line(path, lines)
        if first[1][:1] not in (b">", b"@"):
            _reject_start(path, first)
        parse = _parse_fasta if first[1].startswith(b">") else _parse_fastq
        hashes = array("q")
        for record in parse(path, first, lines, alphabet == "protein"):
            hashes.append(hash(record.id))
            yield record
    if check_duplicates:
        _check_duplicates(path, hashes, alphabet)


def _numbered_lines(path: Path, handle: BinaryIO) -> Iterator[tuple[int, bytes]]:
    try:
        for number, line in enumerate(handle, 1):
            yield number, line.rstrip(b"\r\n")
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise InputError(
            path, "end of file", f"the gzip data is truncated or corrupt ({exc})",
            "re-copy or re-compress the file (check it with `gzip -t`)",
        ) from None


def _first_content_line(path: Path, lines: Iterator[tuple[int, bytes]]) -> tuple[int, bytes]:
    for number, line in lines:
        if line.strip():
            return number, line
    raise InputError(path, "", "the file is empty", "give a FASTA or FASTQ file with sequences")


def _reject_start(path: Path, first: tuple[int, bytes]) -> None:
    number, line = first
    if line.translate(None, BINARY_BYTES) != line:
        raise InputError(path, f"line {number}", "binary data, not FASTA/FASTQ text",
                         "give an uncompressed or gzip-compressed FASTA/FASTQ file")
    raise InputError(path, f"line {number}", "not FASTA or FASTQ (a record starts with '>' or '@')",
                     "give a FASTA or FASTQ file")


def _parse_fasta(path, first, lines, protein) -> Iterator[Record]:
    ordinal, header_line, header, parts = 0, first[0], first[1], []
    for number, line in lines:
        if line.startswith(b">"):
            yield _make_record(path, header, b"".join(parts), ordinal, header_line, protein)
            ordinal, header_line, header, parts = ordinal + 1, number, line, []
        else:
            parts.append(line)
    yield _make_record(path, header, b"".join(parts), ordinal, header_line, protein)


def _parse_fastq(path, first, lines, protein) -> Iterator[Record]:
    ordinal, pending = 0, first
    while pending is not None:
        header_line, header = pending
        if not header.startswith(b"@"):
            raise InputError(path, f"line {header_line}",
                             "expected a FASTQ header starting with '@'",
                             "check the file is complete FASTQ (4 lines per record)")
        seq, plus_line = _fastq_sequence(path, header_line, lines)
        _fastq_quality(path, plus_line, len(seq), lines)
        yield _make_record(path, header, seq, ordinal, header_line, protein)
        ordinal, pending = ordinal + 1, _next_non_blank(lines)


def _fastq_sequence(path, header_line, lines) -> tuple[bytes, int]:
    parts = []
    for number, line in lines:
        if line.startswith(b"+"):
            return b"".join(parts), number
        parts.append(line)
    raise InputError(path, f"record at line {header_line}", "FASTQ record has no '+' line",
                     "the file is truncated or not FASTQ; re-copy it")


def _fastq_quality(path, plus_line, length, lines) -> None:
    got = 0
    while got < length:
        line = next(lines, None)
        if line is None:
            raise InputError(path, f"record ending at line {plus_line}",
                             "FASTQ quality is shorter than the sequence",
                             "the file is truncated; re-copy it")
        got += len(line[1])
    if got != length:
        raise InputError(path, f"line {line[0]}", "FASTQ quality length differs from the sequence",
                         "repair the record so quality and sequence have equal length")


def _next_non_blank(lines) -> tuple[int, bytes] | None:
    for number, line in lines:
        if line.strip():
            return number, line
    return None


def _make_record(path: Path, header: bytes, seq: bytes, ordinal: int, line: int,
                 protein: bool = False) -> Record:
    fields = header[1:].split(None, 1)
    if not fields:
        raise InputError(path, f"line {line}", "a record has an empty ID",
                         "give every record an ID after '>' or '@'")
    seq = seq.replace(b" ", b"").replace(b"\t", b"")
    _check_sequence(path, fields[0], seq, line, protein)
    return Record(fields[0].decode("utf-8", "replace"), seq.decode("ascii"), ordinal, line)


def _check_sequence(path: Path, rid: bytes, seq: bytes, line: int, protein: bool) -> None:
    odd = seq.translate(None, PROTEIN_LETTERS if protein else NUCLEOTIDE_LETTERS)
    if not odd:
        return
    where = f"record '{rid.decode('utf-8', 'replace')}' (line {line})"
    if odd.translate(None, BINARY_BYTES) != odd:
        raise InputError(path, where, "binary data, not FASTA/FASTQ text",
                         "give an uncompressed or gzip-compressed FASTA/FASTQ file")
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
                             "make every record ID unique (e.g. `seqkit rename`)")
        seen[record.id] = record


def read_all(path: str | Path) -> list[Record]:
    """Convenience for small inputs and tests."""
    return list(iter_records(path))


__all__ = ["Record", "iter_records", "open_input", "read_all"]

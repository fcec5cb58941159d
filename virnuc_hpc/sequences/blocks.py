"""Records in blocks, at parser speed, exactly as the reference reader (reader.py) reads them.

FASTQ goes through dnaio's C parser, and FASTA through dnaio's chunking into buffers of whole
records, which are then split with bytes methods. gzip is decompressed by xopen with ISA-L,
in a thread. Each block is checked over its whole join, never one character at a time in
Python. The block path takes only what it knows the reference reads the same way:

- a start without a byte order mark or carriage returns;
- ASCII headers without control characters, with the ID right after the marker;
- IUPAC nucleotide letters only;
- FASTQ of four lines per record (dnaio's own checks);
- FASTA with one or more lines per sequence.

Anything else goes to the reference reader, every error included. It restarts at the first
record the block path has not yielded, so the messages, the accepted quirks (CR-only files,
spaces in sequences, UTF-8 IDs, multi-line FASTQ...) and the ordinals are the reference's.
"""

from __future__ import annotations

import bz2
import lzma
import re
from dataclasses import dataclass
from itertools import islice, repeat
from pathlib import Path
from typing import BinaryIO, Iterator

from .reader import HEADER_CONTROL, NUCLEOTIDE_LETTERS, iter_records
from .source import BLOCK as HEAD, _zstd, check_input, compression_of, open_input

BUFFER = 16 << 20          # FASTA: the largest record the block path takes
FASTQ_BLOCK = 65_536       # FASTQ records per block
SLOW_BLOCK = 50_000        # records per block from the reference reader
FIRST_TOKEN = re.compile(rb"(?m)^[@>]([^ \t\n]+)")   # a FASTA ID right after its marker


@dataclass
class Block:
    """Consecutive records: the first one's ordinal in its file, their IDs (UTF-8) and
    sequences, and both joined one per line (what the scan writes)."""

    first: int
    ids: list[bytes]
    seqs: list[bytes]
    id_lines: bytes
    seq_lines: bytes

    @classmethod
    def of(cls, first: int, ids: list[bytes], seqs: list[bytes]) -> "Block":
        return cls(first, ids, seqs, _lines_of(ids), _lines_of(seqs))


def _lines_of(items: list[bytes]) -> bytes:
    return b"\n".join(items) + b"\n" if items else b""


class _Unsure(Exception):
    """The block path cannot vouch for this input: the reference reader takes over."""


def iter_blocks(path: str | Path) -> Iterator[Block]:
    """Every record of a FASTA/FASTQ file, in blocks, in file order (no duplicate-ID check:
    the caller does it over the whole input)."""
    path, done = Path(path), 0
    try:
        for block in _fast_blocks(path):
            yield block
            done += len(block.ids)
        return
    except _Unsure:
        pass
    yield from _reference_blocks(path, done)


def _reference_blocks(path: Path, skip: int) -> Iterator[Block]:
    records = islice(iter_records(path, check_duplicates=False), skip, None)
    while batch := list(islice(records, SLOW_BLOCK)):
        yield Block.of(batch[0].ordinal, [r.id.encode("utf-8") for r in batch],
                       [r.seq.encode("ascii") for r in batch])


def _fast_blocks(path: Path) -> Iterator[Block]:
    marker, first = _plain_start(path), 0
    try:
        with _open(path) as stream:
            for block in (_fastq if marker == b"@" else _fasta)(stream):
                yield block
                first += len(block.ids)
    except _Unsure:
        raise
    except Exception as exc:  # a damaged file, a record over BUFFER...: the reference says
        raise _Unsure(str(exc)) from exc
    if first == 0:
        raise _Unsure("no record")    # an empty or blank file: the reference's message


def _plain_start(path: Path) -> bytes:
    """The first byte, when the file starts as the block path expects: '>' or '@' at once,
    no byte order mark, no carriage return in its first block."""
    try:
        with open_input(path) as handle:
            head = handle.peek(HEAD)[:HEAD]
    except Exception as exc:
        raise _Unsure(str(exc)) from exc
    if head[:1] not in (b">", b"@") or b"\r" in head:
        raise _Unsure("an unusual start")
    return head[:1]


def _open(path: Path) -> BinaryIO:
    """The decompressed bytes of a regular file (gzip through xopen's ISA-L thread)."""
    check_input(path)
    name = compression_of(path)
    if name == "gzip":
        from xopen import xopen

        return xopen(path, "rb", format="gz")
    openers = {None: lambda p: open(p, "rb"), "bzip2": lambda p: bz2.open(p, "rb"),
               "xz": lambda p: lzma.open(p, "rb"), "zstd": lambda p: _zstd().open(p, "rb")}
    return openers[name](path)


# -- FASTQ: dnaio's records ---------------------------------------------------------------------

def _fastq(stream: BinaryIO) -> Iterator[Block]:
    import dnaio

    first = 0
    with dnaio.open(stream, fileformat="fastq") as reader:
        records = iter(reader)
        while True:
            names, ids, seqs = [], [], []
            name, rid, seq = names.append, ids.append, seqs.append  # the per-record loop
            for record in islice(records, FASTQ_BLOCK):
                name(record.name)
                rid(record.id)
                seq(record.sequence)
            if not seqs:
                return
            yield _fastq_block(first, names, ids, seqs)
            first += len(seqs)


def _fastq_block(first: int, names: list[str], ids: list[str], seqs: list[str]) -> Block:
    """A block of dnaio's records, once its headers, IDs and letters are what the reference
    reads the same way (dnaio keeps headers ASCII; its ID splits at a space or a tab, as the
    reference does once control characters are refused)."""
    _check_headers("\n".join(names).encode("ascii"))
    if not all(ids):
        raise _Unsure("an empty ID, or whitespace before it")
    seq_lines = _checked_letters(("\n".join(seqs) + "\n").encode("ascii"))
    id_lines = ("\n".join(ids) + "\n").encode("ascii")
    return Block(first, id_lines.split(b"\n")[:-1], seq_lines.split(b"\n")[:-1], id_lines,
                 seq_lines)


# -- FASTA: dnaio's buffers of whole records, split here ---------------------------------------

def _fasta(stream: BinaryIO) -> Iterator[Block]:
    import dnaio

    first = 0
    for chunk in dnaio.read_chunks(stream, BUFFER):
        ids, seqs = parse_fasta(bytes(chunk))
        yield Block.of(first, ids, seqs)
        first += len(ids)


def parse_fasta(chunk: bytes) -> tuple[list[bytes], list[bytes]]:
    """(IDs, sequences) of a buffer of whole FASTA records, or _Unsure."""
    if b"\r" in chunk or chunk[:1] != b">":
        raise _Unsure("CR line ends or an unusual start")
    lines = chunk.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    heads, seqs = lines[0::2], lines[1::2]
    if not (len(lines) % 2 == 0 and all(map(bytes.startswith, heads, repeat(b">"))) and
            not any(map(bytes.startswith, seqs, repeat(b">")))):
        heads, seqs = _multiline(chunk)
    joined = b"\n".join(heads)
    _check_headers(joined)
    _checked_letters(b"".join(seqs))
    return _fasta_ids(joined), seqs


def _multiline(chunk: bytes) -> tuple[list[bytes], list[bytes]]:
    heads, seqs = [], []
    for k, piece in enumerate(chunk.split(b"\n>")):
        head, _, body = piece.partition(b"\n")
        heads.append(head if k == 0 else b">" + head)
        seqs.append(body.replace(b"\n", b""))
    return heads, seqs


def _fasta_ids(heads: bytes) -> list[bytes]:
    """The first token after each '>', as the reference takes it."""
    ids = FIRST_TOKEN.findall(heads)
    if len(ids) != heads.count(b"\n") + 1:
        raise _Unsure("an empty ID, or whitespace before it")
    return ids


# -- checks shared by both ---------------------------------------------------------------------

def _check_headers(joined: bytes) -> None:
    if not joined.isascii() or len(joined.translate(None, HEADER_CONTROL)) != len(joined):
        raise _Unsure("a header the reference has to judge")


def _checked_letters(letters: bytes) -> bytes:
    if letters.translate(None, NUCLEOTIDE_LETTERS + b"\n"):
        raise _Unsure("letters the reference has to judge")
    return letters

"""Sequence preparation exactly as VirNucPro does it (spec sections 1, 2 and 7).

Chunking keeps the original overlap rule and its short-last-chunk quirk; six-frame translation
drops codons with non-ACGT bases; a frame is kept iff its protein is non-empty and has no stop;
the nucleotide slice is the original's one-base-longer one. Translation runs vectorised over
batches of chunks (numpy), which is what makes it fast; only kept frames touch Python strings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Iterator, NamedTuple

import numpy as np

from .reader import Record

CHUNK_SIZES = (300, 500)
FRAME_NAMES = ("F1", "F2", "F3", "R1", "R2", "R3")
BASES = "TCAG"
AMINO = "FFLLSSSSYY**CC*WLLLLPPPPHHQQRRRRIIIMTTTTNNKKSSRRVVVVAAAADDEEGGGG"
STANDARD_CODE = {a + b + c: AMINO[16 * i + 4 * j + k] for i, a in enumerate(BASES)
                 for j, b in enumerate(BASES) for k, c in enumerate(BASES)}
REVCOMP = str.maketrans("ACGTacgt", "TGCAtgca")
PAD = 4  # code of any non-ACGT byte, and of padding: a codon touching it is dropped
STOP = ord("*")

SKIP_EMPTY = "empty"
SKIP_TOO_SHORT = "too_short"
SKIP_ALL_STOP = "all_frames_have_stop"
SKIP_AMBIGUOUS = "no_unambiguous_codon"
SKIP_REASONS = {
    SKIP_EMPTY: "the record has no bases",
    SKIP_TOO_SHORT: "shorter than one codon (3 bases): no frame translates",
    SKIP_ALL_STOP: "every frame that translates has a stop codon, in every chunk",
    SKIP_AMBIGUOUS: "every codon contains a non-ACGT base, so every frame translates empty",
}


def _code_table() -> np.ndarray:
    table = np.full(256, PAD, dtype=np.uint8)
    for code, base in enumerate("ACGT"):
        table[ord(base)] = code
    return table


def _amino_table(reverse: bool) -> np.ndarray:
    """Index a*25 + b*5 + c (base-5 codes, 4 = not ACGT) -> amino-acid byte, 0 = dropped codon.
    With `reverse`, the amino acid of the codon's reverse complement."""
    table = np.zeros(125, dtype=np.uint8)
    for codon, _ in STANDARD_CODE.items():
        a, b, c = ("ACGT".index(x) for x in codon)
        read = codon.translate(REVCOMP)[::-1] if reverse else codon
        table[a * 25 + b * 5 + c] = ord(STANDARD_CODE[read])
    return table


CODES = _code_table()
FORWARD_AMINO = _amino_table(reverse=False)
REVERSE_AMINO = _amino_table(reverse=True)


def validate_chunk_size(chunk_size: int) -> int:
    if chunk_size not in CHUNK_SIZES:
        from ..core.errors import ConfigError

        raise ConfigError(f"chunk size {chunk_size} is not supported; choose one of "
                          f"{', '.join(map(str, CHUNK_SIZES))} (--chunk-size)")
    return chunk_size


def chunk_spans(length: int, chunk_size: int) -> list[tuple[int, int]]:
    """VirNucPro's `split_fasta_chunk` boundaries, short-last-chunk bug included."""
    if length == 0:
        return []
    n = -(-length // chunk_size)
    overlap = n * chunk_size - length
    lower = int(overlap / n)
    need = overlap - lower * (n - 1)
    steps = [lower + 1] * need + [lower] * (n - 1 - need) + [0]
    spans, move = [], 0
    for a, step in zip(range(0, length, chunk_size), steps):
        start = a - move if a > 1 else a
        spans.append((start, min(start + chunk_size, length)))
        move += step
    return spans


def translate_frame(seq: str, frame: int) -> str:
    """The original per-codon translation (reference for tests; `prepare` is vectorised)."""
    return "".join(STANDARD_CODE.get(seq[i:i + 3], "") for i in range(frame, len(seq) - 2, 3))


def revcomp(seq: str) -> str:
    return seq.translate(REVCOMP)[::-1]


class Chunk(NamedTuple):
    id: str
    seq: str  # case preserved, as the original chunk file


class Frame(NamedTuple):
    id: str
    nucleotide: str
    protein: str


@dataclass
class Prepared:
    """One input record after chunking and frame selection, with its accounting."""

    record: Record
    chunks: list[Chunk] = field(default_factory=list)
    frames: list[Frame] = field(default_factory=list)
    any_stop: bool = False

    @property
    def skip_reason(self) -> str | None:
        if self.frames:
            return None
        if self.record.length == 0:
            return SKIP_EMPTY
        if self.record.length < 3:
            return SKIP_TOO_SHORT
        return SKIP_ALL_STOP if self.any_stop else SKIP_AMBIGUOUS

    def accounting(self) -> dict:
        return {"id": self.record.id, "length": self.record.length, "chunks": len(self.chunks),
                "kept_frames": len(self.frames), "skip_reason": self.skip_reason or ""}


def _codon_index(chunks: list[str], width: int) -> np.ndarray:
    """Base-5 codon index at every start position of every chunk, [n, width-2]; padding is
    non-ACGT, so a codon running past a chunk's end is dropped like an ambiguous one."""
    padded = "".join(c.ljust(width, "#") for c in chunks).encode("ascii")
    rows = CODES[np.frombuffer(padded, dtype=np.uint8).reshape(len(chunks), width)]
    return rows[:, :-2] * 25 + rows[:, 1:-1] * 5 + rows[:, 2:]


KeptFrames = list[tuple[int, str]]


def translate_batch(chunks: list[str], width: int) -> tuple[list[KeptFrames], np.ndarray]:
    """Kept (frame number 1..6, protein) per uppercase chunk, and whether any frame had a stop.

    Reverse frame r of a chunk of length l reads the forward codons of phase (l - r) % 3
    backwards through a reverse-complement table, so no reversed copy is built."""
    index = _codon_index(chunks, width)
    forward, reverse = FORWARD_AMINO[index], REVERSE_AMINO[index]
    lengths = np.fromiter(map(len, chunks), dtype=np.int64, count=len(chunks))
    rows = np.arange(len(chunks))
    phases = [np.zeros_like(lengths) + p for p in range(3)] + [(lengths - r) % 3 for r in range(3)]
    stop_by_phase = [_by_phase(a == STOP) for a in (forward, reverse)]
    some_by_phase = [_by_phase(a != 0) for a in (forward, reverse)]
    stops = np.stack([stop_by_phase[f > 2][phases[f], rows] for f in range(6)], axis=1)
    some = np.stack([some_by_phase[f > 2][phases[f], rows] for f in range(6)], axis=1)
    result: list[KeptFrames] = [[] for _ in chunks]
    for i, f in zip(*np.nonzero(~stops & some)):
        f = int(f)
        amino = (forward, reverse)[f > 2][i, phases[f][i]::3]
        protein = amino[amino != 0] if f < 3 else amino[amino != 0][::-1]
        result[i].append((f + 1, protein.tobytes().decode("ascii")))
    return result, stops.any(axis=1)


def _by_phase(flags: np.ndarray) -> np.ndarray:
    """[3, n]: whether any codon of phase p has the flag."""
    return np.stack([flags[:, p::3].any(axis=1) for p in range(3)])


def frame_nucleotides(seq: str, rc: str | None, num: int, protein_length: int) -> str:
    """The original's nucleotide slice for a kept frame: 3p+1 bases, clipped at the end."""
    span = 3 * protein_length
    if num <= 3:
        return seq[num - 1:num + span]
    return rc[num - 4:num - 3 + span]


def translate_chunks(chunks: list[str], batch: int) -> tuple[list[KeptFrames], np.ndarray]:
    """`translate_batch` of the uppercased chunks, at most `batch` at a time, each batch as
    wide as its longest chunk: memory stays bounded for a 100 Mb sequence, and short reads
    are not padded to the chunk size."""
    kept: list[KeptFrames] = []
    stops = [np.zeros(0, bool)]
    for start in range(0, len(chunks), batch):
        part = [chunk.upper() for chunk in chunks[start:start + batch]]
        part_kept, part_stops = translate_batch(part, max(3, max(map(len, part))))
        kept.extend(part_kept)
        stops.append(part_stops)
    return kept, np.concatenate(stops)


def _emit(pending: list[Prepared], batch: int) -> Iterator[Prepared]:
    kept, stops = translate_chunks([c.seq for p in pending for c in p.chunks], batch)
    position = 0
    for prepared in pending:
        for chunk in prepared.chunks:
            if kept[position]:
                _add_frames(prepared, chunk.id, chunk.seq.upper(), kept[position])
            prepared.any_stop |= bool(stops[position])
            position += 1
        yield prepared


def _add_frames(prepared: Prepared, chunk_id: str, upper: str, kept) -> None:
    rc = revcomp(upper) if any(num > 3 for num, _ in kept) else None
    for num, protein in kept:
        nucleotide = frame_nucleotides(upper, rc, num, len(protein))
        prepared.frames.append(Frame(chunk_id + FRAME_NAMES[num - 1], nucleotide, protein))


def prepare(records: Iterable[Record], chunk_size: int,
            batch_chunks: int = 4096) -> Iterator[Prepared]:
    """Chunk and translate records, in input order; every record comes out, kept frames or not."""
    validate_chunk_size(chunk_size)
    pending: list[Prepared] = []
    waiting = 0
    for record in records:
        spans = chunk_spans(record.length, chunk_size)
        chunks = [Chunk(f"{record.id}_chunk_{k + 1}", record.seq[s:e])
                  for k, (s, e) in enumerate(spans)]
        pending.append(Prepared(record, chunks))
        waiting += len(chunks)
        if waiting >= batch_chunks:
            yield from _emit(pending, batch_chunks)
            pending, waiting = [], 0
    yield from _emit(pending, batch_chunks)

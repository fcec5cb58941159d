"""FASTA and accounting writers in the original tool's layouts."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import BinaryIO

from .prepare import Prepared

ACCOUNTING_COLUMNS = ("id", "length", "chunks", "kept_frames", "skip_reason")
WRAP = 60  # Biopython's FASTA writer, as in the original chunk file


def wrapped_record(record_id: str, seq: str) -> str:
    lines = [seq[i:i + WRAP] for i in range(0, len(seq), WRAP)] or [""]
    return f">{record_id}\n" + "\n".join(lines) + "\n"


def two_line_record(record_id: str, seq: str) -> str:
    return f">{record_id}\n{seq}\n"


def accounting_header() -> str:
    return "\t".join(ACCOUNTING_COLUMNS) + "\n"


def accounting_line(prepared: Prepared) -> str:
    row = prepared.accounting()
    return "\t".join(str(row[c]) for c in ACCOUNTING_COLUMNS) + "\n"


@dataclass
class Totals:
    """Accounting totals: every input sequence has kept frames or a skip reason."""

    sequences: int = 0
    with_frames: int = 0
    chunks: int = 0
    frames: int = 0
    skipped: Counter = field(default_factory=Counter)

    def add(self, prepared: Prepared) -> None:
        self.sequences += 1
        self.chunks += len(prepared.chunks)
        self.frames += len(prepared.frames)
        reason = prepared.skip_reason
        if reason is None:
            self.with_frames += 1
        else:
            self.skipped[reason] += 1

    def balanced(self) -> bool:
        return self.sequences == self.with_frames + sum(self.skipped.values())

    def as_dict(self) -> dict:
        return {"input_sequences": self.sequences, "with_kept_frames": self.with_frames,
                "skipped": sum(self.skipped.values()), "skipped_by_reason": dict(self.skipped),
                "chunks": self.chunks, "kept_frames": self.frames}


def write_text(handle: BinaryIO | None, text: str) -> None:
    if handle is not None:
        handle.write(text.encode())

"""The `translate` stage: input -> chunk file, identified nucleotide/protein files, accounting."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

from ..core.errors import IntegrityError
from ..core.fsio import atomic_open
from .prepare import prepare
from .reader import iter_records
from .writers import (Totals, accounting_header, accounting_line, two_line_record,
                      wrapped_record, write_text)


def translate_file(input_path: str | Path, chunk_size: int, nucleotide_out=None, protein_out=None,
                   chunks_out=None, accounting_out=None) -> Totals:
    """Stream `input_path` through preparation; each output is published atomically at the end."""
    totals = Totals()
    with ExitStack() as stack:
        nt, aa, ch, acc = (stack.enter_context(atomic_open(p)) if p else None
                           for p in (nucleotide_out, protein_out, chunks_out, accounting_out))
        write_text(acc, accounting_header())
        for prepared in prepare(iter_records(input_path), chunk_size):
            totals.add(prepared)
            write_text(acc, accounting_line(prepared))
            for chunk in prepared.chunks:
                write_text(ch, wrapped_record(chunk.id, chunk.seq))
            for frame in prepared.frames:
                write_text(nt, two_line_record(frame.id, frame.nucleotide))
                write_text(aa, two_line_record(frame.id, frame.protein))
        if not totals.balanced():
            raise IntegrityError(f"accounting does not add up: {totals.as_dict()}")
    return totals

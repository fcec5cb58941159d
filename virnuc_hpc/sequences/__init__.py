"""Stage 1: read input sequences and prepare them (chunks, kept frames, accounting)."""

from .prepare import (CHUNK_SIZES, SKIP_REASONS, Chunk, Frame, Prepared, chunk_spans, prepare,
                      validate_chunk_size)
from .reader import Record, iter_records

__all__ = ["CHUNK_SIZES", "SKIP_REASONS", "Chunk", "Frame", "Prepared", "Record", "chunk_spans",
           "iter_records", "prepare", "validate_chunk_size"]

"""The fixed shapes of a run's batches (no torch here: `plan` records them without loading it).

A run computes every token-wise step in calls of exactly `chunk_tokens` rows and attention in
calls of `group_rows(width)` sequences of `width` positions (models/packed.py), so that a row's
bits depend on that row alone. The shapes are settled at plan for where the tasks will run,
like the precision, and recorded in plan.json: every task of a run uses the same ones."""

from __future__ import annotations

from dataclasses import dataclass

WIDTH_STEP = 8  # attention widths: token counts rounded up to a multiple of this


@dataclass(frozen=True)
class Shapes:
    """Rows per token-wise call, and padded tokens per attention call."""

    chunk_tokens: int
    group_tokens: int

    def width(self, tokens: int) -> int:
        """The padded width of a sequence of `tokens` tokens: its own length decides it."""
        return -(-max(tokens, 1) // WIDTH_STEP) * WIDTH_STEP

    def group_rows(self, width: int) -> int:
        """Sequences per attention call at `width` (fixed for the run)."""
        return max(1, self.group_tokens // width)


# GPU: GEMMs of 8192 rows keep the tensor cores busy, and attention (~1 % of ESM-2 3B's work at
# these lengths) runs 32 sequences of 128 positions a call. CPU: small calls (a CPU gains
# nothing from large ones, and the tiny test models are all attention).
GPU_SHAPES = Shapes(chunk_tokens=8192, group_tokens=4096)
CPU_SHAPES = Shapes(chunk_tokens=256, group_tokens=64)

"""The results' rows, one typed schema each: what reduce writes and the report, MultiQC and
the views read (core/tables.py: the header, the writer and a reader by column name).

- `PredictionRow`: one input sequence of predictions.tsv (virnuc-hpc's own file);
- `FrameRow`: one kept frame of prediction_results.txt (VirNucPro's file, its header kept);
- `SAMPLES_HEADER`: the fixed columns of samples.tsv (a study's metadata columns follow).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..core.tables import TableRow
from ..sequences.prepare import SKIP_REASONS

CALLS = ("virus", "others", "skipped")


def format_score(value) -> str:
    """A score as the original writes it: numpy float32's shortest round-trip repr."""
    return str(np.float32(value))


@dataclass(frozen=True)
class PredictionRow(TableRow):
    """One input sequence: its size, its kept frames and chunks, its call and best score."""

    sequence_id: str
    length: int
    chunks: int
    kept_frames: int
    virus_chunks: int
    best_virus_score: float | None  # the highest score2 of its kept frames; None if skipped
    call: str                       # one of CALLS
    skip_reason: str                # why no frame was kept; "" when predicted

    file_name = "predictions.tsv"
    format_float = staticmethod(format_score)

    @property
    def predicted(self) -> bool:
        return self.call != "skipped"


@dataclass(frozen=True)
class FrameRow(TableRow):
    """One kept frame and its two scores, as VirNucPro writes prediction_results.txt."""

    frame_id: str = field(metadata={"column": "Sequence_ID"})
    prediction: str = field(metadata={"column": "Prediction"})
    score1: float = field(metadata={"column": "score1"})
    score2: float = field(metadata={"column": "score2"})

    file_name = "prediction_results.txt"
    format_float = staticmethod(format_score)


SAMPLES_HEADER = ("sample", "input_sequences", "predicted", "virus_sequences",
                  "others_sequences", "skipped", *(f"skipped_{r}" for r in SKIP_REASONS),
                  "kept_frames", "duplicates", "reused_frames", "fasta")
PREDICTIONS_HEADER = PredictionRow.columns()

"""A task's frames through the models: both encoders, then the classifier (`FramePipeline`).

What a frame's rows depend on is only the frame (and the run's fixed shapes, precision and
models): the encoders run fixed-shape batches (models/packed.py) and the classifier calls of
exactly SCORE_ROWS rows (`fixed_scores`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..models import LoadedModels
from ..models.encoders import MIN_BATCH_TOKENS, DnabertEncoder, EsmEncoder
from ..models.packed import one_thread
from ..sequences import Frame
from .options import TaskOptions

SCORE_ROWS = 256  # the classifier's fixed batch (rows of features per call)


@dataclass(frozen=True)
class TokenizedPart:
    """A part's frame IDs and both encoders' token ids: everything before the encoders."""

    ids: list[str]
    nucleotide: list[np.ndarray]
    protein: list[np.ndarray]


class FramePipeline:
    """Frames -> (DNABERT-S features, ESM-2 features, classifier scores)."""

    def __init__(self, models: LoadedModels, options: TaskOptions,
                 on_rows: Callable[[int], None] | None = None):
        self.on_rows = on_rows  # told after each ESM-2 batch (the bulk of the work)
        common = dict(device=options.device, precision=options.precision,
                      tokens_per_batch=options.tokens_per_batch, shapes=options.shapes)
        self.shapes = options.shapes
        tokenizer, dnabert = models.dnabert
        esm, alphabet = models.esm
        self.dnabert = DnabertEncoder(dnabert, tokenizer, **common)
        self.esm = EsmEncoder(esm, alphabet, **common, compile_layers=options.compile)
        self.dnabert.dedup = self.esm.dedup = options.dedup
        self.classifier, self.device = models.classifier, options.device
        self.widths = {"dnabert": self.dnabert.dim, "esm": self.esm.dim}

    @property
    def embedded(self) -> dict[str, int]:
        """Rows each encoder computed in this process (identical frames count once)."""
        return {"dnabert": self.dnabert.rows_embedded, "esm": self.esm.rows_embedded}

    def __call__(self, part: list[Frame]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One part in one thread: what a task splits between its producer and its encoders."""
        return self.features(self.tokenize(part))

    def tokenize(self, part: list[Frame]) -> TokenizedPart:
        """CPU only, and never touches the models: safe in another thread while `features`
        runs the encoders on an earlier part."""
        return TokenizedPart([f.id for f in part],
                             self.dnabert.tokenize([f.nucleotide for f in part]),
                             self.esm.tokenize([f.protein for f in part]))

    def features(self, part: TokenizedPart) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(DNABERT-S features, ESM-2 features, classifier scores): the encoders' work, exactly
        `Encoder.embed`'s (it is `embed_tokens(tokenize(...))`)."""
        nucleotide = self.dnabert.embed_tokens(part.nucleotide, part.ids)
        protein = self.esm.embed_tokens(part.protein, part.ids, self.on_rows)
        return nucleotide, protein, self.scores(np.concatenate([nucleotide, protein], axis=1))

    def scores(self, features: np.ndarray) -> np.ndarray:
        """Softmax of the classifier. With fixed shapes, in chunks of exactly SCORE_ROWS rows
        (the last one padded), so that a frame's scores never depend on how many frames share
        its part; otherwise padded to `MIN_BATCH_TOKENS` rows."""
        if self.shapes is not None:
            return self.fixed_scores(features)
        padded = np.zeros((max(len(features), MIN_BATCH_TOKENS), features.shape[1]), np.float32)
        padded[:len(features)] = features
        with torch.inference_mode():
            logits = self.classifier(torch.from_numpy(padded).to(self.device))
            return torch.softmax(logits.float(), dim=1).cpu().numpy()[:len(features)]


    def fixed_scores(self, features: np.ndarray) -> np.ndarray:
        return fixed_scores(self.classifier, features, self.device)


def fixed_scores(classifier: torch.nn.Module, features: np.ndarray,
                 device: str = "cpu") -> np.ndarray:
    """Softmax of `classifier` over `features` [n, width] in calls of exactly SCORE_ROWS rows
    (the last one padded with zero rows), on one CPU thread: a row's scores never depend on
    how many rows share the call."""
    rows = -(-max(len(features), 1) // SCORE_ROWS) * SCORE_ROWS
    padded = np.zeros((rows, features.shape[1]), np.float32)
    padded[:len(features)] = features
    chunks = torch.from_numpy(padded).to(device).split(SCORE_ROWS)
    with torch.inference_mode(), one_thread(torch.device(device)):
        scores = [torch.softmax(classifier(c).float(), dim=1) for c in chunks]
    return torch.cat(scores).cpu().numpy()[:len(features)]

"""ESM models from fair-esm checkpoint files, loaded with weights_only=True."""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import torch

from ..errors import UserError


def read_checkpoint(path: Path) -> dict:
    """torch.load a fair-esm checkpoint without running pickled code (Namespace allowlisted)."""
    with torch.serialization.safe_globals([argparse.Namespace]):
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # pickle refusals and corrupt zips both land here
            raise UserError(
                f"{path}: not a loadable fair-esm checkpoint ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''}); fix: re-fetch it with "
                "`virnuc-hpc models fetch --repair`"
            ) from exc


def load_esm(path, device="cpu"):
    """(model, alphabet) from a fair-esm checkpoint file; fp32, eval mode. The model name that
    selects fair-esm's loader (ESM-2 vs ESM-1) is the file stem, as in fair-esm's own local load."""
    import esm.pretrained

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such ESM checkpoint; fix: give a fair-esm .pt file")
    model_data = read_checkpoint(path)
    with warnings.catch_warnings():  # embeddings never use the contact head
        warnings.filterwarnings("ignore", message="Regression weights not found")
        model, alphabet = esm.pretrained.load_model_and_alphabet_core(path.stem, model_data)
    return model.to(device).eval(), alphabet

"""ESM models from fair-esm checkpoint files, loaded with weights_only=True.

ESM-2 is built without random initialisation: fair-esm's own constructor runs as a skeleton
(skeleton.py: allocated, never initialised), the checkpoint's tensors are assigned to it (the
file is memory-mapped, so its pages are read once, straight into the copy to the device or
the cast), and it is moved to the device and cast there. That is the same model fair-esm's
loader builds, bit for bit (tests/models/test_esm_checkpoint.py), in seconds instead of the
minute fair-esm spends initialising 2.8B parameters that the checkpoint then overwrites.
ESM-1 models go through fair-esm's own loader.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import torch

from ..core.errors import UserError
from .skeleton import skeleton

# fair-esm ships the contact regression in a separate file; embeddings never use it
OPTIONAL_KEYS = {"contact_head.regression.weight", "contact_head.regression.bias"}


def read_checkpoint(path: Path, mmap: bool = False) -> dict:
    """torch.load a fair-esm checkpoint without running pickled code (Namespace allowlisted);
    `mmap`: map the file instead of reading it (a legacy, non-zip checkpoint is read)."""
    with torch.serialization.safe_globals([argparse.Namespace]):
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
        except RuntimeError as exc:
            if mmap and "zipfile" in str(exc):
                return read_checkpoint(path, mmap=False)
            raise _unloadable(path, exc) from exc
        except Exception as exc:  # pickle refusals and corrupt zips both land here
            raise _unloadable(path, exc) from exc


def _unloadable(path: Path, exc: Exception) -> UserError:
    first = str(exc).splitlines()[0] if str(exc) else ""
    return UserError(f"{path}: not a loadable fair-esm checkpoint ({type(exc).__name__}: "
                     f"{first}); fix: re-fetch it with `virnuc-hpc models fetch --repair`")


def load_esm(path, device="cpu", dtype: torch.dtype = torch.float32):
    """(model, alphabet) from a fair-esm checkpoint file, on `device` at `dtype`, eval mode.
    The model name that selects fair-esm's loader (ESM-2 vs ESM-1) is the file stem, as in
    fair-esm's own local load."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such ESM checkpoint; fix: give a fair-esm .pt file")
    model_data = read_checkpoint(path, mmap=True)
    if path.stem.startswith("esm2"):
        model, alphabet = _assemble_esm2(path, model_data)
    else:
        model, alphabet = _fair_esm_core(path, model_data)
    return place(model, model_data, device, dtype), alphabet


def place(model: torch.nn.Module, model_data: dict, device, dtype) -> torch.nn.Module:
    """Move to `device`, then cast there; whatever still lives in the mapped file (a CPU model
    at the checkpoint's dtype) is copied: the weights must not change if the file does after
    it was verified."""
    mapped = {t.untyped_storage().data_ptr() for t in model_data["model"].values()}
    model = model.to(device).to(dtype).eval()
    for tensor in [*model.parameters(), *model.buffers()]:
        if tensor.untyped_storage().data_ptr() in mapped:
            tensor.data = tensor.data.clone()
    return model


def _fair_esm_core(path: Path, model_data: dict):
    import esm.pretrained

    with warnings.catch_warnings():  # embeddings never use the contact head
        warnings.filterwarnings("ignore", message="Regression weights not found")
        return esm.pretrained.load_model_and_alphabet_core(path.stem, model_data)


def _assemble_esm2(path: Path, model_data: dict):
    """fair-esm's ESM2 with the checkpoint's tensors assigned, never initialised."""
    from esm.pretrained import _load_model_and_alphabet_core_v2

    with skeleton():
        model, alphabet, state = _load_model_and_alphabet_core_v2(model_data)
    expected = set(model.state_dict())
    missing, unexpected = expected - set(state) - OPTIONAL_KEYS, set(state) - expected
    if missing or unexpected:
        raise UserError(f"{path}: not the ESM-2 its cfg declares (missing "
                        f"{sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]}); fix: "
                        "re-fetch it with `virnuc-hpc models fetch --repair`")
    model.load_state_dict(state, strict=False, assign=True)
    _zero_missing(model, expected - set(state))
    return model, alphabet


def _zero_missing(model: torch.nn.Module, names: set[str]) -> None:
    """Zeros for what the checkpoint lacks (the contact regression, never initialised)."""
    with torch.no_grad():
        for name in names:
            model.get_parameter(name).zero_()

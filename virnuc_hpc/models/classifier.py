"""VirNucPro's MLP classifier, and a loader for its whole-module `.pth` pickles that never runs
pickled code: a weights_only load with exactly the needed classes allowlisted."""

from __future__ import annotations

import collections
import pickle
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..core.errors import UserError

HIDDEN_DIM = 512
NUM_CLASSES = 2


class MLPClassifier(nn.Module):
    """Linear(in, 512) -> BatchNorm1d -> ReLU -> Dropout(0.5) -> Linear(512, 2)."""

    def __init__(self, input_dim: int = 3328, hidden_dim: int = HIDDEN_DIM,
                 num_class: int = NUM_CLASSES):
        super().__init__()
        self.hidden_layer = nn.Linear(input_dim, hidden_dim)
        self.bn1 = nn.BatchNorm1d(hidden_dim)
        self.output_layer = nn.Linear(hidden_dim, num_class)
        self.dropout = nn.Dropout(0.5)

    @property
    def input_dim(self) -> int:
        return self.hidden_layer.in_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output_layer(self.dropout(F.relu(self.bn1(self.hidden_layer(x)))))


class _PickledMLP(nn.Module):
    """Stands in for `__main__.MLPClassifier` while unpickling; only its state is kept."""


# Everything a train.py-style pickle of the module may name, and nothing else.
PICKLE_ALLOWLIST = [
    (_PickledMLP, "__main__.MLPClassifier"),
    nn.Linear,
    nn.BatchNorm1d,
    nn.Dropout,
    nn.ReLU,
    collections.OrderedDict,
    set,
]


def _unpickle_module(path: Path) -> nn.Module:
    with torch.serialization.safe_globals(PICKLE_ALLOWLIST):
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise UserError(
                f"{path}: refused to load: the pickle asks for something other than the "
                f"VirNucPro MLPClassifier ({first}); fix: use the published VirNucPro .pth or a "
                "model saved the same way"
            ) from exc
        except (RuntimeError, EOFError, OSError) as exc:
            raise UserError(
                f"{path}: unreadable classifier file ({type(exc).__name__}); fix: re-fetch it "
                "with `virnuc-hpc models fetch --repair`"
            ) from exc


def classifier_state(path) -> dict[str, torch.Tensor]:
    """The state dict of a classifier file: a whole-module pickle, or a plain state dict."""
    loaded = _unpickle_module(Path(path))
    state = loaded.state_dict() if isinstance(loaded, nn.Module) else loaded
    if not isinstance(state, dict) or "hidden_layer.weight" not in state:
        raise UserError(f"{path}: not a VirNucPro classifier (no hidden_layer.weight)")
    return state


def load_classifier(path, device="cpu") -> MLPClassifier:
    """MLPClassifier in eval mode (BatchNorm uses running stats, dropout off)."""
    state = classifier_state(path)
    hidden, input_dim = state["hidden_layer.weight"].shape
    model = MLPClassifier(input_dim, hidden, state["output_layer.weight"].shape[0])
    model.load_state_dict(state, strict=True)
    return model.to(device).eval()

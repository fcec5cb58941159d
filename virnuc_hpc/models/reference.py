"""Cross-check the native DNABERT-S against the published model code on the same weights.

The published code is the hub's remote code (`bert_layers.py` with its sibling modules, as in a
`zhihan1996/DNABERT-S` snapshot). virnuc_hpc never runs it in a pipeline; this check imports it
only when a user names its folder (`virnuc-hpc models check-reference --code DIR`). It runs the
published model the way VirNucPro does (one sequence at a time, no padding, fp32 PyTorch
attention, mean of the last hidden state over every token) and the native model the way tasks
do (length-sorted, token-budgeted, padded batches), and reports the largest difference."""

from __future__ import annotations

import hashlib
import importlib
import json
import sys
import types
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..core.errors import UserError
from .dnabert import load_dnabert, read_state_dict

PUBLISHED_MODULE = "bert_layers"
CONFIG_MODULE = "configuration_bert"
TRITON_MODULE = "flash_attn_triton"
TOLERANCE = 1e-4  # max abs difference of mean embeddings (docs/spec-models.md)
LENGTHS = (300, 500, 17, 3000)  # bp; 3000 bp runs past the 512-token ALiBi starting size


@dataclass(frozen=True)
class ReferenceReport:
    sequences: int
    max_abs: float
    worst: str
    tolerance: float
    tokens_equal: bool | None  # our token ids == transformers' tokenizer's (None: not checked)

    @property
    def ok(self) -> bool:
        return self.max_abs <= self.tolerance and self.tokens_equal is not False


def import_published(code_dir) -> types.ModuleType:
    """Import `code_dir/bert_layers.py` as a module of a throwaway package, so that its
    relative imports find its siblings. Its Triton kernel is made unimportable, as VirNucPro's
    README has users do: the published code then takes its fp32 PyTorch attention path."""
    code_dir = Path(code_dir).resolve()
    if not (code_dir / f"{PUBLISHED_MODULE}.py").is_file():
        raise UserError(f"{code_dir}: no {PUBLISHED_MODULE}.py; fix: give --code the folder of "
                        "a zhihan1996/DNABERT-S snapshot (the hub's remote code)")
    package = "_virnuc_published_" + hashlib.sha256(str(code_dir).encode()).hexdigest()[:12]
    if package not in sys.modules:
        module = types.ModuleType(package)
        module.__path__ = [str(code_dir)]
        sys.modules[package] = module
        sys.modules[f"{package}.{TRITON_MODULE}"] = None  # `import` of it raises ImportError
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            layers = importlib.import_module(f"{package}.{PUBLISHED_MODULE}")
    except ModuleNotFoundError as exc:
        raise _missing(code_dir, package, exc.name) from exc
    layers.flash_attn_qkvpacked_func = None
    return layers


def _missing(code_dir: Path, package: str, name: str | None) -> UserError:
    if name and name.startswith(package + "."):
        sibling = name.removeprefix(package + ".")
        return UserError(f"{code_dir}: the published code imports {sibling}.py, which is not "
                         "there; fix: use the whole snapshot folder (bert_layers.py, "
                         "bert_padding.py, configuration_bert.py)")
    return UserError(f"{code_dir}: the published code needs the module {name!r}; fix: "
                     f"pip install {name} (e.g. einops) into this environment")


def published_config(layers: types.ModuleType, config_path: Path):
    """The config object the published code expects: its own BertConfig class when the folder
    has configuration_bert.py, else transformers' BertConfig with the same fields."""
    package = layers.__name__.rsplit(".", 1)[0]
    config_dir = Path(sys.modules[package].__path__[0])
    if (config_dir / f"{CONFIG_MODULE}.py").is_file():
        config_class = importlib.import_module(f"{package}.{CONFIG_MODULE}").BertConfig
    else:
        from transformers import BertConfig as config_class
    return config_class(**json.loads(Path(config_path).read_text()))


def published_model(layers: types.ModuleType, config_path: Path, state: dict) -> torch.nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = layers.BertModel(published_config(layers, config_path))
    model.load_state_dict(state, strict=True)
    return model.eval()


def random_state(state: dict, seed: int) -> dict:
    """Fresh random tensors of the same names and shapes (the tiny profile's recipe)."""
    from .tiny import random_param

    gen = torch.Generator().manual_seed(seed)
    return {name: random_param(name, tuple(t.shape), gen) for name, t in state.items()}


def random_dna(seed: int, count: int) -> list[str]:
    rng = np.random.default_rng(seed)
    lengths = [LENGTHS[i % len(LENGTHS)] for i in range(count)]
    return ["".join(rng.choice(list("ACGT"), size=n)) for n in lengths]


@torch.inference_mode()
def published_means(model: torch.nn.Module, token_ids: list[list[int]]) -> np.ndarray:
    """VirNucPro's call: model(ids)[0], then the mean over every token of the one sequence."""
    rows = [model(torch.tensor([ids]))[0][0].mean(0) for ids in token_ids]
    return torch.stack(rows).float().numpy()


def tokens_match_transformers(folder: Path, seqs: list[str], ours: list[list[int]]) -> bool | None:
    try:
        from transformers import PreTrainedTokenizerFast
    except ImportError:
        return None
    theirs = PreTrainedTokenizerFast.from_pretrained(str(folder))(seqs)["input_ids"]
    return [list(t) for t in theirs] == ours


def check_dnabert(code_dir, weights_dir, *, random_weights: bool = False, seed: int = 0,
                  count: int = 24, tokens_per_batch: int = 1024,
                  tolerance: float = TOLERANCE) -> ReferenceReport:
    """Compare mean embeddings of `count` random DNA sequences, native vs published code."""
    from .encoders import DnabertEncoder

    weights_dir = Path(weights_dir)
    tokenizer, ours = load_dnabert(weights_dir)
    state = read_state_dict(weights_dir)
    if random_weights:
        state = random_state(state, seed)
        ours.load_state_dict(state, strict=True)
    theirs = published_model(import_published(code_dir), weights_dir / "config.json", state)
    seqs = random_dna(seed, count)
    token_ids = tokenizer(seqs)["input_ids"]
    encoder = DnabertEncoder(ours, tokenizer, "cpu", "fp32", tokens_per_batch)
    diff = np.abs(encoder.embed(seqs) - published_means(theirs, token_ids)).max(axis=1)
    worst = int(diff.argmax())
    return ReferenceReport(count, float(diff[worst]), f"#{worst}, {len(seqs[worst])} bp",
                           tolerance, tokens_match_transformers(weights_dir, seqs, token_ids))

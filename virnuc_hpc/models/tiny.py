"""Tiny random models of the real architectures, written byte-for-byte deterministically from a
seed in the published on-disk layouts. Their outputs are NOT biologically meaningful."""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys
import threading
import types
from argparse import Namespace
from pathlib import Path

import torch

from .dnabert import DnabertConfig
from .registry import TINY_CLASSIFIER_FILE as CLASSIFIER_FILE
from .registry import TINY_DIMS, TINY_ESM_FILE

SEED = 20240611
SPECIAL_TOKENS = ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]
TINY_DNABERT = DnabertConfig(
    vocab_size=1024,
    hidden_size=TINY_DIMS["dnabert"],
    num_hidden_layers=2,
    num_attention_heads=12,  # 12 heads like the real model: exercises the non-power-of-2 ALiBi rule
    intermediate_size=192,
    layer_norm_eps=1e-12,
)
TINY_ESM = {"layers": 2, "dim": TINY_DIMS["esm"], "heads": 4}
CLASSIFIER_HIDDEN = 512


def tiny_dims() -> tuple[int, int]:
    return TINY_DNABERT.hidden_size, TINY_ESM["dim"]


def _generator(seed: int, salt: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1000 + salt)


def random_param(name: str, shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    noise = torch.randn(shape, generator=gen)
    if "norm" in name.lower() and name.endswith("weight"):
        return 1.0 + 0.1 * noise
    if name.endswith("bias") or len(shape) == 1:
        return 0.1 * noise
    if "embed" in name:
        return noise
    return noise / math.sqrt(shape[-1])


def _torch_bytes(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _json_bytes(obj) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()


# ---------------------------------------------------------------- DNABERT-S


def dnabert_state_shapes(cfg: DnabertConfig) -> dict[str, tuple[int, ...]]:
    """The published DNABERT-S state-dict keys and shapes (docs/spec-models.md), written out
    independently of the nn.Module so that strict loading is a real check."""
    hid, inter = cfg.hidden_size, cfg.intermediate_size
    shapes = {
        "embeddings.word_embeddings.weight": (cfg.vocab_size, hid),
        "embeddings.token_type_embeddings.weight": (cfg.type_vocab_size, hid),
        "embeddings.LayerNorm.weight": (hid,),
        "embeddings.LayerNorm.bias": (hid,),
    }
    for i in range(cfg.num_hidden_layers):
        layer = f"encoder.layer.{i}."
        shapes |= {
            layer + "attention.self.Wqkv.weight": (3 * hid, hid),
            layer + "attention.self.Wqkv.bias": (3 * hid,),
            layer + "attention.output.dense.weight": (hid, hid),
            layer + "attention.output.dense.bias": (hid,),
            layer + "attention.output.LayerNorm.weight": (hid,),
            layer + "attention.output.LayerNorm.bias": (hid,),
            layer + "mlp.gated_layers.weight": (2 * inter, hid),
            layer + "mlp.wo.weight": (hid, inter),
            layer + "mlp.wo.bias": (hid,),
            layer + "mlp.layernorm.weight": (hid,),
            layer + "mlp.layernorm.bias": (hid,),
        }
    return shapes | {"pooler.dense.weight": (hid, hid), "pooler.dense.bias": (hid,)}


def _dna_corpus(seed: int, n_lines: int = 400, length: int = 300) -> list[str]:
    """Seeded DNA from a skewed Markov chain (so BPE merge counts rarely tie)."""
    gen = _generator(seed, 1)
    transition = torch.rand((4, 4), generator=gen) ** 2 + 0.05
    cumulative = torch.cumsum(transition / transition.sum(1, keepdim=True), 1).tolist()
    lines = []
    for _ in range(n_lines):
        state, seq = 0, []
        for u in torch.rand(length, generator=gen).tolist():
            state = next((i for i, c in enumerate(cumulative[state]) if u <= c), 3)
            seq.append("ACGT"[state])
        lines.append("".join(seq))
    return lines


def _dnabert_tokenizer_json(seed: int, vocab_size: int) -> bytes:
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False
    )
    tokenizer.train_from_iterator(_dna_corpus(seed), trainer=trainer)
    cls_id, sep_id = (SPECIAL_TOKENS.index(t) for t in ("[CLS]", "[SEP]"))
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return tokenizer.to_str(pretty=True).encode()


def _dnabert_config_json(cfg: DnabertConfig) -> dict:
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "alibi_starting_size": cfg.alibi_starting_size,
        "attention_probs_dropout_prob": 0.0,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": cfg.hidden_size,
        "initializer_range": 0.02,
        "intermediate_size": cfg.intermediate_size,
        "layer_norm_eps": cfg.layer_norm_eps,
        "max_position_embeddings": 512,
        "num_attention_heads": cfg.num_attention_heads,
        "num_hidden_layers": cfg.num_hidden_layers,
        "pad_token_id": cfg.pad_token_id,
        "type_vocab_size": cfg.type_vocab_size,
        "vocab_size": cfg.vocab_size,
        "torch_dtype": "float32",
        "biologically_meaningful": False,
    }


def dnabert_files(seed: int = SEED, cfg: DnabertConfig = TINY_DNABERT) -> dict[str, bytes]:
    """A DNABERT-S folder: config.json, pytorch_model.bin, tokenizer files."""
    gen = _generator(seed, 2)
    state = {k: random_param(k, s, gen) for k, s in dnabert_state_shapes(cfg).items()}
    return {"config.json": _json_bytes(_dnabert_config_json(cfg)),
            "pytorch_model.bin": _torch_bytes(state),
            **dnabert_tokenizer_files(seed, cfg.vocab_size)}


def dnabert_tokenizer_files(seed: int = SEED, vocab_size: int = TINY_DNABERT.vocab_size
                            ) -> dict[str, bytes]:
    """A DNABERT-S folder's tokenizer files: a BPE of `vocab_size` on seeded DNA."""
    special = {"unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]",
               "pad_token": "[PAD]", "mask_token": "[MASK]"}
    tokenizer_config = special | {"tokenizer_class": "PreTrainedTokenizerFast",
                                  "model_max_length": 1_000_000_000}
    return {"tokenizer.json": _dnabert_tokenizer_json(seed, vocab_size),
            "tokenizer_config.json": _json_bytes(tokenizer_config),
            "special_tokens_map.json": _json_bytes(special)}


# ---------------------------------------------------------------- ESM-2


def esm_checkpoint_key(name: str) -> str | None:
    """fair-esm checkpoints prefix keys; the contact regression lives in a separate file."""
    if name.startswith("contact_head.regression."):
        return None
    prefix = "encoder." if name.startswith("lm_head") else "encoder.sentence_encoder."
    return prefix + name


def esm_checkpoint(seed: int = SEED, layers: int = 2, dim: int = 64, heads: int = 4) -> dict:
    """A fair-esm ESM-2 checkpoint: {'model': prefixed state, 'cfg': {'model': Namespace}}."""
    from esm.data import Alphabet
    from esm.model.esm2 import ESM2

    with torch.random.fork_rng(devices=[]):
        model = ESM2(layers, dim, heads, Alphabet.from_architecture("ESM-1b"), token_dropout=True)
    gen = _generator(seed, 3)
    with torch.no_grad():
        for name, param in sorted(model.named_parameters()):
            param.copy_(random_param(name, tuple(param.shape), gen))
    state = {}
    for name, tensor in model.state_dict().items():
        key = esm_checkpoint_key(name)
        if key is not None:
            state[key] = tensor.clone()
    cfg = Namespace(_name="ESM2", arch="esm2", encoder_layers=layers, encoder_embed_dim=dim,
                    encoder_ffn_embed_dim=4 * dim, encoder_attention_heads=heads,
                    token_dropout=True, max_positions=1024, biologically_meaningful=False)
    return {"model": state, "cfg": {"model": cfg}}


def esm_files(seed: int = SEED) -> dict[str, bytes]:
    ckpt = esm_checkpoint(seed, TINY_ESM["layers"], TINY_ESM["dim"], TINY_ESM["heads"])
    return {TINY_ESM_FILE: _torch_bytes(ckpt)}


# ---------------------------------------------------------------- classifier

# VirNucPro's train.py defines MLPClassifier in the script it runs, so its pickles refer to
# `__main__.MLPClassifier`. This source is run either as a real `__main__` script in a child
# interpreter, or in-process inside a stand-in `__main__` module (fast); both give equal bytes.
_TRAIN_LIKE_SOURCE = """
import torch
from torch import nn
import torch.nn.functional as F

class MLPClassifier(nn.Module):
    def __init__(self, input_dim, hidden_dim, num_class):
        super().__init__()
        self.hidden_layer = nn.Linear(input_dim, hidden_dim)
        self.bn1 = nn.BatchNorm1d(hidden_dim)
        self.output_layer = nn.Linear(hidden_dim, num_class)
        self.dropout = nn.Dropout(0.5)
        nn.init.xavier_uniform_(self.hidden_layer.weight)
        nn.init.xavier_uniform_(self.output_layer.weight)

    def forward(self, x):
        return self.output_layer(self.dropout(F.relu(self.bn1(self.hidden_layer(x)))))

def build(seed, input_dim, hidden_dim):
    torch.manual_seed(seed)
    model = MLPClassifier(input_dim, hidden_dim, 2)
    with torch.no_grad():
        model.bn1.running_mean.normal_(0.0, 0.1)
        model.bn1.running_var.uniform_(0.5, 1.5)
        model.bn1.weight.uniform_(0.5, 1.5)
        model.bn1.bias.normal_(0.0, 0.1)
        model.hidden_layer.bias.normal_(0.0, 0.1)
        model.bn1.num_batches_tracked.fill_(1000)
    return model.eval()
"""
_SAVE_TAIL = """
import io, sys
buffer = io.BytesIO()
torch.save(build(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])), buffer)
open(sys.argv[1], "wb").write(buffer.getvalue())
"""
_main_swap = threading.Lock()


def train_style_pth_subprocess(path: Path, seed: int, input_dim: int,
                               hidden_dim: int = CLASSIFIER_HIDDEN) -> None:
    """torch.save(whole module) from a real `__main__` script, as `python train.py` does."""
    argv = [sys.executable, "-c", _TRAIN_LIKE_SOURCE + _SAVE_TAIL, str(path), str(seed),
            str(input_dim), str(hidden_dim)]
    subprocess.run(argv, check=True, capture_output=True, timeout=300)


def train_style_pth_bytes(seed: int, input_dim: int, hidden_dim: int = CLASSIFIER_HIDDEN) -> bytes:
    """The same bytes in-process: the class is defined in a stand-in `__main__` module that is
    put in sys.modules only while pickling."""
    stand_in = types.ModuleType("__main__")
    exec(compile(_TRAIN_LIKE_SOURCE, "<train-like>", "exec"), stand_in.__dict__)
    with torch.random.fork_rng(devices=[]):
        model = stand_in.build(seed, input_dim, hidden_dim)
    with _main_swap:
        real_main = sys.modules["__main__"]
        sys.modules["__main__"] = stand_in
        try:
            return _torch_bytes(model)
        finally:
            sys.modules["__main__"] = real_main


def classifier_files(seed: int = SEED, input_dim: int | None = None) -> dict[str, bytes]:
    return {CLASSIFIER_FILE: train_style_pth_bytes(seed, input_dim or sum(tiny_dims()))}


def files_for(kind: str, seed: int = SEED, chunk_size: int = 0) -> dict[str, bytes]:
    """Generated file contents for a tiny entry of `kind` (chunk size salts the classifier)."""
    if kind == "dnabert":
        return dnabert_files(seed)
    if kind == "esm":
        return esm_files(seed)
    return classifier_files(seed + chunk_size)

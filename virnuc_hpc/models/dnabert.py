"""DNABERT-S (MosaicBERT) as a plain nn.Module: loads the published weights with strict keys,
runs without any code from the hub. Semantics follow docs/spec-models.md.

`DnabertModel.packed` is the same math on a packed batch (packed.py: token-wise steps in fixed
chunks, attention in fixed groups with the ALiBi bias of the group's width), so that a row's
bits do not depend on its batch."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..core.errors import ConfigError, UserError
from .packed import Group, Packed
from .skeleton import skeleton

ATTENTION_IMPLS = ("eager", "sdpa")
PAD_BIAS = -10000.0  # the published additive mask value
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


@dataclass(frozen=True)
class DnabertConfig:
    vocab_size: int = 4096
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    alibi_starting_size: int = 512

    @classmethod
    def from_json(cls, path: Path) -> "DnabertConfig":
        raw = json.loads(Path(path).read_text())
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in raw.items() if k in names})

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads


def alibi_slopes(n_heads: int) -> list[float]:
    """ALiBi head slopes; for n not a power of two, the 2^k slopes then every second
    slope of the 2^(k+1) list."""
    if math.log2(n_heads).is_integer():
        start = 2.0 ** (-8.0 / n_heads)
        return [start ** (h + 1) for h in range(n_heads)]
    base = 2 ** math.floor(math.log2(n_heads))
    return alibi_slopes(base) + alibi_slopes(2 * base)[0::2][: n_heads - base]


def alibi_bias(n_heads: int, length: int, device=None) -> torch.Tensor:
    """[1, heads, L, L] float32 bias: -slope_h * |i - j|."""
    pos = torch.arange(length, device=device)
    distance = (pos[None, :] - pos[:, None]).abs()
    slopes = torch.tensor(alibi_slopes(n_heads), device=device, dtype=torch.float32)
    return (slopes[:, None, None] * -distance).unsqueeze(0)


class Embeddings(nn.Module):
    def __init__(self, cfg: DnabertConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.token_type_embeddings = nn.Embedding(cfg.type_vocab_size, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        token_type = self.token_type_embeddings.weight[0]
        return self.LayerNorm(self.word_embeddings(input_ids) + token_type)


class SelfAttention(nn.Module):
    def __init__(self, cfg: DnabertConfig):
        super().__init__()
        self.heads, self.head_dim = cfg.num_attention_heads, cfg.head_dim
        self.Wqkv = nn.Linear(cfg.hidden_size, 3 * cfg.hidden_size)
        self.impl = "eager"

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        batch, length, hidden = x.shape
        qkv = self.Wqkv(x).view(batch, length, 3, self.heads, self.head_dim)
        q, k, v = (qkv[:, :, i].transpose(1, 2) for i in range(3))
        return self.attend(q, k, v, bias).transpose(1, 2).reshape(batch, length, hidden)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
               bias: torch.Tensor) -> torch.Tensor:
        """[B, heads, T, head_dim] attention with the additive fp32 `bias`."""
        if self.impl == "sdpa":
            return F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype))
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim) + bias
        return torch.softmax(scores, dim=-1) @ v

    def group(self, group: Group, qkv: torch.Tensor, alibi: torch.Tensor,
              out: torch.Tensor) -> None:
        """Attention of one packed group, written back into `out` (packed rows)."""
        grid = group.gather(qkv).view(group.rows, group.width, 3, self.heads, self.head_dim)
        q, k, v = grid.permute(2, 0, 3, 1, 4).unbind(0)
        pad = (1.0 - group.keys()[:, None, None, :].float()) * PAD_BIAS
        group.scatter(self.attend(q, k, v, alibi + pad), out)


class SelfOutput(nn.Module):
    def __init__(self, cfg: DnabertConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def forward(self, hidden: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(hidden) + residual)


class Attention(nn.Module):
    def __init__(self, cfg: DnabertConfig):
        super().__init__()
        self.self = SelfAttention(cfg)
        self.output = SelfOutput(cfg)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return self.output(self.self(x, bias), x)


class GatedMLP(nn.Module):
    def __init__(self, cfg: DnabertConfig):
        super().__init__()
        self.intermediate = cfg.intermediate_size
        self.gated_layers = nn.Linear(cfg.hidden_size, 2 * cfg.intermediate_size, bias=False)
        self.wo = nn.Linear(cfg.intermediate_size, cfg.hidden_size)
        self.layernorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.gated_layers(x)
        gate, value = h[..., : self.intermediate], h[..., self.intermediate :]
        return self.layernorm(self.wo(F.gelu(gate) * value) + x)


class Layer(nn.Module):
    def __init__(self, cfg: DnabertConfig):
        super().__init__()
        self.attention = Attention(cfg)
        self.mlp = GatedMLP(cfg)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.attention(x, bias))

    def after_attention(self, attended: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The rest of the layer once attention has run: output, norms, the gated MLP."""
        return self.mlp(self.attention.output(attended, x))


class Encoder(nn.Module):
    def __init__(self, cfg: DnabertConfig):
        super().__init__()
        self.layer = nn.ModuleList(Layer(cfg) for _ in range(cfg.num_hidden_layers))


class Pooler(nn.Module):
    """Present in the checkpoint (kept so strict loading works); VirNucPro does not use it."""

    def __init__(self, cfg: DnabertConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.hidden_size)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(hidden[:, 0]))


class DnabertModel(nn.Module):
    """forward(input_ids [B,T], attention_mask [B,T]) -> last hidden state [B,T,H], padded
    positions zeroed. The fp32 'eager' path is the reference; 'sdpa' is for bf16/fp16."""

    def __init__(self, cfg: DnabertConfig):
        super().__init__()
        self.config = cfg
        self.embeddings = Embeddings(cfg)
        self.encoder = Encoder(cfg)
        self.pooler = Pooler(cfg)

    @property
    def hidden_size(self) -> int:
        return self.config.hidden_size

    def set_attention(self, impl: str) -> "DnabertModel":
        if impl not in ATTENTION_IMPLS:
            raise ConfigError(f"attention {impl!r} unknown; valid: {', '.join(ATTENTION_IMPLS)}")
        for layer in self.encoder.layer:
            layer.attention.self.impl = impl
        return self

    def attention_bias(self, attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        length = attention_mask.shape[1]
        alibi = alibi_bias(self.config.num_attention_heads, length, attention_mask.device)
        pad = (1.0 - attention_mask[:, None, None, :].float()) * PAD_BIAS
        return (alibi + pad).to(dtype)

    def packed(self, batch: Packed) -> torch.Tensor:
        """[padded + 1, H] last hidden state of a packed batch (a buffer: Packed.buffer):
        `forward`'s rows for every real token, each computed in fixed shapes."""
        cfg = self.config
        x = batch.buffer(cfg.hidden_size, self.embeddings.word_embeddings.weight)
        batch.map(x, self.embeddings, batch.tokens)
        qkv = batch.buffer(3 * cfg.hidden_size, x)
        attended = batch.buffer(cfg.hidden_size, x)
        alibi = {g.width: alibi_bias(cfg.num_attention_heads, g.width, x.device)
                 for g in batch.groups}
        for layer in self.encoder.layer:
            batch.each(partial(linear_into, layer.attention.self.Wqkv), x, qkv)
            for group in batch.groups:
                layer.attention.self.group(group, qkv, alibi[group.width], attended)
            batch.map(x, layer.after_attention, attended, x)
        return x

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        hidden = self.embeddings(input_ids)
        bias = self.attention_bias(attention_mask, torch.float32)
        for layer in self.encoder.layer:
            hidden = layer(hidden, bias)
        return hidden * attention_mask[..., None].to(hidden.dtype)


def linear_into(linear: nn.Linear, x: torch.Tensor, out: torch.Tensor) -> None:
    """`linear(x)` written straight into `out` (the same GEMM as nn.Linear's, no copy)."""
    torch.addmm(linear.bias, x, linear.weight.t(), out=out)


def masked_mean(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """VirNucPro pooling for DNABERT-S: mean over every real token, [CLS] and [SEP] included."""
    mask = attention_mask[..., None].to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1)


def read_state_dict(folder: Path) -> dict[str, torch.Tensor]:
    safetensors_path, bin_path = (folder / name for name in WEIGHT_FILES)
    if safetensors_path.is_file():
        from safetensors.torch import load_file

        return load_file(str(safetensors_path))
    if bin_path.is_file():
        return torch.load(bin_path, map_location="cpu", weights_only=True)
    raise UserError(f"{folder}: no {' or '.join(WEIGHT_FILES)}; fix: point at a DNABERT-S folder")


class DnabertTokenizer:
    """The folder's `tokenizer.json` run by the `tokenizers` library: the same Rust tokenizer
    (normalizer, BPE, [CLS]/[SEP] post-processor) that transformers' PreTrainedTokenizerFast
    wraps, without importing transformers (seconds off every task's start)."""

    def __init__(self, folder: Path):
        from tokenizers import Tokenizer

        self.backend = Tokenizer.from_file(str(folder / "tokenizer.json"))
        special = _special_tokens(folder)
        self.pad_token_id = self._id(special.get("pad_token", "[PAD]"))
        self.cls_token_id = self._id(special.get("cls_token", "[CLS]"))
        self.sep_token_id = self._id(special.get("sep_token", "[SEP]"))

    def _id(self, token) -> int:
        token = token["content"] if isinstance(token, dict) else token
        index = self.backend.token_to_id(token)
        if index is None:
            raise UserError(f"tokenizer has no {token!r} token; fix: `models fetch --repair`")
        return index

    def __call__(self, texts, add_special_tokens: bool = True) -> dict:
        single = isinstance(texts, str)
        batch = self.backend.encode_batch([texts] if single else list(texts),
                                          add_special_tokens=add_special_tokens)
        ids = [encoding.ids for encoding in batch]
        return {"input_ids": ids[0] if single else ids}


def _special_tokens(folder: Path) -> dict:
    for name in ("special_tokens_map.json", "tokenizer_config.json"):
        if (folder / name).is_file():
            return json.loads((folder / name).read_text())
    return {}


def load_dnabert(path, device="cpu", dtype: torch.dtype = torch.float32):
    """Load (tokenizer, DnabertModel) from a DNABERT-S folder, on `device` at `dtype`, eval
    mode. Built as a skeleton (skeleton.py) and given the file's tensors (strict keys): nothing is
    initialised only to be overwritten."""
    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise UserError(f"{folder}: no config.json; fix: point at a DNABERT-S model folder")
    model = assemble_dnabert(folder, read_state_dict(folder))
    return DnabertTokenizer(folder), model.to(device).to(dtype).eval()


def assemble_dnabert(folder: Path, state: dict[str, torch.Tensor]) -> "DnabertModel":
    """The folder's architecture as a skeleton, given `state` (strict keys)."""
    with skeleton():
        model = DnabertModel(DnabertConfig.from_json(folder / "config.json"))
    model.load_state_dict(state, strict=True, assign=True)
    return model

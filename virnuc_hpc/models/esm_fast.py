"""A fused-attention forward for fair-esm's ESM-2, for bf16/fp16 inference.

Same math as `esm.model.esm2.ESM2.forward` up to `representations[num_layers]`:
token-dropout rescale (x0.88 with no mask tokens), padded positions zeroed, pre-LN layers
with rotary q/k, exact (erf) GELU, `emb_layer_norm_after` at the end. What changes:

- q|k|v is one GEMM (the three weights are fused into one tensor; the model's own
  `q_proj`/`k_proj`/`v_proj` parameters become views of it, so no memory is duplicated);
- rotary cos/sin are built from an fp32 inverse-frequency table and applied in fp32
  (fair-esm's buffer turns bf16 with the model, which shifts positions above 256);
- attention is `F.scaled_dot_product_attention` with a boolean key-padding mask;
- no attention maps, no LM head; the final layer norm runs in fp32;
- optionally (`compile_layers=True`) each layer runs through one `torch.compile`d block with
  dynamic shapes: one graph shared by every layer, compiled on the first batch.

`FastEsm2.packed` is the same math on a packed batch (packed.py): every token-wise step in
fixed chunks, attention and pooling in fixed groups, rotary from tables built in fixed blocks,
so that a row's bits do not depend on its batch; it runs at any precision, fp32 included.

Used on a model that is already on its device and dtype (fusing ties the views to them).
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from esm.model.esm2 import ESM2
from torch import nn

from .packed import BlockTable, Group, Packed

MASK_RATIO_TRAIN = 0.15 * 0.8  # ESM-2 token dropout: inference rescale is 1 - 0.12 = 0.88


def rotary_tables(length: int, head_dim: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin [length, head_dim] in fp32, laid out as fair-esm's `RotaryEmbedding`."""
    inv_freq = 1.0 / (10000 ** (torch.arange(0, head_dim, 2, device=device).float() / head_dim))
    freqs = torch.outer(torch.arange(length, device=device, dtype=torch.float32), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate [B, H, T, D] `x` in fp32 and return it in its own dtype."""
    xf = x.float()
    x1, x2 = xf.chunk(2, dim=-1)
    return (xf * cos + torch.cat((-x2, x1), dim=-1) * sin).to(x.dtype)


def fuse_qkv(attn: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One [3E, E] weight (and [3E] bias) for q|k|v; the projections become views of it."""
    projections = (attn.q_proj, attn.k_proj, attn.v_proj)
    with torch.no_grad():
        weight = torch.cat([p.weight for p in projections])
        bias = None if attn.q_proj.bias is None else torch.cat([p.bias for p in projections])
        for i, proj in enumerate(projections):
            proj.weight.data = weight[i * attn.embed_dim : (i + 1) * attn.embed_dim]
            if bias is not None:
                proj.bias.data = bias[i * attn.embed_dim : (i + 1) * attn.embed_dim]
    return weight, bias


def rotary_rows(head_dim: int) -> BlockTable:
    """cos|sin [positions, 2 * head_dim] in fp32 (rotary_tables' values), in fixed blocks."""
    def build(positions: torch.Tensor) -> torch.Tensor:
        inv_freq = 1.0 / (10000 ** (torch.arange(0, head_dim, 2, device=positions.device)
                                    .float() / head_dim))
        freqs = torch.outer(positions.float(), inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        return torch.cat((emb.cos(), emb.sin()), dim=-1)
    return BlockTable(build)


def attention(layer: nn.Module, qkv, x, mask, cos, sin) -> torch.Tensor:
    """Self-attention of a padded batch [B, T, E] with fused q|k|v and SDPA."""
    batch, length, dim = x.shape
    heads = layer.self_attn.num_heads
    packed = F.linear(x, *qkv).view(batch, length, 3, heads, dim // heads)
    q, k, v = packed.permute(2, 0, 3, 1, 4).unbind(0)
    q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    return layer.self_attn.out_proj(out.transpose(1, 2).reshape(batch, length, dim))


def block(layer: nn.Module, qkv, x, mask, cos, sin) -> torch.Tensor:
    """One pre-LN transformer layer on a padded batch."""
    x = x + attention(layer, qkv, layer.self_attn_layer_norm(x), mask, cos, sin)
    return x + layer.fc2(F.gelu(layer.fc1(layer.final_layer_norm(x))))


def embed_rows(model: ESM2, tokens: torch.Tensor,
               scale: torch.Tensor | None = None) -> torch.Tensor:
    """Embeddings of a chunk of tokens; with token dropout, <mask> zeroed and each token
    rescaled by its sequence's `scale` (1 - its <mask> share)."""
    out = model.embed_scale * model.embed_tokens(tokens)
    if scale is None:
        return out
    out = out.masked_fill(tokens.eq(model.mask_idx).unsqueeze(-1), 0.0)
    return out * (1 - MASK_RATIO_TRAIN) / scale.unsqueeze(-1)


def final_norm(norm: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
    """`emb_layer_norm_after` in fp32."""
    return F.layer_norm(x.float(), norm.normalized_shape, norm.weight.float(),
                        norm.bias.float(), norm.eps)


def pre_attention(layer: nn.Module, weights, x: torch.Tensor) -> torch.Tensor:
    """q|k|v of a chunk of packed tokens (before rotary)."""
    return F.linear(layer.self_attn_layer_norm(x), *weights)


def pre_attention_into(layer: nn.Module, weights, x: torch.Tensor, out: torch.Tensor) -> None:
    """`pre_attention` written straight into `out` (the chunk's rows of the q|k|v buffer)."""
    weight, bias = weights
    normed = layer.self_attn_layer_norm(x)
    if bias is None:
        torch.mm(normed, weight.t(), out=out)
    else:
        torch.addmm(bias, normed, weight.t(), out=out)


def post_attention_into(layer: nn.Module, x: torch.Tensor, attended: torch.Tensor) -> None:
    """`post_attention` in place on the chunk's rows of `x` (the same sums, no copy)."""
    x.add_(layer.self_attn.out_proj(attended))
    x.add_(layer.fc2(F.gelu(layer.fc1(layer.final_layer_norm(x)))))


def into_last(step, *args) -> None:
    """A compiled step's result copied into its last argument."""
    args[-1].copy_(step(*args[:-1]))


def into_first(step, *args) -> None:
    """A compiled step's result copied into its first tensor argument (after the layer)."""
    args[1].copy_(step(*args))


def post_attention(layer: nn.Module, x: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
    """The rest of a pre-LN layer on a chunk: output projection, residual, feed-forward."""
    x = x + layer.self_attn.out_proj(attended)
    return x + layer.fc2(F.gelu(layer.fc1(layer.final_layer_norm(x))))


class FastEsm2(nn.Module):
    """`FastEsm2(model)(tokens) -> [B, T, E]`: the last-layer representation of `model`."""

    def __init__(self, model: ESM2, compile_layers: bool = False):
        super().__init__()
        if not isinstance(model, ESM2):
            raise TypeError(f"FastEsm2 needs an esm.model.esm2.ESM2, got {type(model).__name__}")
        self.model = model
        self.heads = model.attention_heads
        self.head_dim = model.embed_dim // model.attention_heads
        self.qkv = [fuse_qkv(layer.self_attn) for layer in model.layers]
        # plain functions, never bound methods: a FastEsm2 must not hold itself in a reference
        # cycle (it would keep its model alive past LoadedModels.release, until a gc)
        self.step = torch.compile(block, dynamic=True) if compile_layers else block
        self.rotary = rotary_rows(self.head_dim)
        self.pre, self.post = pre_attention_into, post_attention_into
        if compile_layers:  # the packed path's chunks have one static shape
            self.pre = partial(into_last, torch.compile(pre_attention, dynamic=False))
            self.post = partial(into_first, torch.compile(post_attention, dynamic=False))

    def embed(self, tokens: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        model = self.model
        x = model.embed_scale * model.embed_tokens(tokens)
        if model.token_dropout:
            masked = tokens.eq(model.mask_idx)
            x = x.masked_fill(masked.unsqueeze(-1), 0.0)
            observed = masked.sum(-1).to(x.dtype) / (~padding).sum(-1)
            x = x * (1 - MASK_RATIO_TRAIN) / (1 - observed)[:, None, None]
        return x * (1 - padding.unsqueeze(-1).type_as(x))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        padding = tokens.eq(self.model.padding_idx)
        x = self.embed(tokens, padding)
        mask = (~padding)[:, None, None, :] if padding.any() else None
        cos, sin = rotary_tables(tokens.shape[1], self.head_dim, tokens.device)
        for layer, qkv in zip(self.model.layers, self.qkv):
            x = self.step(layer, qkv, x, mask, cos, sin)
        norm = self.model.emb_layer_norm_after
        return F.layer_norm(x.float(), norm.normalized_shape, norm.weight.float(),
                            norm.bias.float(), norm.eps)

    # ---- the packed (fixed-shape) path ----------------------------------------------------

    def packed(self, batch: Packed) -> torch.Tensor:
        """[padded + 1, E] float32 last-layer representation of a packed batch (a buffer:
        Packed.buffer), after `emb_layer_norm_after`: `forward`'s rows for every real token."""
        model = self.model
        x = self.packed_embed(batch)
        qkv = batch.buffer(3 * model.embed_dim, x)
        attended = batch.buffer(model.embed_dim, x)
        for layer, weights in zip(model.layers, self.qkv):
            batch.each(partial(self.pre, layer, weights), x, qkv)
            for group in batch.groups:
                self.group_attention(group, qkv, attended)
            batch.each(partial(self.post, layer), x, attended)
        out = batch.buffer(model.embed_dim, x, torch.float32)
        return batch.map(out, partial(final_norm, model.emb_layer_norm_after), x)

    def packed_embed(self, batch: Packed) -> torch.Tensor:
        """Token embeddings with the token-dropout rescale of each token's own sequence."""
        model = self.model
        x = batch.buffer(model.embed_dim, model.embed_tokens.weight)
        scale = self.dropout_scale(batch, x.dtype)
        if scale is None:
            return batch.map(x, partial(embed_rows, model), batch.tokens)
        return batch.map(x, partial(embed_rows, model), batch.tokens, scale)

    def dropout_scale(self, batch: Packed, dtype: torch.dtype) -> torch.Tensor | None:
        """Per token, 1 - its sequence's share of <mask> tokens (fair-esm's token dropout), in
        the model's dtype as fair-esm computes it; None without token dropout."""
        if not self.model.token_dropout:
            return None
        real = sum(batch.lengths)
        masked = torch.zeros(len(batch.lengths), dtype=torch.int64, device=batch.tokens.device)
        masked.index_add_(0, batch.sequence[:real],
                          batch.tokens[:real].eq(self.model.mask_idx).long())
        lengths = torch.tensor(batch.lengths, device=masked.device)
        observed = masked.to(dtype) / lengths
        return (1 - observed)[batch.sequence]

    def group_attention(self, group: Group, qkv: torch.Tensor, out: torch.Tensor) -> None:
        """Attention of one group [rows, heads, width, head_dim], written back into `out`:
        fair-esm's own math and order in fp32 (the reference), SDPA at bf16/fp16."""
        grid = group.gather(qkv).view(group.rows, group.width, 3, self.heads, self.head_dim)
        q, k, v = grid.permute(2, 0, 3, 1, 4).unbind(0)
        table = self.rotary.rows(group.width, qkv.device)
        cos, sin = table[:, : self.head_dim], table[:, self.head_dim:]
        keys = group.keys()[:, None, None, :]
        if q.dtype == torch.float32:
            q = q * self.head_dim ** -0.5
            q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
            scores = (q @ k.transpose(-1, -2)).masked_fill(~keys, float("-inf"))
            attended = torch.softmax(scores, dim=-1) @ v
        else:
            q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
            attended = F.scaled_dot_product_attention(q, k, v, attn_mask=keys)
        group.scatter(attended, out)

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

Used on a model that is already on its device and dtype (fusing ties the views to them).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from esm.model.esm2 import ESM2
from torch import nn

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
        self.step = torch.compile(self.block, dynamic=True) if compile_layers else self.block

    def embed(self, tokens: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        model = self.model
        x = model.embed_scale * model.embed_tokens(tokens)
        if model.token_dropout:
            masked = tokens.eq(model.mask_idx)
            x = x.masked_fill(masked.unsqueeze(-1), 0.0)
            observed = masked.sum(-1).to(x.dtype) / (~padding).sum(-1)
            x = x * (1 - MASK_RATIO_TRAIN) / (1 - observed)[:, None, None]
        return x * (1 - padding.unsqueeze(-1).type_as(x))

    def attention(self, layer: nn.Module, qkv, x, mask, cos, sin) -> torch.Tensor:
        batch, length, dim = x.shape
        packed = F.linear(x, *qkv).view(batch, length, 3, self.heads, self.head_dim)
        q, k, v = packed.permute(2, 0, 3, 1, 4).unbind(0)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return layer.self_attn.out_proj(out.transpose(1, 2).reshape(batch, length, dim))

    def block(self, layer: nn.Module, qkv, x, mask, cos, sin) -> torch.Tensor:
        """One pre-LN transformer layer."""
        x = x + self.attention(layer, qkv, layer.self_attn_layer_norm(x), mask, cos, sin)
        return x + layer.fc2(F.gelu(layer.fc1(layer.final_layer_norm(x))))

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

import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers.models.bert.modeling_bert import BertPreTrainedModel

from .bert_padding import real_positions, scatter_rows

try:
    from .flash_attn_triton import flash_attn_qkvpacked_func
except ImportError:
    flash_attn_qkvpacked_func = None


def head_slopes(n: int) -> list[float]:
    if math.log2(n).is_integer():
        return [2.0 ** (-8.0 * (h + 1) / n) for h in range(n)]
    low = 2 ** math.floor(math.log2(n))
    return head_slopes(low) + head_slopes(2 * low)[0::2][: n - low]


def alibi(n_heads: int, length: int) -> torch.Tensor:
    i = torch.arange(length)
    return -torch.tensor(head_slopes(n_heads))[:, None, None] * (i[None, :] - i[:, None]).abs()


class BertEmbeddings(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, ids, token_types):
        return self.LayerNorm(self.word_embeddings(ids) + self.token_type_embeddings(token_types))


class BertUnpadSelfAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.heads = config.num_attention_heads
        self.Wqkv = nn.Linear(config.hidden_size, 3 * config.hidden_size)

    def forward(self, x, bias):
        n, hidden = x.shape
        qkv = self.Wqkv(x).view(1, n, 3, self.heads, hidden // self.heads)
        if flash_attn_qkvpacked_func is not None:
            return flash_attn_qkvpacked_func(qkv, bias).reshape(n, hidden)
        q, k, v = (qkv[0, :, i].transpose(0, 1) for i in range(3))  # [heads, n, d]
        scores = q @ k.transpose(1, 2) / math.sqrt(hidden // self.heads) + bias
        return (torch.softmax(scores, dim=-1) @ v).transpose(0, 1).reshape(n, hidden)


class BertSelfOutput(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, x, residual):
        return self.LayerNorm(self.dense(x) + residual)


class BertUnpadAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.self = BertUnpadSelfAttention(config)
        self.output = BertSelfOutput(config)

    def forward(self, x, bias):
        return self.output(self.self(x, bias), x)


class BertGatedLinearUnitMLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.inter = config.intermediate_size
        self.gated_layers = nn.Linear(config.hidden_size, 2 * self.inter, bias=False)
        self.wo = nn.Linear(self.inter, config.hidden_size)
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, x):
        h = self.gated_layers(x)
        h = F.gelu(h[:, : self.inter], approximate="none") * h[:, self.inter :]
        return self.layernorm(self.wo(h) + x)


class BertLayer(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.attention = BertUnpadAttention(config)
        self.mlp = BertGatedLinearUnitMLP(config)

    def forward(self, x, bias):
        return self.mlp(self.attention(x, bias))


class BertEncoder(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(config) for _ in range(config.num_hidden_layers))


class BertPooler(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden):
        return torch.tanh(self.dense(hidden[:, 0]))


class BertModel(BertPreTrainedModel):
    def __init__(self, config, add_pooling_layer=True):
        super().__init__(config)
        self.embeddings = BertEmbeddings(config)
        self.encoder = BertEncoder(config)
        self.pooler = BertPooler(config) if add_pooling_layer else None
        self.post_init()

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, **kwargs):
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        positions = real_positions(attention_mask)
        rows = [self.one(input_ids[b, p], token_type_ids[b, p]) for b, p in enumerate(positions)]
        hidden = scatter_rows(rows, positions, input_ids.shape[1])
        return hidden, self.pooler(hidden) if self.pooler is not None else None

    def one(self, ids, token_types):
        x = self.embeddings(ids, token_types)
        bias = alibi(self.config.num_attention_heads, len(ids))
        for layer in self.encoder.layer:
            x = layer(x, bias)
        return x

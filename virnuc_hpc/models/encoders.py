"""Batched embedding with DNABERT-S and ESM models, pooled exactly as VirNucPro pools.

An encoder wraps a model that is already loaded (it never loads one) and turns a list of
sequences into float32 rows [n, dim] in input order:

- `DnabertEncoder`: mean of the last hidden state over all tokens, [CLS] and [SEP] included,
  padding masked out.
- `EsmEncoder`: mean of the last layer's representation (after `emb_layer_norm_after`) over
  residue positions 1..min(len, 1024): BOS, EOS and padding excluded.

Given the run's fixed `Shapes` (the default in a run), a batch is packed and computed in fixed
shapes (models/packed.py), so that a row's bits depend on that row alone: batches are then cut
by a budget of packed tokens, and what shares a batch (or an OOM retry's split) changes nothing.
Without them (`shapes=None`), batches are length-sorted and bounded by a padded-token budget, and
`fp32` runs the reference forward (fair-esm's own; DNABERT eager attention); `bf16`/`fp16` run
fused attention (SDPA) on either path.
Pooling happens on the device; only [B, dim] goes to the host. On CUDA out-of-memory the budget
is halved and the batch split and retried; only a single sequence that does not fit is fatal.
Every row is checked finite and of the right width before it is returned.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
from collections import deque
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from ..core.errors import ConfigError, IntegrityError
from ..core.faults import fault_point
from ..core.fsio import atomic_write
from .esm_fast import FastEsm2
from .packed import Group, Packed, one_thread, pack
from ..core.shapes import CPU_SHAPES, GPU_SHAPES, Shapes
from ..core.config import check_compile, check_precision
from .precision import DTYPES

log = logging.getLogger(__name__)

PRECISIONS = DTYPES  # name -> torch dtype (models/precision.py)
DEVICES = ("cpu", "cuda")
DEFAULT_TOKENS_PER_BATCH = {"cpu": 4096, "cuda": 32768}  # bench's; a task's GPU budget is sized
AUTO_BUDGET = (4096, 65536)  # floor, ceiling of a budget sized from free GPU memory
MEMORY_SHARE = 0.6  # of the GPU memory free at the first batch, for one batch's activations
ESM_POOL_MAX = 1024  # VirNucPro pools residues 1..min(len, 1024)
ESM1_MAX_RESIDUES = 1022  # learned positions (ESM-1b/1v) stop at 1024 tokens incl. BOS/EOS
M_MMAP_THRESHOLD = -3  # glibc mallopt parameter
HOST_MMAP_THRESHOLD = 128 << 10  # glibc's initial value, pinned (no sliding)
MIN_BATCH_TOKENS = 64  # batch x width below this: BLAS takes small-matrix kernels (pad_batch)


def steady_host_memory(threshold: int = HOST_MMAP_THRESHOLD) -> bool:
    """Pin glibc's mmap threshold so that freed activations go back to the OS.

    By default glibc raises the threshold after a large block is freed; batches of varying
    shape then come from the heap and fragment it, and RSS wanders 10-30% between batches
    with no leak at all. Pinning it (at glibc's own 128 KiB start value) keeps RSS flat.
    Respects MALLOC_MMAP_THRESHOLD_; a no-op off glibc."""
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, threshold))


def token_batches(lengths: Sequence[int], tokens_per_batch: int,
                  extra_per_seq: int = 0) -> list[list[int]]:
    """Indices in (length, index) order cut into batches with max(len + extra) * n <= budget.

    A sequence wider than the budget on its own forms a batch of one."""
    if tokens_per_batch < 1:
        raise ConfigError(f"tokens per batch must be >= 1, got {tokens_per_batch}")
    batches: list[list[int]] = []
    current: list[int] = []
    for index in sorted(range(len(lengths)), key=lambda i: (lengths[i], i)):
        width = lengths[index] + extra_per_seq  # ascending order: the newest is the widest
        if current and width * (len(current) + 1) > tokens_per_batch:
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches


def packed_batches(lengths: Sequence[int], tokens_per_batch: int,
                   chunk: int) -> list[list[int]]:
    """Indices, longest first, cut into batches of at most `tokens_per_batch` packed tokens
    (rounded down to whole chunks, at least one chunk); a longer sequence is a batch alone."""
    if tokens_per_batch < 1:
        raise ConfigError(f"tokens per batch must be >= 1, got {tokens_per_batch}")
    budget = max(chunk, tokens_per_batch // chunk * chunk)
    batches: list[list[int]] = []
    current: list[int] = []
    used = 0
    for index in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        if current and used + lengths[index] > budget:
            batches.append(current)
            current, used = [], 0
        current.append(index)
        used += lengths[index]
    if current:
        batches.append(current)
    return batches


def budget_from_memory(free_bytes: int, bytes_per_token: float,
                       bounds: tuple[int, int] = AUTO_BUDGET) -> int:
    """The largest power of two of padded tokens whose activations fit `MEMORY_SHARE` of
    `free_bytes`, within `bounds` (beyond 32-64k tokens a batch gains nothing measurable:
    docs/gpu-ceilings.md; the OOM retry halves it if the estimate was short)."""
    tokens = int(free_bytes * MEMORY_SHARE // max(bytes_per_token, 1.0))
    power = 1 << (tokens.bit_length() - 1) if tokens > 0 else 0
    return max(bounds[0], min(bounds[1], power))


def activation_bytes(width: int, heads: int, tokens_wide: int, itemsize: int,
                     eager: bool) -> float:
    """Bytes of activations per padded token of one encoder layer in inference: about 24
    hidden-sized tensors (q|k|v, the 4x FFN, residuals, norms), the fp32 pooled copy, and
    attention scores per head (fp32, three copies, on the eager reference path)."""
    scores = 3 * 4 * heads * tokens_wide if eager else itemsize * heads * tokens_wide
    return 24 * width * itemsize + 4 * width + scores


def padded_tokens(batch: Sequence[int], lengths: Sequence[int]) -> int:
    return max(lengths[i] for i in batch) * len(batch)


def check_rows(rows: np.ndarray, dim: int, names: Sequence[str]) -> None:
    """Raise IntegrityError naming the first row that is not finite or not `dim` wide."""
    if rows.ndim != 2 or rows.shape != (len(names), dim):
        raise IntegrityError(f"embedding batch has shape {rows.shape}, expected "
                             f"({len(names)}, {dim}) for sequences {names[0]}..{names[-1]}; "
                             "fix: check that the model matches its declared width")
    bad = np.flatnonzero(~np.isfinite(rows).all(axis=1))
    if bad.size:
        raise IntegrityError(f"embedding of sequence {names[bad[0]]} has NaN/inf values "
                             f"({bad.size} such row(s) in its batch); fix: rerun with "
                             "--precision fp32; if it persists, check the model weights")


def pad_batch(tokens: Sequence[np.ndarray], pad: int,
              min_tokens: int = MIN_BATCH_TOKENS) -> torch.Tensor:
    """Right-pad int64 token arrays into a [B, T] host tensor, with B x T >= `min_tokens`.

    The floor keeps a row independent of what shares its batch: for a matrix of a few rows
    (a short sequence alone) MKL takes other kernels, whose rounding differs in the last bit
    from the one every larger batch gets; extra padding is masked, so it changes nothing else."""
    width = max(max(len(t) for t in tokens), -(-min_tokens // len(tokens)))
    out = np.full((len(tokens), width), pad, dtype=np.int64)
    for row, toks in zip(out, tokens):
        row[: len(toks)] = toks
    return torch.from_numpy(out)


def masked_mean(hidden: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """fp32 mean of hidden [B, T, E] over positions where keep [B, T] is true."""
    weights = keep.to(torch.float32)
    total = torch.bmm(weights.unsqueeze(1), hidden.float()).squeeze(1)
    return total / weights.sum(1, keepdim=True)


def unique_rows(tokens: Sequence[np.ndarray]) -> tuple[list[int], np.ndarray]:
    """(the first index of each distinct token sequence, for every input its distinct one)."""
    seen: dict[bytes, int] = {}
    where = np.fromiter((seen.setdefault(t.tobytes(), len(seen)) for t in tokens), np.int64,
                        len(tokens))
    first = np.full(len(seen), -1, np.int64)
    first[where[::-1]] = np.arange(len(tokens))[::-1]
    return first.tolist(), where


def check_device(device: str, precision: str) -> None:
    if device not in DEVICES:
        raise ConfigError(f"device {device!r} is not one of {', '.join(DEVICES)}")
    check_precision(precision)
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' requested but no CUDA GPU is visible; "
                          "use --device cpu or run on a GPU node")


class Encoder:
    """Common batching, OOM retry and integrity checks; subclasses tokenize and pool."""

    dim: int
    pad_id: int

    def __init__(self, device: str = "cpu", precision: str = "fp32",
                 tokens_per_batch: int | None = None, shapes: Shapes | None = None):
        check_device(device, precision)
        self.shapes = shapes  # fixed shapes: rows independent of their batch (None: sorted)
        self.device = torch.device(device)
        self.precision = precision
        self.dtype = PRECISIONS[precision]
        # on a GPU, None: sized from its free memory at the first batch (`size_budget`)
        self.tokens_per_batch = tokens_per_batch or (None if device == "cuda" else
                                                     DEFAULT_TOKENS_PER_BATCH[device])
        if self.tokens_per_batch is not None:
            token_batches([], self.tokens_per_batch)  # validates the budget
        self.dedup, self.rows_embedded = True, 0  # identical rows embedded once; rows forwarded
        if precision == "fp32":  # the reference path: no TF32 (10-bit mantissa) matmuls
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
        steady_host_memory()

    def bytes_per_token(self, tokens_wide: int) -> float:
        raise NotImplementedError

    def size_budget(self, tokens_wide: int) -> int:
        """The token budget for this GPU, from its free memory now (after the models loaded)
        and the widest batch (`tokens_wide`: batches run longest first)."""
        free, _ = torch.cuda.mem_get_info(self.device)
        budget = budget_from_memory(free, self.bytes_per_token(tokens_wide))
        log.info("%s: tokens_per_batch %d (%.1f GiB free on %s, batches up to %d tokens wide)",
                 type(self).__name__, budget, free / 2**30, self.device, tokens_wide)
        return budget

    def tokenize(self, seqs: Sequence[str]) -> list[np.ndarray]:
        raise NotImplementedError

    def pooled(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """[B, T] padded token ids and [B] token counts on the device -> [B, dim] float32."""
        raise NotImplementedError

    def embed(self, seqs: Sequence[str], ids: Sequence[str] | None = None,
              on_rows: Callable[[int], None] | None = None) -> np.ndarray:
        """float32 [len(seqs), dim], row i for seqs[i]; `on_rows(n)` after each batch."""
        return self.embed_tokens(self.tokenize(seqs), ids, on_rows)

    def embed_tokens(self, tokens: Sequence[np.ndarray], ids: Sequence[str] | None = None,
                     on_rows: Callable[[int], None] | None = None) -> np.ndarray:
        """Rows for `tokens`; identical token sequences share one forward (a row is the
        same bits whatever shares its batch), unless `dedup` is off."""
        first, where = unique_rows(tokens) if self.dedup else (list(range(len(tokens))),
                                                               np.arange(len(tokens)))
        out = np.empty((len(first), self.dim), dtype=np.float32)
        names = None if ids is None else [ids[i] for i in first]
        for batch, rows in self.iter_embed([tokens[i] for i in first], names):
            out[batch] = rows
            self.rows_embedded += len(batch)
            if on_rows is not None:
                on_rows(len(batch))
        if on_rows is not None and len(first) < len(tokens):
            on_rows(len(tokens) - len(first))   # the reused rows
        return out[where]

    def iter_embed(self, tokens: Sequence[np.ndarray],
                   ids: Sequence[str] | None = None) -> Iterator[tuple[list[int], np.ndarray]]:
        """Yield (input indices, checked rows) batch by batch, longest sequences first: peak
        memory is reached (and any OOM met) at the start; later batches reuse that memory."""
        lengths = [len(t) for t in tokens]
        if self.tokens_per_batch is None and lengths:
            self.tokens_per_batch = self.size_budget(max(lengths))
        queue = deque(self.cut(lengths, self.tokens_per_batch or 1))
        while queue:
            batch = queue.popleft()
            divisible = self.divisible(batch, lengths)
            if divisible and self.cost(batch, lengths) > self.budget():
                queue.extendleft(reversed([[batch[j] for j in sub] for sub in self.cut(
                    [lengths[i] for i in batch], self.tokens_per_batch)]))
                continue
            names = [self.name(ids, i) for i in batch]
            rows = self.try_forward([tokens[i] for i in batch], names, divisible)
            if rows is None:
                self.shrink(self.cost(batch, lengths), names)
                queue.appendleft(batch)
                continue
            check_rows(rows, self.dim, names)
            fault_point("embed.batch", type(self).__name__)
            yield batch, rows

    def cut(self, lengths: Sequence[int], budget: int) -> list[list[int]]:
        """Batches of input indices in the order they run (the longest first)."""
        if self.shapes is not None:
            return packed_batches(lengths, budget, self.shapes.chunk_tokens)
        return token_batches(lengths, budget)[::-1]

    def cost(self, batch: Sequence[int], lengths: Sequence[int]) -> int:
        """The tokens a batch holds: padded (sorted batches) or packed."""
        if self.shapes is None:
            return padded_tokens(batch, lengths)
        return sum(lengths[i] for i in batch)

    def budget(self) -> int:
        """Tokens a batch may hold now; packed batches hold whole chunks, one at least."""
        if self.shapes is None:
            return self.tokens_per_batch
        chunk = self.shapes.chunk_tokens
        return max(chunk, self.tokens_per_batch // chunk * chunk)

    def divisible(self, batch: Sequence[int], lengths: Sequence[int]) -> bool:
        """Whether splitting `batch` would use less memory: more than one sequence, and
        (packed) more than one chunk of tokens."""
        if self.shapes is None:
            return len(batch) > 1
        return len(batch) > 1 and self.cost(batch, lengths) > self.shapes.chunk_tokens

    @staticmethod
    def name(ids: Sequence[str] | None, index: int) -> str:
        return f"#{index}" if ids is None else f"{ids[index]!r} (#{index})"

    def try_forward(self, tokens: list[np.ndarray], names: list[str],
                    divisible: bool = True) -> np.ndarray | None:
        """Rows for one batch, or None if it ran out of GPU memory and can be split."""
        try:
            return self.forward(tokens)
        except torch.cuda.OutOfMemoryError as exc:
            if not divisible:
                what = (f"sequence {names[0]} ({len(tokens[0])} tokens) alone" if len(tokens) == 1
                        else f"one chunk of {len(tokens)} sequences ({names[0]}..{names[-1]})")
                raise torch.cuda.OutOfMemoryError(
                    f"{what} does not fit in {self.device} memory at {self.precision}: "
                    f"{exc}") from exc
        return None  # the handler has returned: its frames (and activations) are released

    def shrink(self, failed_tokens: int, names: list[str]) -> None:
        """Halve the budget below the batch that failed, so that it splits on retry."""
        self.tokens_per_batch = max(1, min(self.tokens_per_batch, failed_tokens) // 2)
        log.warning("out of memory on a batch of %d sequences (%d padded tokens, %s..%s); "
                    "retrying with tokens_per_batch=%d", len(names), failed_tokens, names[0],
                    names[-1], self.tokens_per_batch)
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    @torch.inference_mode()
    def forward(self, tokens: list[np.ndarray]) -> np.ndarray:
        if self.shapes is not None:
            with one_thread(self.device):
                packed = pack(tokens, self.shapes, self.pad_id, self.device)
                return self.packed_pooled(packed).cpu().numpy()
        batch = pad_batch(tokens, self.pad_id)
        lengths = torch.tensor([len(t) for t in tokens])
        if self.device.type == "cuda":
            batch, lengths = batch.pin_memory(), lengths.pin_memory()
        batch = batch.to(self.device, non_blocking=True)
        return self.pooled(batch, lengths.to(self.device, non_blocking=True)).cpu().numpy()


    def packed_pooled(self, batch: Packed) -> torch.Tensor:
        """[n, dim] float32 rows of a packed batch (models/packed.py)."""
        raise NotImplementedError


class EsmEncoder(Encoder):
    """ESM (fair-esm) protein encoder: `EsmEncoder(model, alphabet, ...).embed(proteins)`.

    The model is moved to `device` and cast to `precision` in place."""

    def __init__(self, model: torch.nn.Module, alphabet, device: str = "cpu",
                 precision: str = "fp32", tokens_per_batch: int | None = None,
                 compile_layers: bool = False, shapes: Shapes | None = None):
        check_compile(compile_layers, precision)
        if shapes is not None and not is_esm2(model):
            raise ConfigError(f"fixed-shape batches need an ESM-2 model; {type(model).__name__} "
                              "runs fair-esm's own forward (sorted batches)")
        super().__init__(device, precision, tokens_per_batch, shapes)
        self.model = model.eval().to(device=self.device, dtype=self.dtype)
        self.alphabet = alphabet
        self.dim = model.embed_tokens.embedding_dim
        self.pad_id = alphabet.padding_idx
        self.layer = model.num_layers
        self.fast = None
        if (precision != "fp32" or shapes is not None) and is_esm2(model):
            self.fast = FastEsm2(self.model, compile_layers=compile_layers)
        elif compile_layers:
            raise ConfigError("compile applies to ESM-2 models (the fused path); "
                              f"{type(model).__name__} runs fair-esm's own forward")
        self.max_residues = ESM1_MAX_RESIDUES if has_learned_positions(model) else None
        self.lookup = byte_lookup(alphabet)

    def bytes_per_token(self, tokens_wide: int) -> float:
        heads = getattr(self.model, "attention_heads", None) or self.model.args.attention_heads
        return activation_bytes(self.dim, heads, tokens_wide,
                                self.dtype.itemsize, eager=self.fast is None)

    def tokenize(self, seqs: Sequence[str]) -> list[np.ndarray]:
        """BOS + residues + EOS as int64 arrays (fair-esm's BatchConverter ids)."""
        return [self.encode(seq) for seq in seqs]

    def encode(self, seq: str) -> np.ndarray:
        if "<" in seq:  # explicit special tokens such as <mask>: fair-esm's own splitter
            body = np.asarray(self.alphabet.encode(seq), dtype=np.int64)
        else:
            body = self.lookup[np.frombuffer(seq.upper().encode("ascii"), dtype=np.uint8)]
        if self.max_residues is not None:
            body = body[: self.max_residues]
        return np.concatenate(([self.alphabet.cls_idx], body, [self.alphabet.eos_idx]))

    def hidden(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.fast is not None:
            return self.fast(tokens)
        return self.model(tokens, repr_layers=[self.layer])["representations"][self.layer]

    def pooled(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        last = (lengths - 2).clamp(max=ESM_POOL_MAX).unsqueeze(1)  # residues: BOS/EOS off
        keep = (positions >= 1) & (positions <= last)
        return masked_mean(self.hidden(tokens), keep)

    def packed_pooled(self, batch: Packed) -> torch.Tensor:
        return batch.pooled(self.fast.packed(batch), residues)


def residues(group: Group) -> torch.Tensor:
    """[rows, width]: the residue positions ESM pooling keeps, 1..min(len - 2, 1024)."""
    positions = torch.arange(group.width, device=group.lengths.device)
    last = (group.lengths - 2).clamp(max=ESM_POOL_MAX).unsqueeze(1)
    return (positions >= 1) & (positions <= last)


def is_esm2(model: torch.nn.Module) -> bool:
    from esm.model.esm2 import ESM2

    return isinstance(model, ESM2)


def has_learned_positions(model: torch.nn.Module) -> bool:
    from esm.modules import LearnedPositionalEmbedding

    return isinstance(getattr(model, "embed_positions", None), LearnedPositionalEmbedding)


def byte_lookup(alphabet) -> np.ndarray:
    """uint8 byte -> token id for one-letter tokens; any other byte -> <unk>."""
    table = np.full(256, alphabet.unk_idx, dtype=np.int64)
    for token, index in alphabet.tok_to_idx.items():
        if len(token) == 1 and token.isascii():
            table[ord(token)] = index
    return table


class DnabertEncoder(Encoder):
    """DNABERT-S nucleotide encoder: `DnabertEncoder(model, tokenizer, ...).embed(dna)`.

    `model.forward(input_ids, attention_mask) -> [B, T, H]`; `tokenizer` is the model's
    fast tokenizer (adds [CLS]/[SEP]); without one only `embed_tokens` works. The model is
    moved and cast in place; fp32 uses eager attention (the reference), bf16/fp16 SDPA."""

    def __init__(self, model: torch.nn.Module, tokenizer=None, device: str = "cpu",
                 precision: str = "fp32", tokens_per_batch: int | None = None,
                 compile_layers: bool = False, shapes: Shapes | None = None):
        if compile_layers:
            raise ConfigError("--compile applies to ESM-2 models; DNABERT-S runs uncompiled")
        super().__init__(device, precision, tokens_per_batch, shapes)
        self.model = model.eval().to(device=self.device, dtype=self.dtype)
        self.model.set_attention("eager" if precision == "fp32" else "sdpa")
        self.tokenizer = tokenizer
        self.dim = model.config.hidden_size
        self.pad_id = model.config.pad_token_id if tokenizer is None else tokenizer.pad_token_id

    def bytes_per_token(self, tokens_wide: int) -> float:
        return activation_bytes(self.dim, self.model.config.num_attention_heads, tokens_wide,
                                self.dtype.itemsize, eager=self.precision == "fp32")

    def tokenize(self, seqs: Sequence[str]) -> list[np.ndarray]:
        if self.tokenizer is None:
            raise ValueError("DnabertEncoder was built without a tokenizer; use embed_tokens")
        encoded = self.tokenizer(list(seqs), add_special_tokens=True)["input_ids"]
        return [np.asarray(ids, dtype=np.int64) for ids in encoded]

    def pooled(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        keep = positions < lengths.unsqueeze(1)  # every real token, [CLS] and [SEP] included
        return masked_mean(self.model(tokens, keep.long()), keep)

    def packed_pooled(self, batch: Packed) -> torch.Tensor:
        return batch.pooled(self.model.packed(batch), Group.keys)


# ---- files: FASTA in, safetensors out ------------------------------------------------------

def device_shapes(device: str) -> Shapes:
    """The fixed shapes a run settles for `device` (core/shapes.py)."""
    return GPU_SHAPES if device == "cuda" else CPU_SHAPES


def open_encoder(model: str, model_path: str | None = None, device: str = "cpu",
                 precision: str = "fp32", tokens_per_batch: int | None = None,
                 cache=None, compile_layers: bool = False, invariant: bool = True) -> Encoder:
    """Resolve `model` (registry name; `model_path` overrides where it is), verify, load,
    and wrap it: DNABERT-kind models embed nucleotides, ESM-kind models proteins. With
    `invariant`, ESM-2 and DNABERT-S run fixed-shape batches (other ESM models cannot)."""
    from . import ModelCache, get_spec, load_dnabert, load_esm, spec_from_path

    check_device(device, precision)
    spec = get_spec(model)
    if spec.kind not in ("dnabert", "esm"):
        raise ConfigError(f"model {model!r} is a {spec.kind}, not an encoder; give a DNABERT "
                          "or ESM model (e.g. dnabert-s, esm2-3b, esm1v_t33_650M_UR90S_1)")
    if model_path is not None:
        spec = spec_from_path(model_path, spec.kind)
    cache = cache or ModelCache()
    path = cache.prewarm(spec)
    if spec.kind == "dnabert":
        tokenizer, loaded = load_dnabert(path, device, PRECISIONS[precision])
        cache.check_unchanged(spec)  # what was loaded is what was verified
        return DnabertEncoder(loaded, tokenizer, device, precision, tokens_per_batch,
                              compile_layers, device_shapes(device) if invariant else None)
    loaded, alphabet = load_esm(path, device, PRECISIONS[precision])
    cache.check_unchanged(spec)
    if invariant and not is_esm2(loaded):
        log.info("%s is not an ESM-2 model: length-sorted batches (fixed shapes need ESM-2)",
                 model)
        invariant = False
    return EsmEncoder(loaded, alphabet, device, precision, tokens_per_batch, compile_layers,
                      device_shapes(device) if invariant else None)


def embed_fasta(input_path: str | Path, out_path: str | Path, encoder: Encoder) -> int:
    """Embed every record of `input_path` and write `out_path` (see write_embeddings).
    Returns the number of rows."""
    from ..sequences.reader import iter_records

    alphabet = "protein" if isinstance(encoder, EsmEncoder) else "dna"
    records = list(iter_records(input_path, alphabet=alphabet))
    ids = [r.id for r in records]
    rows = encoder.embed([r.seq for r in records], ids)
    write_embeddings(out_path, ids, rows)
    return len(ids)


def write_embeddings(path: str | Path, ids: Sequence[str], rows: np.ndarray) -> None:
    """safetensors file: tensor `embeddings` float32 [N, D] and metadata `ids` (JSON list)."""
    from safetensors.torch import save

    if rows.dtype != np.float32 or rows.shape[0] != len(ids):
        raise IntegrityError(f"{path}: {rows.shape[0]} rows of {rows.dtype} for {len(ids)} ids")
    tensors = {"embeddings": torch.from_numpy(np.ascontiguousarray(rows))}
    atomic_write(path, save(tensors, metadata={"ids": json.dumps(list(ids))}))


def read_embeddings(path: str | Path) -> tuple[list[str], np.ndarray]:
    """(ids, float32 [N, D]) from a file written by write_embeddings."""
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as handle:
        ids = json.loads(handle.metadata()["ids"])
        return ids, handle.get_tensor("embeddings")

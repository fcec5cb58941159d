"""Encoder throughput (`virnuc-hpc bench`) on the real architectures with random weights.

Throughput does not depend on weight values (same kernels, same shapes), so a randomly
initialised copy of ESM-2 3B or DNABERT-S tells a user how many GPU-hours a run will take.
Workloads are synthetic proteins / token ids sized like VirNucPro's 300/500-bp chunks.
"""

from __future__ import annotations

import resource
import statistics
import time
from dataclasses import dataclass

import numpy as np
import torch

from .encoders import (DEFAULT_TOKENS_PER_BATCH, DnabertEncoder, EsmEncoder, device_shapes,
                    token_batches)
from .packed import padding
from .registry import ALIASES, ESM2_ARCHS

AMINO_ACIDS = np.frombuffer(b"ACDEFGHIKLMNPQRSTVWY", dtype=np.uint8)
BP_PER_DNABERT_TOKEN = 4  # BPE on DNA: about one token per 4-5 bp (upper estimate of tokens)


@dataclass
class BenchResult:
    model: str
    device: str
    precision: str
    tokens_per_batch: int
    chunk_size: int
    sequences: int
    residues: int
    tokens: int
    padding_fraction: float
    tokenize_s: float
    warmup_s: float  # the first (up to) 512 sequences: cuDNN/allocator warm-up, compilation
    pass_s: list[float]
    tokens_per_s: float
    residues_per_s: float
    sequences_per_s: float
    useful_tflops: float
    matmul_tflops: float
    matmul_dtype: str
    mfu: float
    peak_memory_gib: float
    peak_memory_kind: str
    compiled: bool = False
    invariant: bool = False           # fixed-shape batches (models/packed.py)
    attention_padding: float = 0.0    # invariant: padded share of the attention positions


def bench(name: str, device: str, precision: str, tokens_per_batch: int | None,
          chunk_size: int, n: int, repeats: int, seed: int = 0,
          compile_layers: bool = False, invariant: bool = True) -> BenchResult:
    """Build `name` with random weights, embed a synthetic workload, time it (fixed-shape
    batches unless not `invariant`)."""
    budget = tokens_per_batch or DEFAULT_TOKENS_PER_BATCH[device]
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    matmul_dtype = torch.bfloat16 if device == "cuda" else torch.float32
    peak_rate = matmul_rate(device, matmul_dtype)
    encoder, layer_params, layers, width = build_encoder(name, device, precision, budget,
                                                         compile_layers, invariant)
    rng = np.random.default_rng(seed)
    tokens, tokenize_s = workload(encoder, chunk_size, n, rng)
    lengths = np.array([len(t) for t in tokens])
    specials = 2  # BOS/EOS or [CLS]/[SEP]
    warmup_s, passes = timed_passes(encoder, tokens, repeats, device)
    median = statistics.median(passes)
    useful = float(np.sum(2 * layer_params * lengths + layers * 4 * lengths**2 * width))
    peak, peak_kind = peak_memory(device)
    pad, attention_pad = padding_of(encoder, lengths, budget)
    return BenchResult(
        model=name, device=device_name(device), precision=precision, tokens_per_batch=budget,
        chunk_size=chunk_size, sequences=n, residues=int(lengths.sum() - specials * n),
        tokens=int(lengths.sum()), padding_fraction=pad,
        tokenize_s=tokenize_s, warmup_s=warmup_s, pass_s=passes,
        tokens_per_s=lengths.sum() / median,
        residues_per_s=(lengths.sum() - specials * n) / median, sequences_per_s=n / median,
        useful_tflops=useful / median / 1e12, matmul_tflops=peak_rate / 1e12,
        matmul_dtype=str(matmul_dtype).removeprefix("torch."),
        mfu=useful / median / peak_rate, peak_memory_gib=peak, peak_memory_kind=peak_kind,
        compiled=compile_layers, invariant=encoder.shapes is not None,
        attention_padding=attention_pad)


def build_encoder(name: str, device: str, precision: str, budget: int,
                  compile_layers: bool = False, invariant: bool = True):
    """(encoder, parameters in the layers, layer count, width) for a random-weight model."""
    torch.manual_seed(0)
    shapes = device_shapes(device) if invariant else None
    if name == "dnabert-s":
        from .dnabert import DnabertConfig, DnabertModel

        with torch.device(device):
            model = DnabertModel(DnabertConfig())
        encoder = DnabertEncoder(model, None, device, precision, budget, compile_layers, shapes)
        stack = model.encoder.layer
        return encoder, count(stack), len(stack), model.config.hidden_size
    import esm
    from esm.model.esm2 import ESM2

    layers, dim, heads = ESM2_ARCHS[ALIASES.get(name, name)]
    alphabet = esm.data.Alphabet.from_architecture("ESM-1b")
    with torch.device(device):
        model = ESM2(layers, dim, heads, alphabet, token_dropout=True)
    encoder = EsmEncoder(model, alphabet, device, precision, budget, compile_layers, shapes)
    return encoder, count(model.layers), layers, dim


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def workload(encoder, chunk_size: int, n: int, rng: np.random.Generator):
    """Token arrays for n sequences of lengths uniform in [0.9 L, L], and the tokenize time.

    Proteins: L = chunk_size // 3 residues, random amino acids through the encoder's own
    tokenizer (timed). DNABERT-S: L = chunk_size // 4 random BPE ids, plus [CLS]/[SEP]."""
    if isinstance(encoder, EsmEncoder):
        top = chunk_size // 3
        sizes = rng.integers(int(np.ceil(0.9 * top)), top + 1, size=n)
        proteins = [AMINO_ACIDS[rng.integers(0, 20, size=s)].tobytes().decode() for s in sizes]
        start = time.perf_counter()
        tokens = encoder.tokenize(proteins)
        return tokens, time.perf_counter() - start
    top = chunk_size // BP_PER_DNABERT_TOKEN
    sizes = rng.integers(int(np.ceil(0.9 * top)), top + 1, size=n)
    vocab = encoder.model.config.vocab_size
    return [np.concatenate(([1], rng.integers(5, vocab, size=s), [2])) for s in sizes], 0.0


def timed_passes(encoder, tokens, repeats: int, device: str) -> tuple[float, list[float]]:
    """Wall seconds of a warm-up pass over up to 512 sequences, then of `repeats` full passes."""
    seconds = [timed(encoder, tokens[:512], device)]
    seconds += [timed(encoder, tokens, device) for _ in range(repeats)]
    return seconds[0], seconds[1:]


def timed(encoder, tokens, device: str) -> float:
    synchronize(device)
    start = time.perf_counter()
    encoder.embed_tokens(tokens)
    synchronize(device)
    return time.perf_counter() - start


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def matmul_rate(device: str, dtype: torch.dtype) -> float:
    """Measured FLOP/s of a square matmul: 8192^3 on a GPU, 2048^3 on CPU; best of 5."""
    size = 8192 if device == "cuda" else 2048
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(6):  # the first is a warm-up
        synchronize(device)
        start = time.perf_counter()
        torch.matmul(a, b)
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def padding_fraction(lengths: np.ndarray, budget: int) -> float:
    batches = token_batches(lengths.tolist(), budget)
    padded = sum(int(lengths[b].max()) * len(b) for b in batches)
    return 1.0 - float(lengths.sum()) / padded


def padding_of(encoder, lengths: np.ndarray, budget: int) -> tuple[float, float]:
    """(padded share of the rows the GEMMs run, of the attention positions): the two are one
    for sorted batches; fixed shapes pad chunks and attention groups separately."""
    if encoder.shapes is None:
        pad = padding_fraction(lengths, budget)
        return pad, pad
    return padding(lengths.tolist(), encoder.shapes, encoder.cut(lengths.tolist(), budget))


def peak_memory(device: str) -> tuple[float, str]:
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**30, "torch.cuda.max_memory_allocated"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, "peak RSS of the process"


def device_name(device: str) -> str:
    if device == "cuda":
        return f"cuda ({torch.cuda.get_device_name()})"
    return f"cpu ({torch.get_num_threads()} threads)"


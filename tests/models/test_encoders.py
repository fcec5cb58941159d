"""Embedding engine: batching, VirNucPro pooling, precisions, OOM retry, integrity checks."""

from __future__ import annotations

import esm
import numpy as np
import pytest
import torch
from esm.model.esm2 import ESM2

from virnuc_hpc.models.encoders import DnabertEncoder, EsmEncoder, check_rows, token_batches
from virnuc_hpc.core.errors import ConfigError, IntegrityError

ALPHABET = esm.data.Alphabet.from_architecture("ESM-1b")
AMINO = list("ACDEFGHIKLMNPQRSTVWY")


def small_esm2(seed: int = 0) -> ESM2:
    torch.manual_seed(seed)
    return ESM2(num_layers=2, embed_dim=64, attention_heads=4, alphabet=ALPHABET,
                token_dropout=True).eval()


def random_proteins(n: int, low: int = 5, high: int = 60, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(AMINO, size=rng.integers(low, high))) for _ in range(n)]


def virnucpro_esm(model: ESM2, proteins: list[str]) -> np.ndarray:
    """VirNucPro's extract_esm pooling, one protein per forward: residues 1..min(len, 1024)."""
    convert, rows = ALPHABET.get_batch_converter(), []
    with torch.inference_mode():
        for protein in proteins:
            _, _, tokens = convert([("x", protein)])
            rep = model(tokens, repr_layers=[model.num_layers])["representations"]
            rows.append(rep[model.num_layers][0, 1 : min(len(protein), 1024) + 1].mean(0))
    return torch.stack(rows).numpy()


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)).min())


# ---- token_batches -------------------------------------------------------------------------

def test_batches_are_length_sorted_stable_and_within_budget():
    lengths = [7, 3, 9, 3, 5, 7, 1, 9, 2]
    batches = token_batches(lengths, tokens_per_batch=20, extra_per_seq=2)
    flat = [i for b in batches for i in b]
    assert flat == sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    assert all(max(lengths[i] + 2 for i in b) * len(b) <= 20 for b in batches)
    # greedy: adding the next sequence to a batch would have broken the budget
    for b, nxt in zip(batches, batches[1:]):
        assert (lengths[nxt[0]] + 2) * (len(b) + 1) > 20


def test_oversized_sequence_gets_its_own_batch():
    assert token_batches([3, 50, 4], tokens_per_batch=10) == [[0, 2], [1]]


def test_budget_counts_padded_tokens_not_sequences():
    assert token_batches([10] * 8, tokens_per_batch=40) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert token_batches([], tokens_per_batch=40) == []
    with pytest.raises(ConfigError):
        token_batches([1], tokens_per_batch=0)


# ---- ESM -----------------------------------------------------------------------------------

def test_tokenize_matches_fair_esm_batch_converter():
    proteins = ["MKTAYIAKQR", "xbzuo", "W<mask>K", "ACDEFGHIKLMNPQRSTVWYBZXUO"]
    encoder = EsmEncoder(small_esm2(), ALPHABET)
    upper = [p if "<" in p else p.upper() for p in proteins]  # lower case is read as upper
    _, _, expected = ALPHABET.get_batch_converter()(list(enumerate(upper)))
    for row, tokens in zip(expected, encoder.tokenize(proteins)):
        assert row[: len(tokens)].tolist() == tokens.tolist()
        assert set(row[len(tokens):].tolist()) <= {ALPHABET.padding_idx}


@pytest.mark.parametrize("budget", [64, 300, 100_000])
def test_esm_fp32_reproduces_virnucpro_in_input_order(budget):
    proteins = random_proteins(40)
    expected = virnucpro_esm(small_esm2(), proteins)
    got = EsmEncoder(small_esm2(), ALPHABET, tokens_per_batch=budget).embed(proteins)
    assert got.dtype == np.float32 and got.shape == (40, 64)
    assert np.abs(got - expected).max() < 1e-5


def test_esm_pooling_stops_at_residue_1024():
    proteins = random_proteins(1, low=1030, high=1031) + random_proteins(2, seed=5)
    expected = virnucpro_esm(small_esm2(), proteins)
    got = EsmEncoder(small_esm2(), ALPHABET, tokens_per_batch=2048).embed(proteins)
    assert np.abs(got - expected).max() < 1e-5


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_esm_reduced_precision_cosine_on_every_row(precision):
    proteins = random_proteins(30, high=170, seed=2)
    reference = EsmEncoder(small_esm2(), ALPHABET).embed(proteins)
    encoder = EsmEncoder(small_esm2(), ALPHABET, precision=precision, tokens_per_batch=1000)
    assert encoder.fast is not None
    assert min_cosine(encoder.embed(proteins), reference) >= 0.999


def test_esm1b_family_truncates_to_its_1022_positions():
    """ESM-1b/1v (learned positions) cannot take more than 1022 residues: truncated as fair-esm's
    BatchConverter(truncation_seq_length=1022) does, then pooled over what remains."""
    from argparse import Namespace

    from esm.model.esm1 import ProteinBertModel

    torch.manual_seed(0)
    args = Namespace(arch="roberta_large", layers=2, embed_dim=32, ffn_embed_dim=64,
                     attention_heads=4, max_positions=1024, dropout=0.0, attention_dropout=0.0,
                     activation_dropout=0.0, final_bias=True, emb_layer_norm_before=True,
                     logit_bias=True, token_dropout=True)
    model = ProteinBertModel(args, ALPHABET).eval()
    proteins = random_proteins(1, low=1100, high=1101) + random_proteins(3, seed=6)
    convert, expected = ALPHABET.get_batch_converter(truncation_seq_length=1022), []
    with torch.inference_mode():
        for protein in proteins:
            rep = model(convert([("x", protein)])[2], repr_layers=[2])["representations"][2]
            expected.append(rep[0, 1 : min(len(protein), 1022) + 1].mean(0))
    got = EsmEncoder(model, ALPHABET, tokens_per_batch=2048).embed(proteins)
    assert np.abs(got - torch.stack(expected).numpy()).max() < 1e-5


class FakeOomModel(torch.nn.Module):
    """Wraps a model; raises CUDA OOM whenever a batch holds more than `limit` tokens."""

    def __init__(self, inner: torch.nn.Module, limit: int):
        super().__init__()
        self.inner, self.limit, self.sizes = inner, limit, []
        self.num_layers, self.embed_tokens = inner.num_layers, inner.embed_tokens

    def forward(self, tokens, **kwargs):
        self.sizes.append(tokens.numel())
        if tokens.numel() > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected)")
        return self.inner(tokens, **kwargs)


def test_oom_halves_budget_and_never_drops_a_row():
    proteins = random_proteins(40, seed=3)
    expected = EsmEncoder(small_esm2(), ALPHABET).embed(proteins)
    wrapped = FakeOomModel(small_esm2(), limit=250)
    encoder = EsmEncoder(wrapped, ALPHABET, tokens_per_batch=4000)
    got = encoder.embed(proteins)
    assert np.abs(got - expected).max() < 1e-5
    assert encoder.tokens_per_batch <= 250
    assert any(size > 250 for size in wrapped.sizes)  # OOM really happened, then recovered


def test_oom_on_a_single_sequence_raises():
    proteins = random_proteins(3, seed=4) + ["M" * 100]
    encoder = EsmEncoder(FakeOomModel(small_esm2(), limit=90), ALPHABET, tokens_per_batch=4000)
    with pytest.raises(torch.cuda.OutOfMemoryError, match="alone does not fit"):
        encoder.embed(proteins, ids=["a", "b", "c", "long"])


def test_nan_row_raises_integrity_error_naming_the_sequence():
    model = small_esm2()
    with torch.no_grad():
        model.embed_tokens.weight[ALPHABET.get_idx("W")] = float("nan")
    proteins = ["MKTAYIAKQR", "MKTWYIAKQR", "ACDEFGHIKL"]
    with pytest.raises(IntegrityError, match="'poisoned'"):
        EsmEncoder(model, ALPHABET).embed(proteins, ids=["ok1", "poisoned", "ok2"])


def test_row_width_is_checked():
    with pytest.raises(IntegrityError, match="shape"):
        check_rows(np.zeros((2, 63), dtype=np.float32), 64, ["a", "b"])
    check_rows(np.zeros((2, 64), dtype=np.float32), 64, ["a", "b"])


def test_invalid_options_list_the_choices():
    with pytest.raises(ConfigError, match="fp32, bf16, fp16"):
        EsmEncoder(small_esm2(), ALPHABET, precision="fp8")
    with pytest.raises(ConfigError, match="cpu, cuda"):
        EsmEncoder(small_esm2(), ALPHABET, device="tpu")


# ---- DNABERT-S -----------------------------------------------------------------------------

def char_tokenizer():
    """A tiny BPE fast tokenizer wrapping sequences as [CLS] ... [SEP], pad id 0."""
    from tokenizers import Tokenizer, models, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "[MASK]": 4, "A": 5, "C": 6,
             "G": 7, "T": 8, "N": 9, "AC": 10, "GT": 11, "ACGT": 12}
    raw = Tokenizer(models.BPE(vocab, [("A", "C"), ("G", "T"), ("AC", "GT")], unk_token="[UNK]"))
    raw.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    return PreTrainedTokenizerFast(tokenizer_object=raw, pad_token="[PAD]", unk_token="[UNK]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")


def small_dnabert(seed: int = 0):
    from virnuc_hpc.models.dnabert import DnabertConfig, DnabertModel

    torch.manual_seed(seed)
    config = DnabertConfig(vocab_size=13, hidden_size=48, num_hidden_layers=2,
                           num_attention_heads=6, intermediate_size=96)
    return DnabertModel(config).eval()


def random_dna(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(list("ACGT"), size=rng.integers(10, 120))) for _ in range(n)]


def virnucpro_dnabert(model, tokenizer, dna: list[str]) -> np.ndarray:
    """VirNucPro's extract_DNABERT_S: one sequence per forward, mean over all tokens."""
    with torch.inference_mode():
        return torch.stack([model(torch.tensor([tokenizer(s)["input_ids"]]))[0].mean(0)
                            for s in dna]).numpy()


def hf_tokenizer(folder):
    """The folder's tokenizer as VirNucPro loads it (transformers), independent of ours."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast.from_pretrained(str(folder))


def test_dnabert_fp32_reproduces_virnucpro_in_input_order():
    dna, tokenizer = random_dna(30), char_tokenizer()
    expected = virnucpro_dnabert(small_dnabert(), tokenizer, dna)
    encoder = DnabertEncoder(small_dnabert(), tokenizer, tokens_per_batch=200)
    assert encoder.dim == 48
    got = encoder.embed(dna)
    assert got.shape == (30, 48) and np.abs(got - expected).max() < 1e-5


def test_dnabert_bf16_uses_sdpa_and_stays_within_cosine():
    dna, tokenizer = random_dna(30, seed=1), char_tokenizer()
    reference = DnabertEncoder(small_dnabert(), tokenizer).embed(dna)
    encoder = DnabertEncoder(small_dnabert(), tokenizer, precision="bf16", tokens_per_batch=300)
    assert {layer.attention.self.impl for layer in encoder.model.encoder.layer} == {"sdpa"}
    assert min_cosine(encoder.embed(dna), reference) >= 0.999


def test_dnabert_tiny_profile_folder_batched_equals_one_at_a_time(tmp_path):
    """The tiny profile's on-disk DNABERT-S (its [PAD] id differs from config.pad_token_id)."""
    from virnuc_hpc.models.dnabert import load_dnabert
    from virnuc_hpc.models.tiny import dnabert_files

    for name, data in dnabert_files().items():
        (tmp_path / name).write_bytes(data)
    tokenizer, model = load_dnabert(tmp_path)
    dna = random_dna(12, seed=4)
    expected = virnucpro_dnabert(model, hf_tokenizer(tmp_path), dna)
    got = DnabertEncoder(model, tokenizer, tokens_per_batch=64).embed(dna)
    assert np.abs(got - expected).max() < 1e-5



@pytest.mark.parametrize("kind", ["esm", "dnabert"])
def test_a_row_is_the_same_bits_whatever_shares_its_batch(kind):
    """Rows must not depend on the batch (a sample's results equal its one-sample run's):
    a short sequence alone used to get BLAS's small-matrix kernels and other rounding."""
    if kind == "esm":
        seqs = random_proteins(6, low=1, high=10, seed=3) + random_proteins(30, seed=4)
        encoder = EsmEncoder(small_esm2(), ALPHABET)
    else:
        seqs = [s[:n] for s, n in zip(random_dna(36, seed=5), [3, 5, 8, 12, 20] * 8)]
        encoder = DnabertEncoder(small_dnabert(), char_tokenizer())
    together = encoder.embed(seqs)
    alone = np.stack([encoder.embed([s])[0] for s in seqs])
    assert np.array_equal(alone, together)
    reordered = encoder.embed(seqs[::-1] + random_proteins(3, seed=9)[: kind == "esm"])
    assert np.array_equal(reordered[:len(seqs)][::-1], together)

# ---- CLI: embed and bench ------------------------------------------------------------------

def write_fasta(path, records) -> None:
    path.write_text("".join(f">{rid} some description\n{seq}\n" for rid, seq in records))


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("VIRNUC_HPC_CACHE", str(root))
    return root


def cli(*argv) -> int:
    from virnuc_hpc.cli import main

    return main([str(a) for a in argv])


def test_embed_cli_dnabert_writes_ids_and_rows_in_input_order(tmp_path, cache):
    from virnuc_hpc.models.encoders import read_embeddings
    from virnuc_hpc.models import ModelCache, get_spec, load_dnabert

    dna = random_dna(9, seed=7)
    write_fasta(tmp_path / "in.fa", [(f"s{i}", s) for i, s in enumerate(dna)])
    out = tmp_path / "out" / "dna.safetensors"
    assert cli("embed", tmp_path / "in.fa", "--model", "tiny-dnabert-s", "--out", out,
               "--tokens-per-batch", 100) == 0
    ids, rows = read_embeddings(out)
    assert ids == [f"s{i}" for i in range(9)] and rows.dtype == np.float32
    folder = ModelCache().load_path(get_spec("tiny-dnabert-s"))
    _, model = load_dnabert(folder)
    assert np.abs(rows - virnucpro_dnabert(model, hf_tokenizer(folder), dna)).max() < 1e-5


def test_embed_cli_esm_from_model_path(tmp_path, cache):
    from virnuc_hpc.models.encoders import read_embeddings
    from virnuc_hpc.models import ModelCache, get_spec, load_esm

    checkpoint = ModelCache().prewarm(get_spec("tiny-esm2"))
    proteins = random_proteins(7, seed=8)
    assert any(set(p) & set("EFILPQ") for p in proteins)   # real protein-only letters
    write_fasta(tmp_path / "in.faa", [(f"p{i}", p) for i, p in enumerate(proteins)])
    out = tmp_path / "prot.safetensors"
    assert cli("embed", tmp_path / "in.faa", "--model", "tiny-esm2", "--model-path", checkpoint,
               "--out", out, "--precision", "bf16") == 0
    ids, rows = read_embeddings(out)
    model, _ = load_esm(checkpoint)
    assert ids == [f"p{i}" for i in range(7)] and rows.shape == (7, 64)
    assert min_cosine(rows, virnucpro_esm(model, proteins)) >= 0.999


def test_embed_cli_refuses_a_classifier(tmp_path, cache, capsys):
    write_fasta(tmp_path / "in.fa", [("a", "ACGT")])
    assert cli("embed", tmp_path / "in.fa", "--model", "virnucpro-300", "--out",
               tmp_path / "x.safetensors") == 2
    assert "not an encoder" in capsys.readouterr().err
    assert not (tmp_path / "x.safetensors").exists()


@pytest.mark.parametrize("model", ["esm2_t6_8M_UR50D", "dnabert-s"])
def test_bench_runs_on_cpu_and_reports_rates(model, capsys):
    import json

    assert cli("bench", "--model", model, "--random-weights", "--device", "cpu",
               "--sequences", 3 if model == "dnabert-s" else 8, "--repeats", 1, "--json") == 0
    result = json.loads(capsys.readouterr().out)
    assert result["model"] == model and result["matmul_dtype"] == "float32"
    assert result["tokens_per_s"] > 0 and 0 < result["mfu"] < 2
    assert result["warmup_s"] > 0 and len(result["pass_s"]) == 1 and not result["compiled"]
    low, high = (90, 100) if model != "dnabert-s" else (68, 75)
    assert low * result["sequences"] <= result["residues"] <= high * result["sequences"]


def test_bench_needs_random_weights(capsys):
    assert cli("bench", "--model", "esm2_t6_8M_UR50D", "--device", "cpu") == 2
    assert "--random-weights" in capsys.readouterr().err


def test_host_memory_stays_flat_over_many_batches():
    """RSS after the first batch bounds every later one (no retained graphs or tensors, and
    no heap drift from glibc's sliding mmap threshold)."""
    def rss() -> int:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1])

    encoder = DnabertEncoder(small_dnabert(), char_tokenizer(), tokens_per_batch=1000)
    rng = np.random.default_rng(9)
    dna = ["".join(rng.choice(list("ACGT"), size=rng.integers(100, 400))) for _ in range(300)]
    samples = [rss() for _ in encoder.iter_embed(encoder.tokenize(dna))]
    assert len(samples) > 20
    assert max(samples) <= 1.05 * samples[0]


def test_a_gpu_budget_is_sized_from_free_memory_within_bounds():
    from virnuc_hpc.models.encoders import AUTO_BUDGET, activation_bytes, budget_from_memory

    per_token = activation_bytes(2560, 40, 170, 2, eager=False)   # ESM-2 3B, bf16, fused
    assert budget_from_memory(74 << 30, per_token) == AUTO_BUDGET[1]     # an H100 after weights
    assert budget_from_memory(10 << 30, per_token) == 32768              # a 16 GB card
    assert budget_from_memory(1 << 30, per_token) == AUTO_BUDGET[0]
    assert activation_bytes(2560, 40, 170, 4, eager=True) > 2 * per_token  # fp32 eager costs more


def test_the_budget_is_set_at_the_first_batch_from_what_the_gpu_has_free(monkeypatch):
    """The sizing step of a GPU run, driven on the CPU with a faked free-memory figure."""
    encoder = EsmEncoder(small_esm2(), ALPHABET, "cpu", "fp32")
    encoder.tokens_per_batch = None            # what a GPU encoder starts with
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (8 << 20, 16 << 20))
    proteins = random_proteins(40)
    rows = encoder.embed(proteins)
    expected = max(4096, 1 << (int((8 << 20) * 0.6 // encoder.bytes_per_token(
        max(len(p) for p in proteins) + 2)).bit_length() - 1))
    assert encoder.tokens_per_batch == min(expected, 65536)
    np.testing.assert_array_equal(rows, EsmEncoder(small_esm2(), ALPHABET, "cpu", "fp32",
                                                   encoder.tokens_per_batch).embed(proteins))


def test_the_fp32_path_runs_without_tf32():
    torch.backends.cuda.matmul.allow_tf32 = True
    try:
        EsmEncoder(small_esm2(), ALPHABET, "cpu", "fp32")
        assert torch.backends.cuda.matmul.allow_tf32 is False
    finally:
        torch.backends.cuda.matmul.allow_tf32 = False

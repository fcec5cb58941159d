"""DNABERT-S: the batched, padded forward against a per-sequence reference (published-style code
run one unpadded sequence at a time, eager fp32), and strict loading."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from virnuc_hpc.core.errors import ConfigError
from virnuc_hpc.models import load_dnabert, masked_mean, reference
from virnuc_hpc.models.dnabert import alibi_slopes
from virnuc_hpc.models.tiny import TINY_DNABERT, dnabert_files

SEQS = ["ACGTTGCAAGGCTTAACG" * 9, "ACGT", "GGGCCCAAATTTACGATCGATTTACG", "T" * 41, "ACGATCGGCA" * 30]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("dnabert")
    for name, data in dnabert_files().items():
        (path / name).write_bytes(data)
    return path


def test_alibi_slopes_for_twelve_heads_follow_the_published_rule():
    first_eight = [2.0 ** -(h + 1) for h in range(8)]
    every_second_of_sixteen = [2.0 ** -0.5, 2.0 ** -1.5, 2.0 ** -2.5, 2.0 ** -3.5]
    assert alibi_slopes(12) == pytest.approx(first_eight + every_second_of_sixteen, rel=1e-12)
    assert alibi_slopes(8) == pytest.approx(first_eight, rel=1e-12)


@pytest.fixture(scope="module")
def published(folder):
    """The per-sequence reference: published-style code (published_standin/, unpadded,
    one sequence at a time) on the folder's weights."""
    layers = reference.import_published(Path(__file__).parent / "published_standin")
    state = torch.load(folder / "pytorch_model.bin", weights_only=True)
    return reference.published_model(layers, folder / "config.json", state)


def reference_hidden(published, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return published(ids[None])[0][0]


def hf_tokenizer(folder):
    """transformers' own fast tokenizer of the folder: what the published code uses."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast.from_pretrained(str(folder))


def test_tokenizer_matches_transformers(folder):
    ours, _ = load_dnabert(folder)
    theirs = hf_tokenizer(folder)
    gen = torch.Generator().manual_seed(3)
    seqs = SEQS + ["".join("ACGTN"[i] for i in torch.randint(0, 5, (n,), generator=gen))
                   for n in (1, 7, 250, 501)]
    assert ours(seqs)["input_ids"] == theirs(seqs)["input_ids"]
    assert ours(seqs[0])["input_ids"] == theirs(seqs[0])["input_ids"]
    assert (ours.pad_token_id, ours.cls_token_id, ours.sep_token_id) == \
        (theirs.pad_token_id, theirs.cls_token_id, theirs.sep_token_id)


def test_batched_padded_forward_matches_per_sequence_reference(folder, published):
    _, model = load_dnabert(folder)
    tokenizer = hf_tokenizer(folder)
    batch = tokenizer(SEQS, return_tensors="pt", padding=True)
    assert batch["attention_mask"].sum(1).unique().numel() > 1  # really padded
    with torch.no_grad():
        hidden = model(batch["input_ids"], batch["attention_mask"])
        pooled = masked_mean(hidden, batch["attention_mask"])
    for row, seq in enumerate(SEQS):
        ids = tokenizer(seq, return_tensors="pt")["input_ids"][0]
        assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
        n = len(ids)
        ref = reference_hidden(published, ids)
        torch.testing.assert_close(hidden[row, :n], ref, atol=1e-5, rtol=0)
        assert not hidden[row, n:].any()  # padded positions come out as zeros
        # VirNucPro: mean over every token, [CLS] and [SEP] included
        torch.testing.assert_close(pooled[row], ref.mean(0), atol=1e-5, rtol=0)


def test_sdpa_matches_eager_in_fp32(folder):
    _, model = load_dnabert(folder)
    tokenizer = hf_tokenizer(folder)
    batch = tokenizer(SEQS, return_tensors="pt", padding=True)
    with torch.no_grad():
        eager = model(batch["input_ids"], batch["attention_mask"])
        fused = model.set_attention("sdpa")(batch["input_ids"], batch["attention_mask"])
    torch.testing.assert_close(fused, eager, atol=1e-5, rtol=0)
    with pytest.raises(ConfigError, match="eager, sdpa"):
        model.set_attention("flash")


def test_sequences_longer_than_alibi_starting_size(folder, published):
    _, model = load_dnabert(folder)
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(5, TINY_DNABERT.vocab_size, (600,), generator=gen)
    with torch.no_grad():
        out = model(ids[None], torch.ones(1, 600, dtype=torch.long))[0]
    torch.testing.assert_close(out, reference_hidden(published, ids), atol=1e-5, rtol=0)


def test_loading_is_strict_both_ways(folder, tmp_path):
    for name, data in dnabert_files().items():
        (tmp_path / name).write_bytes(data)
    state = torch.load(folder / "pytorch_model.bin", weights_only=True)
    state.pop("pooler.dense.bias")
    torch.save(state, tmp_path / "pytorch_model.bin")
    with pytest.raises(RuntimeError, match="pooler.dense.bias"):
        load_dnabert(tmp_path)
    state["pooler.dense.bias"] = torch.zeros(TINY_DNABERT.hidden_size)
    state["embeddings.position_embeddings.weight"] = torch.zeros(3, TINY_DNABERT.hidden_size)
    torch.save(state, tmp_path / "pytorch_model.bin")
    with pytest.raises(RuntimeError, match="position_embeddings"):
        load_dnabert(tmp_path)


def test_safetensors_folder_loads_the_same_model(folder, tmp_path):
    for name, data in dnabert_files().items():
        if name != "pytorch_model.bin":
            (tmp_path / name).write_bytes(data)
    state = torch.load(folder / "pytorch_model.bin", weights_only=True)
    save_file({k: v.contiguous() for k, v in state.items()}, tmp_path / "model.safetensors")
    _, from_bin = load_dnabert(folder)
    _, from_st = load_dnabert(tmp_path)
    for (k1, v1), (k2, v2) in zip(from_bin.state_dict().items(), from_st.state_dict().items()):
        assert k1 == k2 and torch.equal(v1, v2)

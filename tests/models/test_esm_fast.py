"""The fused ESM-2 forward against fair-esm's own, on a small random ESM-2."""

from __future__ import annotations

import esm
import pytest
import torch
from esm.model.esm2 import ESM2
from esm.rotary_embedding import RotaryEmbedding

from virnuc_hpc.models.esm_fast import FastEsm2, rotary_tables

ALPHABET = esm.data.Alphabet.from_architecture("ESM-1b")
PROTEINS = ["MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ", "MKV", "ACDEFGHIKLMNPQRSTVWYX" * 4, "W<mask>LLK"]


def small_esm2(seed: int = 0, layers: int = 2) -> ESM2:
    torch.manual_seed(seed)
    return ESM2(num_layers=layers, embed_dim=64, attention_heads=4, alphabet=ALPHABET,
                token_dropout=True).eval()


def batch(proteins=PROTEINS) -> torch.Tensor:
    _, _, tokens = ALPHABET.get_batch_converter()([(str(i), p) for i, p in enumerate(proteins)])
    return tokens


def reference(model: ESM2, tokens: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model(tokens, repr_layers=[model.num_layers])["representations"][model.num_layers]


def test_fp32_matches_fair_esm_forward_on_real_positions():
    model, tokens = small_esm2(), batch()
    expected = reference(model, tokens)
    with torch.inference_mode():
        got = FastEsm2(model)(tokens)
    real = tokens.ne(ALPHABET.padding_idx)
    assert got.dtype == torch.float32 and got.shape == expected.shape
    assert (got - expected)[real].abs().max().item() < 1e-5


def test_unpadded_batch_matches_too():
    model, tokens = small_esm2(seed=3), batch(["MKTAYIAKQR", "ACDEFGHIKL"])
    with torch.inference_mode():
        assert (FastEsm2(model)(tokens) - reference(model, tokens)).abs().max().item() < 1e-5


def test_token_dropout_rescale_is_applied():
    """Without the 0.88 rescale the output would move far beyond tolerance."""
    model, tokens = small_esm2(), batch()
    fast = FastEsm2(model)
    with torch.inference_mode():
        with_rescale = fast(tokens)
        model.token_dropout = False
        without = fast(tokens)
    assert (with_rescale - without).abs().max().item() > 1e-2


def test_fusing_shares_storage_and_keeps_state_dict():
    model = small_esm2()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fast = FastEsm2(model)
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    attn, (weight, _) = model.layers[0].self_attn, fast.qkv[0]
    assert attn.k_proj.weight.data_ptr() == weight[64:].data_ptr()


def test_rotary_tables_match_fair_esm_in_fp32():
    rotary = RotaryEmbedding(16)
    ref_cos, ref_sin = rotary._update_cos_sin_tables(torch.zeros(1, 300, 16), seq_dimension=1)
    cos, sin = rotary_tables(300, 16, "cpu")
    assert cos.dtype == torch.float32
    assert torch.allclose(cos, ref_cos[0], atol=1e-6) and torch.allclose(sin, ref_sin[0], atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_reduced_precision_rows_stay_within_cosine(dtype):
    model, tokens = small_esm2(seed=1, layers=3), batch()
    expected = reference(model, tokens)
    with torch.inference_mode():
        got = FastEsm2(model.to(dtype))(tokens)
    real = tokens.ne(ALPHABET.padding_idx)
    cos = torch.nn.functional.cosine_similarity(got[real], expected[real], dim=-1)
    assert cos.min().item() >= 0.999


def test_rejects_other_architectures():
    with pytest.raises(TypeError, match="ESM2"):
        FastEsm2(torch.nn.Linear(2, 2))


def test_compiled_layers_match_fair_esm_and_do_not_recompile_per_length():
    """`compile_layers`: one dynamic-shape graph per mask kind, whatever the batch lengths."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    model = small_esm2(seed=5)
    fast = FastEsm2(model, compile_layers=True)
    shapes = []
    for proteins in (PROTEINS, ["MKV" * 7, "MK"], ["ACDEFGHIKLMNPQRSTVWY" * 3] * 3,
                     ["MKTAYIAKQRQ", "MKTAYIAKQRQISFVKSHFSRQLEE"]):
        tokens = batch(proteins)
        shapes.append(tuple(tokens.shape))
        with torch.inference_mode():
            got = fast(tokens)
        real = tokens.ne(ALPHABET.padding_idx)
        assert (got - reference(model, tokens))[real].abs().max().item() < 1e-5
    assert len(set(shapes)) == 4
    assert counters["stats"]["unique_graphs"] == 2  # with a padding mask, and without

"""ESM-2 through fair-esm's checkpoint format, loaded weights_only."""

import argparse
import os

import pytest
import torch
from esm.data import Alphabet
from esm.model.esm2 import ESM2

from virnuc_hpc.core.errors import UserError
from virnuc_hpc.models import load_esm
from virnuc_hpc.models.tiny import TINY_ESM, TINY_ESM_FILE, esm_files

PROTEINS = [("a", "MKTAYIAKQRQISFVKSHFSRQ"), ("b", "MKV"), ("c", "GGLLVVAAKKRREEDD" * 5)]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("esm") / TINY_ESM_FILE
    path.write_bytes(esm_files()[TINY_ESM_FILE])
    return path


def fair_esm_reference(checkpoint_path):
    """fair-esm's own ESM2, built from the checkpoint's cfg with the prefixes stripped by hand."""
    with torch.serialization.safe_globals([argparse.Namespace]):
        data = torch.load(checkpoint_path, weights_only=True)
    cfg = data["cfg"]["model"]
    assert isinstance(cfg, argparse.Namespace) and cfg.token_dropout is True
    model = ESM2(cfg.encoder_layers, cfg.encoder_embed_dim, cfg.encoder_attention_heads,
                 Alphabet.from_architecture("ESM-1b"), token_dropout=cfg.token_dropout)
    state = {}
    for key, value in data["model"].items():
        for prefix in ("encoder.sentence_encoder.", "encoder."):
            if key.startswith(prefix):
                state[key[len(prefix):]] = value
                break
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert set(missing) == {"contact_head.regression.weight", "contact_head.regression.bias"}
    assert not unexpected
    return model.eval()


def test_tiny_checkpoint_round_trips_to_fair_esm_forward(checkpoint):
    model, alphabet = load_esm(checkpoint)
    reference = fair_esm_reference(checkpoint)
    _, _, tokens = alphabet.get_batch_converter()(PROTEINS)
    layer = TINY_ESM["layers"]
    with torch.no_grad():
        ours = model(tokens, repr_layers=[layer])["representations"][layer]
        theirs = reference(tokens, repr_layers=[layer])["representations"][layer]
    assert ours.shape[-1] == TINY_ESM["dim"] and model.token_dropout
    torch.testing.assert_close(ours, theirs, atol=0, rtol=0)
    assert not model.training


def test_checkpoint_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "esm2_t2_64_evil.pt"
    torch.save({"model": {}, "cfg": Evil()}, path)
    with pytest.raises(UserError, match="not a loadable fair-esm checkpoint"):
        load_esm(path)
    assert not marker.exists()


def test_missing_checkpoint_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no such ESM checkpoint"):
        load_esm(tmp_path / "esm2_nothing.pt")


def test_the_model_is_never_randomly_initialised(checkpoint, monkeypatch):
    """ESM-2 is built as a skeleton and given the checkpoint's tensors: an init function
    run on real memory while loading would be wasted work (a minute for 3B)."""
    def refuse(tensor, *args, **kwargs):
        if not tensor.is_meta:
            raise AssertionError("random initialisation of real memory while loading")
        return tensor

    for name in ("uniform_", "normal_", "xavier_uniform_", "kaiming_uniform_", "zeros_",
                 "ones_", "constant_"):
        monkeypatch.setattr(torch.nn.init, name, refuse)
    model, _ = load_esm(checkpoint)
    assert not any(p.is_meta for p in model.parameters())


def test_loading_at_bf16_equals_fair_esm_cast_to_bf16(checkpoint):
    model, alphabet = load_esm(checkpoint, dtype=torch.bfloat16)
    reference = fair_esm_reference(checkpoint).to(torch.bfloat16)
    ours, theirs = model.state_dict(), reference.state_dict()
    assert ours.keys() == theirs.keys()
    for key in theirs:
        if not key.startswith("contact_head.regression"):
            assert ours[key].dtype == torch.bfloat16
            assert torch.equal(ours[key], theirs[key]), key

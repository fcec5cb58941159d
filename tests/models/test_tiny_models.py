"""Tiny models: byte-identical from a seed, published key names, labelled not meaningful."""

import json

import torch

from virnuc_hpc.models import tiny
from virnuc_hpc.models.tiny import TINY_DNABERT, dnabert_state_shapes


def test_regeneration_is_byte_identical_and_seed_dependent():
    first = {**tiny.dnabert_files(), **tiny.esm_files(), **tiny.classifier_files()}
    again = {**tiny.dnabert_files(), **tiny.esm_files(), **tiny.classifier_files()}
    assert first == again
    other = tiny.dnabert_files(seed=tiny.SEED + 1)
    assert other["pytorch_model.bin"] != first["pytorch_model.bin"]
    assert other["tokenizer.json"] != first["tokenizer.json"]


def test_dnabert_layout_uses_the_published_key_names():
    files = tiny.dnabert_files()
    state = torch.load(__import__("io").BytesIO(files["pytorch_model.bin"]), weights_only=True)
    assert {k: tuple(v.shape) for k, v in state.items()} == dnabert_state_shapes(TINY_DNABERT)
    assert "encoder.layer.1.mlp.gated_layers.weight" in state
    assert "encoder.layer.0.mlp.gated_layers.bias" not in state  # no bias, as published
    assert not any("position_embeddings" in k for k in state)
    config = json.loads(files["config.json"])
    assert config["num_attention_heads"] == 12 and config["biologically_meaningful"] is False
    tokenizer = json.loads(files["tokenizer.json"])
    assert tokenizer["model"]["type"] == "BPE"
    assert tokenizer["post_processor"]["type"] == "TemplateProcessing"


def test_esm_checkpoint_has_fair_esm_prefixes_and_token_dropout():
    ckpt = tiny.esm_checkpoint()
    keys = set(ckpt["model"])
    assert "encoder.sentence_encoder.embed_tokens.weight" in keys
    assert "encoder.lm_head.dense.weight" in keys
    assert not any("contact_head" in k for k in keys)
    assert ckpt["cfg"]["model"].token_dropout is True


def test_in_process_classifier_equals_one_saved_by_a_real_main_script(tmp_path):
    path = tmp_path / "model.pth"
    tiny.train_style_pth_subprocess(path, seed=5, input_dim=40)
    assert tiny.train_style_pth_bytes(seed=5, input_dim=40) == path.read_bytes()
    assert b"__main__\nMLPClassifier" in path.read_bytes()

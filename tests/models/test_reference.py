"""`models check-reference`: the native DNABERT-S against published-style code on the same
weights. The stand-in (published_standin/) has the published interface; the faults below show
that the check fails when either side computes something else."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from virnuc_hpc.cli import main
from virnuc_hpc.models import ModelCache, get_spec, load_dnabert, reference
from virnuc_hpc.models.dnabert import read_state_dict

STANDIN = Path(__file__).parent / "published_standin"


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return ModelCache(tmp_path_factory.mktemp("cache")).prewarm(get_spec("tiny-dnabert-s"))


def check(args, capsys):
    code = main(["models", "check-reference", "--sequences", "8", *args])
    return code, capsys.readouterr()


def test_standin_agrees_with_native_model(weights, capsys):
    code, out = check(["--code", str(STANDIN), "--model-path", str(weights)], capsys)
    assert code == 0, out
    assert "token ids equal to transformers' PreTrainedTokenizerFast" in out.out
    assert "8 random DNA sequences" in out.out and out.out.rstrip().endswith("OK")
    report = reference.check_dnabert(STANDIN, weights, count=8)
    assert report.max_abs < 1e-5 and report.ok and report.sequences == 8


def test_random_weights_replace_every_tensor_and_still_agree(weights):
    state = read_state_dict(weights)
    fresh = reference.random_state(state, seed=7)
    assert fresh.keys() == state.keys()
    assert all(fresh[k].shape == state[k].shape and not fresh[k].equal(state[k]) for k in state)
    assert reference.check_dnabert(STANDIN, weights, random_weights=True, seed=7, count=8).ok


def test_a_different_gelu_in_the_published_code_fails_the_check(weights, tmp_path, capsys):
    code_dir = shutil.copytree(STANDIN, tmp_path / "tanh")
    layers = code_dir / "bert_layers.py"
    layers.write_text(layers.read_text().replace('approximate="none"', 'approximate="tanh"'))
    code, out = check(["--code", str(code_dir), "--model-path", str(weights)], capsys)
    assert code == 1 and out.out.rstrip().endswith("FAILED")


def test_unmasked_padding_in_the_native_batches_fails_the_check(weights, monkeypatch):
    monkeypatch.setattr("virnuc_hpc.models.dnabert.PAD_BIAS", 0.0)
    report = reference.check_dnabert(STANDIN, weights, count=8)
    assert not report.ok and report.max_abs > 1e-3


def test_the_triton_stand_in_is_switched_off(weights):
    """The stand-in's 'Triton kernel' drops the ALiBi bias: left on, it would fail the check."""
    layers = reference.import_published(STANDIN)
    assert layers.flash_attn_qkvpacked_func is None
    with pytest.raises(ImportError):  # made unimportable, as with Triton uninstalled
        __import__(layers.__name__.rsplit(".", 1)[0] + ".flash_attn_triton")
    tokenizer, _ = load_dnabert(weights)
    model = reference.published_model(layers, weights / "config.json", read_state_dict(weights))
    ids = tokenizer(reference.random_dna(0, 4))["input_ids"]
    switched_off = reference.published_means(model, ids)
    from tests.models.published_standin.flash_attn_triton import flash_attn_qkvpacked_func

    layers.flash_attn_qkvpacked_func = flash_attn_qkvpacked_func
    try:
        assert np.abs(reference.published_means(model, ids) - switched_off).max() > 1e-3
    finally:
        layers.flash_attn_qkvpacked_func = None


def test_folder_without_published_code_is_a_one_line_error(weights, tmp_path, capsys):
    code, out = check(["--code", str(tmp_path), "--model-path", str(weights)], capsys)
    assert code == 2 and "no bert_layers.py" in out.err and "fix:" in out.err
    code, out = check(["--code", str(STANDIN), "--model", "tiny-esm2"], capsys)
    assert code == 2 and "compares DNABERT models" in out.err


@pytest.mark.parametrize("line, expect", [
    ("import einops_is_not_installed\n", "pip install einops_is_not_installed"),
    ("from .bert_padding_v2 import pad_input\n", "imports bert_padding_v2.py"),
])
def test_missing_imports_of_the_published_code_name_the_fix(weights, tmp_path, capsys, line,
                                                             expect):
    code_dir = shutil.copytree(STANDIN, tmp_path / "code")
    layers = code_dir / "bert_layers.py"
    layers.write_text(line + layers.read_text())
    code, out = check(["--code", str(code_dir), "--model-path", str(weights)], capsys)
    assert code == 2 and expect in out.err and "Traceback" not in out.err

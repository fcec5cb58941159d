"""Run options: validated once, early, with the fix named; recorded in the plan."""

import pytest

from tests.helpers import REPO, run_cli
from virnuc_hpc.models.encoders import EsmEncoder
from virnuc_hpc.core.errors import ConfigError
from virnuc_hpc.core.config import RunConfig
from virnuc_hpc.plan.settle import load_config


def test_defaults_are_left_out_of_the_fingerprinted_dict():
    assert RunConfig().as_dict() == {}
    assert RunConfig(precision="bf16", compile=True).as_dict() == {"precision": "bf16",
                                                                   "compile": True}


@pytest.mark.parametrize("options, message", [
    ({"precision": "fp64"}, "fp32, bf16, fp16"),
    ({"tokens_per_batch": 0}, "positive integer"),
    ({"compile": True}, "add --precision bf16"),
    ({"compile": "yes", "precision": "bf16"}, "true or false"),
    ({"batch_size": 4}, "valid: precision, tokens_per_batch, part_rows, compile, features"),
    ({"features": "fp64"}, r"not one of fp32, fp16, none \(--features or `features:` in the "
                           r"config\); fix: fp32 or fp16 to keep"),
])
def test_bad_options_name_the_valid_choices_or_the_fix(options, message):
    with pytest.raises(ConfigError, match=message):
        load_config(**options) if "batch_size" not in options else RunConfig.from_dict(options)


def test_compile_needs_the_fused_path_in_the_encoder_too():
    from tests.models.test_esm_fast import ALPHABET, small_esm2

    with pytest.raises(ConfigError, match="bf16/fp16"):
        EsmEncoder(small_esm2(), ALPHABET, "cpu", "fp32", compile_layers=True)


def test_plan_refuses_compile_at_fp32_before_writing_anything(tmp_path, golden):
    result = run_cli("plan", str(golden / "generated" / "input.fa"), "--run-dir",
                     str(tmp_path / "run"), "--models", "tiny", "--shards", "2", "--compile")
    assert result.returncode == 2 and "fix: add --precision bf16" in result.stderr
    assert not (tmp_path / "run").exists()


def test_compile_is_recorded_in_the_plan_and_reaches_the_tasks(tmp_path, golden, tiny_cache):
    from virnuc_hpc.task.run import task_options

    run_dir = tmp_path / "run"
    result = run_cli("plan", str(golden / "generated" / "input.fa"), "--run-dir", str(run_dir),
                     "--models", "tiny", "--shards", "2", "--precision", "bf16", "--compile")
    assert result.returncode == 0, result.stderr
    options = task_options(run_dir, "cpu")
    assert options.compile is True and options.precision == "bf16"


def test_compile_is_refused_for_dnabert(tmp_path, tiny_cache):
    (tmp_path / "x.fa").write_text(">a\nACGTACGTAC\n")
    result = run_cli("embed", tmp_path / "x.fa", "--model", "tiny-dnabert-s", "--out",
                     tmp_path / "x.safetensors", "--precision", "bf16", "--compile")
    assert result.returncode == 2 and "DNABERT-S runs uncompiled" in result.stderr


def test_features_default_to_the_scores_only_and_keep_a_default_run_fingerprint():
    assert RunConfig().features == "none" and RunConfig().as_dict() == {}
    assert RunConfig(features="fp16").as_dict() == {"features": "fp16"}


def test_features_come_from_the_config_file_and_the_flag_wins(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("features: fp16\npart_rows: 64\n")
    assert load_config(config).features == "fp16"
    assert load_config(config, features="fp32").features == "fp32"
    config.write_text("features: fp64\n")
    with pytest.raises(ConfigError, match="fp32, fp16, none"):
        load_config(config)


def test_bad_features_in_the_config_are_refused_before_anything_is_written(tmp_path, golden):
    config = tmp_path / "run.yaml"
    config.write_text("features: fp64\n")
    result = run_cli("plan", str(golden / "generated" / "input.fa"), "--run-dir",
                     str(tmp_path / "run"), "--models", "tiny", "--config", str(config))
    assert result.returncode == 2 and "fp32, fp16, none" in result.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("command", ["plan", "predict", "submit"])
def test_plan_predict_and_submit_take_features(command):
    result = run_cli(command, "--help")
    assert "--features {fp32,fp16,none}" in result.stdout


def test_features_are_recorded_in_the_plan_and_reach_the_tasks(tmp_path, golden, tiny_cache):
    from virnuc_hpc.plan import load_plan
    from virnuc_hpc.task.run import task_options

    run_dir = tmp_path / "run"
    result = run_cli("plan", str(golden / "generated" / "input.fa"), "--run-dir", str(run_dir),
                     "--models", "tiny", "--shards", "2", "--features", "fp16")
    assert result.returncode == 0, result.stderr
    assert load_plan(run_dir).config.as_dict() == {"features": "fp16"}
    assert task_options(run_dir, "cpu").features == "fp16"


def test_predict_refuses_to_resume_a_run_planned_with_other_features(tmp_path, golden,
                                                                      tiny_cache):
    fasta, out = str(golden / "generated" / "input.fa"), str(tmp_path / "out")
    planned = run_cli("plan", fasta, "--run-dir", out, "--models", "tiny", "--shards", "2")
    assert planned.returncode == 0, planned.stderr
    result = run_cli("predict", fasta, "-o", out, "--models", "tiny", "--shards", "2",
                     "--features", "fp16")
    assert result.returncode == 2 and "other inputs, models or options" in result.stderr


def test_no_invariant_is_recorded_and_shown_where_the_precision_is(tmp_path, tiny_cache):
    """`--no-invariant` (length-sorted batches) is in plan.json, status, summary.json and the
    report, like the precision; the default says it is invariant."""
    import json

    from virnuc_hpc.task.run import task_options

    example = REPO / "examples" / "reads.fa"
    out = tmp_path / "sorted"
    done = run_cli("predict", example, "-o", out, "--models", "tiny", "--quiet",
                   "--no-invariant")
    assert done.returncode == 0, done.stderr
    plan = json.loads((out / "plan.json").read_text())
    assert plan["config"]["invariant"] is False and plan["batching"]["invariant"] is False
    assert task_options(out, "cpu").shapes is None
    status = run_cli("status", out)
    assert "length-sorted batches (--no-invariant)" in status.stdout
    summary = json.loads((out / "results" / "summary.json").read_text())
    assert summary["batching"]["invariant"] is False
    assert "length-sorted (--no-invariant)" in (out / "results" / "report.html").read_text()
    default = tmp_path / "default"
    assert run_cli("plan", example, "--run-dir", default, "--models", "tiny").returncode == 0
    assert task_options(default, "cpu").shapes is not None
    assert "length-sorted" not in run_cli("status", default).stdout


@pytest.mark.parametrize("options, message", [
    ({"invariant": "yes"}, "invariant must be true or false"),
    ({"chunk_tokens": 0}, "chunk_tokens must be a positive integer"),
    ({"group_tokens": 2.5}, "group_tokens must be a positive integer"),
])
def test_bad_batching_options_are_refused(options, message):
    with pytest.raises(ConfigError, match=message):
        RunConfig.from_dict(options)

"""Where tasks run and the precision a run settles at: bf16 on GPUs that run it, fp16 on older
ones, fp32 without a GPU; flags and config files win; one precision per run, refused at once
by a task whose GPU cannot run it."""

from __future__ import annotations

import json
import os
import stat

import pytest

from tests.helpers import REPO, run_cli
from virnuc_hpc.plan.devices import (Gpu, Target, capability_of, local_gpus, partition_gpus,
                                settle_precision, supports)

EXAMPLE = REPO / "examples" / "reads.fa"


def fake_nvidia_smi(folder, rows: list[str]) -> dict:
    """An `nvidia-smi` on PATH that answers the query for `rows` (index, uuid, name, cap)."""
    folder.mkdir(exist_ok=True)
    script = folder / "nvidia-smi"
    body = "\n".join(rows)
    script.write_text(f"#!/bin/sh\ncat <<'EOF'\n{body}\nEOF\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    return {**env, "PATH": f"{folder}{os.pathsep}{env['PATH']}"}


A100 = "0, GPU-aaaa, NVIDIA A100-SXM4-80GB, 8.0"
V100 = "1, GPU-vvvv, Tesla V100-SXM2-32GB, 7.0"


@pytest.mark.parametrize("gpus, precision", [
    ((), "fp32"),
    ((Gpu("a100", (8, 0)), Gpu("h100", (9, 0))), "bf16"),
    ((Gpu("a100", (8, 0)), Gpu("v100", (7, 0))), "fp16"),   # one precision for a mixed partition
    ((Gpu("gpu", None),), "bf16"),                           # untyped Gres: the task checks
])
def test_auto_settles_by_the_gpus_the_tasks_get(gpus, precision):
    settled = settle_precision("auto", Target("p", gpus, uses_gpus=bool(gpus)))
    assert settled.precision == precision and settled.why.startswith("auto")


def test_a_given_precision_always_wins():
    old = Target("p", (Gpu("v100", (7, 0)),), uses_gpus=True)
    assert settle_precision("bf16", old).precision == "bf16"
    assert settle_precision("fp32", Target("p", (Gpu("h100", (9, 0)),), True)).precision == "fp32"


def test_gpu_types_and_what_they_run():
    assert capability_of("NVIDIA H100 80GB HBM3") == (9, 0)
    assert capability_of("Tesla V100-SXM2-32GB") == (7, 0) and capability_of("a10") == (8, 6)
    assert capability_of("mystery9000") is None
    assert supports("bf16", (8, 0)) and not supports("bf16", (7, 5)) and supports("fp16", (7, 0))
    assert supports("fp16", None)  # a CPU runs every precision
    assert [g.name for g in partition_gpus(["gpu:a100:4(S:0-1),gpu:2", "(null)"])] == \
        ["gpu", "a100"]


def test_local_gpus_come_from_nvidia_smi_and_cuda_visible_devices(tmp_path, monkeypatch):
    env = fake_nvidia_smi(tmp_path / "bin", [A100, V100])
    monkeypatch.setenv("PATH", env["PATH"])
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert [g.capability for g in local_gpus()] == [(8, 0), (7, 0)]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-aaaa")
    assert [g.name for g in local_gpus()] == ["NVIDIA A100-SXM4-80GB"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert local_gpus() == ()


def plan_json(run_dir) -> dict:
    return json.loads((run_dir / "plan.json").read_text())


@pytest.mark.parametrize("gpus, precision", [([A100], "bf16"), ([A100, V100], "fp16"),
                                             ([], "fp32")])
def test_plan_records_the_precision_of_the_gpus_here(tmp_path, tiny_cache, gpus, precision):
    env = fake_nvidia_smi(tmp_path / "bin", gpus)
    done = run_cli("plan", EXAMPLE, "--run-dir", tmp_path / "run", "--models", "tiny", env=env)
    assert done.returncode == 0, done.stderr
    plan = plan_json(tmp_path / "run")
    assert plan["config"].get("precision", "fp32") == precision
    assert f"precision: {precision} (auto:" in done.stdout


def test_flags_and_config_files_win_over_auto(tmp_path, tiny_cache):
    env = fake_nvidia_smi(tmp_path / "bin", [A100])
    config = tmp_path / "run.yaml"
    config.write_text("precision: fp16\n")
    by_file = run_cli("plan", EXAMPLE, "--run-dir", tmp_path / "a", "--models", "tiny",
                      "--config", config, env=env)
    by_flag = run_cli("plan", EXAMPLE, "--run-dir", tmp_path / "b", "--models", "tiny",
                      "--config", config, "--precision", "fp32", env=env)
    assert by_file.returncode == 0 and by_flag.returncode == 0, by_file.stderr + by_flag.stderr
    assert plan_json(tmp_path / "a")["config"]["precision"] == "fp16"
    assert "precision" not in plan_json(tmp_path / "b")["config"]  # fp32: the reference


def test_dry_run_for_a_gpu_shows_the_bf16_goal_estimate(tmp_path, tiny_cache):
    env = fake_nvidia_smi(tmp_path / "bin", [A100])
    done = run_cli("plan", EXAMPLE, "--run-dir", tmp_path / "run", "--models", "tiny",
                   "--dry-run", env=env)
    assert done.returncode == 0, done.stderr
    assert "precision: bf16" in done.stdout and "est_min" in done.stdout
    assert "95,000 residues/s per GPU (goal, not a measurement" in done.stdout
    assert not (tmp_path / "run").exists()


def test_a_plan_settled_on_a_cpu_is_resumed_by_predict_without_flags(tmp_path, tiny_cache):
    """`auto` accepts what the plan settled: the same command resumes its run."""
    out = tmp_path / "out"
    first = run_cli("plan", EXAMPLE, "--run-dir", out, "--models", "tiny")
    again = run_cli("predict", EXAMPLE, "-o", out, "--models", "tiny", "--quiet", "--no-report")
    assert first.returncode == 0 and again.returncode == 0, first.stderr + again.stderr
    other = run_cli("predict", EXAMPLE, "-o", out, "--models", "tiny", "--precision", "bf16")
    assert other.returncode == 2 and "other inputs, models or options" in other.stderr


def test_the_fixed_shapes_are_settled_for_the_tasks_gpus_and_kept_on_resume(tmp_path,
                                                                             tiny_cache):
    """Like the precision: a GPU target gets the GPU shapes, a CPU the CPU ones, both recorded
    in plan.json; the same command on the same machine resumes the run."""
    env = fake_nvidia_smi(tmp_path / "bin", [A100])
    gpu = run_cli("plan", EXAMPLE, "--run-dir", tmp_path / "gpu", "--models", "tiny", env=env)
    cpu = run_cli("plan", EXAMPLE, "--run-dir", tmp_path / "cpu", "--models", "tiny")
    assert gpu.returncode == 0 and cpu.returncode == 0, gpu.stderr + cpu.stderr
    assert plan_json(tmp_path / "gpu")["batching"] == {
        "invariant": True, "chunk_tokens": 8192, "group_tokens": 4096, "width_step": 8}
    assert plan_json(tmp_path / "cpu")["batching"] == {
        "invariant": True, "chunk_tokens": 256, "group_tokens": 64, "width_step": 8}
    assert "batches: invariant: fixed shapes (8192 tokens a call" in gpu.stdout
    resumed = run_cli("plan", EXAMPLE, "--run-dir", tmp_path / "gpu2", "--models", "tiny",
                      "--config", _shapes_config(tmp_path), env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert plan_json(tmp_path / "gpu2")["batching"]["chunk_tokens"] == 512   # the config wins


def _shapes_config(tmp_path):
    path = tmp_path / "shapes.yaml"
    path.write_text("chunk_tokens: 512\ngroup_tokens: 128\n")
    return path

"""bench/gpu_suite.py on a CPU with tiny shapes (--smoke): every step runs and writes its
figures, the missing-module line works, and a recorded rate reaches plan's estimate. This
keeps the GPU suite ready for the first lent GPU (docs/gpu-suite.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.helpers import REPO, run_cli

SUITE = REPO / "bench" / "gpu_suite.py"


def suite(*args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SUITE), *map(str, args)], capture_output=True,
                          text=True, env=env, cwd=REPO)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, tiny_cache):
    root = tmp_path_factory.mktemp("gpu-suite")
    env = dict(os.environ, VIRNUC_HPC_CACHE=str(root / "measured-cache"))
    done = suite("--device", "cpu", "--smoke", "--out", root / "out", "--workdir",
                 root / "work", "--record", env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return root, json.loads((root / "out" / "suite.json").read_text()), env


def test_every_step_runs_and_writes_figures(smoke):
    root, results, _ = smoke
    steps = results["steps"]
    assert list(steps) == ["environment", "matmul", "esm", "dnabert", "invariance", "fidelity",
                           "profile", "load", "end_to_end"]
    assert not [s for s, f in steps.items() if "error" in f or "skipped" in f]
    assert steps["environment"]["missing"] == {} and steps["matmul"]["fp32_tflops"] > 0
    labels = {r["label"] for r in steps["esm"]["rows"]}
    assert {"bf16 fixed shapes, 300 bp", "bf16 length-sorted, 300 bp", "fp16 fixed shapes, "
            "300 bp", "fp32 fixed shapes, 300 bp"} <= labels
    assert all(r["residues_per_s"] > 0 and 0 < r["mfu"] and r["tokens_per_batch"] > 0
               for r in steps["esm"]["rows"])
    assert all(r["sequences_per_s"] > 0 for r in steps["dnabert"]["rows"])
    assert steps["profile"]["top"] and (root / "out" / "profile.txt").stat().st_size > 0
    e2e = steps["end_to_end"]
    assert e2e["frames"] > 0 and e2e["frames_per_s"] > 0 and e2e["esm_only_frames_per_s"] > 0
    assert 0 < e2e["pipeline_share"]
    markdown = (root / "out" / "suite.md").read_text()
    assert "## esm" in markdown and "bf16 fixed shapes, 300 bp" in markdown


def test_fixed_shapes_keep_every_row_and_fidelity_is_measured(smoke):
    _, results, _ = smoke
    invariance = results["steps"]["invariance"]
    assert invariance["ok"] is True and invariance["frames"] >= 40
    for name in ("dnabert fixed shapes", "esm fixed shapes", "classifier fixed chunks"):
        assert all(v == 0 for v in invariance[name].values()), name
    fidelity = results["steps"]["fidelity"]
    assert fidelity["bf16"]["min_cosine"] > 0.99 and fidelity["fp16"]["min_cosine"] > 0.999


def test_a_recorded_rate_is_what_plan_estimates_with(smoke, tmp_path):
    _, results, env = smoke
    assert results["steps"]["esm"]["recorded"].endswith("esm2-3b-bf16.json")
    done = run_cli("plan", REPO / "examples" / "reads.fa", "--run-dir", tmp_path / "run",
                   "--models", "tiny", "--precision", "bf16", "--dry-run", env=env)
    assert done.returncode == 0, done.stderr
    line = next(s for s in done.stdout.splitlines() if s.startswith("GPU hours"))
    assert "(measured: bench/gpu_suite.py on cpu" in line


def test_a_missing_module_stops_it_at_once_in_one_line(tmp_path):
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "dnaio.py").write_text("raise ImportError('not here')\n")
    env = dict(os.environ, PYTHONPATH=str(shadow))
    done = suite("--device", "cpu", "--smoke", "--out", tmp_path / "out", env=env)
    assert done.returncode == 2 and not (tmp_path / "out").exists()
    assert done.stderr.strip() == ("gpu_suite: missing dnaio (bring dnaio); see "
                                   "docs/gpu-suite.md, 'Bringing the wheels'")
    only = suite("--device", "cpu", "--smoke", "--only", "esm", "--out", tmp_path / "o2",
                 "--workdir", tmp_path / "w", env=env)
    assert only.returncode == 0, only.stderr[-2000:]   # esm does not need dnaio

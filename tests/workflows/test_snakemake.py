"""The real Snakemake (PyPI, the test extra) runs workflow/Snakefile on the bundled example
sheet: one job per shard, each sample's results equal to `virnuc-hpc predict` on the same sheet
byte for byte, then MultiQC; locally (`--cores`) and with the real SLURM executor plugin
against the test cluster, where every shard is its own SLURM job with the resources the plan
gives it, and a rerun after a shard's job died runs only that shard. The study-as-one-job mode
is checked as the command it would run (`-n -p`)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO
from tests.workflows.conftest import BIN, SHEET, example_samples, tools_env
from virnuc_hpc.core.rundir import RunDir, TaskDir
from virnuc_hpc.plan.export import read_jobs

SNAKEFILE = REPO / "workflow" / "Snakefile"
CONFIG = REPO / "config" / "config.yaml"


def snakemake(workdir: Path, *args, env: dict | None = None) -> subprocess.CompletedProcess:
    """`snakemake` with the workflow, in `workdir` (its .snakemake/ goes there)."""
    return subprocess.run([str(BIN / "snakemake"), "--snakefile", str(SNAKEFILE),
                           "--directory", str(workdir), *map(str, args)],
                          capture_output=True, text=True, env=env or tools_env(), timeout=900)


def write_config(path: Path, **keys) -> Path:
    """The shipped config with `keys` changed (so the test follows the keys it documents)."""
    config = {**yaml.safe_load(CONFIG.read_text()), "samplesheet": str(SHEET), **keys}
    path.write_text(yaml.safe_dump(config))
    return path


def assert_same_results(out: Path, predicted: Path) -> None:
    """Each sample's three files, samples.tsv and versions.yml: predict's bytes."""
    ours, theirs = RunDir(out / "virnuc_hpc"), RunDir(predicted)
    for sample in example_samples():
        for mine, reference in zip(ours.outputs(sample), theirs.outputs(sample)):
            assert mine.read_bytes() == reference.read_bytes(), f"{sample}/{mine.name}"
    assert ours.samples_table.read_bytes() == theirs.samples_table.read_bytes()
    assert ours.versions.read_text() == theirs.versions.read_text()


def jobs_run(log: str, rule: str) -> int:
    """How many jobs of `rule` a Snakemake log shows started."""
    return sum(1 for line in log.splitlines() if line.strip() in (f"rule {rule}:",
                                                                 f"localrule {rule}:"))


def test_the_example_config_runs_a_job_per_shard_equal_to_predict_then_multiqc(
        predicted_example, tmp_path):
    config = write_config(tmp_path / "config.yaml", outdir="out", models="tiny", report=False)
    done = snakemake(tmp_path, "--configfile", config, "--cores", "2")
    log = done.stdout + done.stderr
    assert done.returncode == 0, log
    jobs = read_jobs(tmp_path / "out" / "shards" / "shards.tsv")
    assert len(jobs) == yaml.safe_load(CONFIG.read_text())["shards"] >= 2
    assert jobs_run(log, "run_task") == len(jobs)
    assert_same_results(tmp_path / "out", predicted_example)
    general = tmp_path / "out" / "multiqc" / "multiqc_data" / "multiqc_general_stats.txt"
    rows = general.read_text().splitlines()[1:]
    assert sorted(row.split("\t")[0] for row in rows) == sorted(example_samples())
    again = snakemake(tmp_path, "--configfile", config, "--cores", "2")
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr


def slurm_env(cluster, root: Path) -> dict:
    """The environment a user has on a login node: sbatch and squeue find the cluster, the
    real `sacct` answers (accounting is off: the plugin reads squeue), and `srun` inside a
    job finds the cluster's config (the plugin's job step drops SLURM_* variables, so a site
    keeps it where every node finds it; this cluster's is in a temp dir)."""
    path = [p for p in os.environ["PATH"].split(os.pathsep) if p != str(cluster.bin)]
    wrappers = root / "bin"
    wrappers.mkdir()
    srun = wrappers / "srun"
    real = shutil.which("srun", path=os.pathsep.join(path))
    srun.write_text(f"#!/bin/sh\nexport SLURM_CONF={cluster.conf}\nexec {real} \"$@\"\n")
    srun.chmod(0o755)
    return {**os.environ, "SLURM_CONF": str(cluster.conf),
            "PATH": os.pathsep.join([str(wrappers), str(BIN), *path])}


SLURM_FLAGS = ("--executor", "slurm", "--jobs", "3", "--default-resources",
               "slurm_partition=debug", "--slurm-status-command", "squeue",
               "--slurm-init-seconds-before-status-checks", "1", "--keep-going")


def test_on_slurm_every_shard_is_a_job_and_a_rerun_runs_only_the_dead_one(
        slurm_cluster, predicted_example, tmp_path):
    config = write_config(tmp_path / "config.yaml", outdir="out", models="tiny", report=False)
    env = slurm_env(slurm_cluster, tmp_path)
    first = snakemake(tmp_path, "--configfile", config, *SLURM_FLAGS,
                      env={**env, "VIRNUC_HPC_FAULTS": "part.writing:*00001/part-*=kill"})
    assert first.returncode != 0, first.stdout + first.stderr   # shard 1's job was killed
    tasks = tmp_path / "out" / "tasks"
    kept = {name: TaskDir(tasks / name).done.read_bytes() for name in ("00000", "00002")}
    assert not TaskDir(tasks / "00001").done.exists()
    again = snakemake(tmp_path, "--configfile", config, *SLURM_FLAGS, env=env)
    log = again.stdout + again.stderr
    assert again.returncode == 0, log
    assert jobs_run(log, "run_task") == 1 and "tasks/00001" in log
    assert {n: TaskDir(tasks / n).done.read_bytes() for n in kept} == kept   # not recomputed
    assert_same_results(tmp_path / "out", predicted_example)
    jobs = slurm_jobs(slurm_cluster)
    shard_jobs = [j for j in jobs if j["comment"].startswith("rule_run_task")]
    assert len(shard_jobs) == 4 and {j["state"] for j in shard_jobs} >= {"COMPLETED"}
    planned = {j.shard: j for j in read_jobs(tmp_path / "out" / "shards" / "shards.tsv")}
    for job in shard_jobs:  # the resources shards.tsv gives: one GPU, its time, its memory
        shard = planned[int(job["comment"].rsplit("_", 1)[-1])]
        assert (job["gres"], job["minutes"], job["mem_mb"]) == \
            ("gres:gpu:1", shard.runtime_min, shard.mem_mb), jobs


def slurm_jobs(cluster) -> list[dict]:
    """Every job the cluster remembers: comment (the plugin's rule and wildcards), state,
    time limit in minutes, memory in MB, GPUs asked."""
    text = cluster.run("squeue", "-h", "-t", "all", "-O",
                       "Comment:|,State:|,TimeLimit:|,MinMemory:|,tres-per-job:").stdout
    jobs = []
    for line in text.splitlines():
        comment, state, limit, mem, gres = (field.strip() for field in line.split("|"))
        jobs.append({"comment": comment, "state": state, "minutes": _minutes(limit),
                     "mem_mb": _megabytes(mem), "gres": gres})
    return jobs


def _minutes(limit: str) -> int | None:
    if limit == "UNLIMITED":
        return None
    parts = [int(p) for p in limit.replace("-", ":").split(":")]
    hours, minutes, seconds = ([0] * (3 - len(parts)) + parts)[-3:]
    return hours * 60 + minutes + (seconds > 0)


def _megabytes(mem: str) -> int:
    scale = {"M": 1, "G": 1000}
    return int(float(mem[:-1]) * scale[mem[-1]]) if mem[-1] in scale else int(mem)


def test_study_mode_on_slurm_submits_one_array_and_waits(tmp_path):
    config = write_config(tmp_path / "config.yaml", mode="study", executor="slurm",
                          models="tiny", extra="--partition gpu --time 2:00:00")
    done = snakemake(tmp_path, "--configfile", config, "--cores", "1", "--dry-run",
                     "--printshellcmds")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (f"virnuc-hpc submit --samplesheet {SHEET} --models tiny --chunk-size 500 "
            f"--run-dir results/virnuc_hpc --profile slurm --wait --partition gpu --time "
            f"2:00:00") in done.stdout
    assert "multiqc --force --no-version-check --outdir results/multiqc" in done.stdout


@pytest.mark.parametrize("keys, message", [
    ({"mode": "study", "executor": "pbs"}, "executor 'pbs': give local or slurm"),
    ({"mode": "array"}, "mode 'array': give shards (a job per shard) or study (one job)"),
])
def test_an_unknown_mode_or_executor_is_refused_naming_the_choices(tmp_path, keys, message):
    config = write_config(tmp_path / "config.yaml", **keys)
    done = snakemake(tmp_path, "--configfile", config, "--cores", "1", "--dry-run",
                     "--printshellcmds")
    assert done.returncode != 0 and message in done.stdout + done.stderr

"""The real Snakemake (PyPI, the test extra) runs workflow/Snakefile on the bundled example
sheet: each sample's results equal `virnuc-hpc predict` on the same sheet, byte for byte, and
MultiQC ends the run. The SLURM branch is checked as the command it would run (`-n -p`)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from tests.helpers import REPO
from tests.workflows.conftest import BIN, SHEET, example_samples, tools_env
from virnuc_hpc.core.rundir import RunDir

SNAKEFILE = REPO / "workflow" / "Snakefile"
CONFIG = REPO / "config" / "config.yaml"


def snakemake(workdir: Path, *args) -> subprocess.CompletedProcess:
    """`snakemake` with the workflow, in `workdir` (its .snakemake/ goes there)."""
    return subprocess.run([str(BIN / "snakemake"), "--snakefile", str(SNAKEFILE),
                           "--directory", str(workdir), *map(str, args)],
                          capture_output=True, text=True, env=tools_env())


def write_config(path: Path, **keys) -> Path:
    """The shipped config with `keys` changed (so the test follows the keys it documents)."""
    config = {**yaml.safe_load(CONFIG.read_text()), "samplesheet": str(SHEET), **keys}
    path.write_text(yaml.safe_dump(config))
    return path


def test_the_workflow_equals_predict_on_the_example_sheet_and_ends_with_multiqc(
        predicted_example, tmp_path):
    config = write_config(tmp_path / "config.yaml", outdir="out", models="tiny", report=False)
    done = snakemake(tmp_path, "--configfile", config, "--cores", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    ours, theirs = RunDir(tmp_path / "out" / "virnuc_hpc"), RunDir(predicted_example)
    for sample in example_samples():
        for mine, reference in zip(ours.outputs(sample), theirs.outputs(sample)):
            assert mine.read_bytes() == reference.read_bytes(), f"{sample}/{mine.name}"
    assert ours.samples_table.read_bytes() == theirs.samples_table.read_bytes()
    assert ours.versions.read_text() == theirs.versions.read_text()
    general = tmp_path / "out" / "multiqc" / "multiqc_data" / "multiqc_general_stats.txt"
    rows = general.read_text().splitlines()[1:]
    assert sorted(row.split("\t")[0] for row in rows) == sorted(example_samples())
    again = snakemake(tmp_path, "--configfile", config, "--cores", "1")
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr


def test_on_slurm_the_workflow_submits_one_array_and_waits(tmp_path):
    config = write_config(tmp_path / "config.yaml", executor="slurm", models="tiny",
                          extra="--partition gpu --time 2:00:00")
    done = snakemake(tmp_path, "--configfile", config, "--cores", "1", "--dry-run",
                     "--printshellcmds")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (f"virnuc-hpc submit --samplesheet {SHEET} --models tiny --chunk-size 500 "
            f"--run-dir results/virnuc_hpc --profile slurm --wait --partition gpu --time "
            f"2:00:00") in done.stdout
    assert "multiqc --force --no-version-check --outdir results/multiqc" in done.stdout


def test_an_unknown_executor_is_refused_naming_the_choices(tmp_path):
    config = write_config(tmp_path / "config.yaml", executor="pbs")
    done = snakemake(tmp_path, "--configfile", config, "--cores", "1", "--dry-run",
                     "--printshellcmds")
    assert done.returncode != 0 and "executor 'pbs': give local or slurm" in done.stdout + \
        done.stderr

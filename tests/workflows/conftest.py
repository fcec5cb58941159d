"""The bundled example study (examples/study: 3 samples) through `virnuc-hpc predict` with the
tiny models, once per session: what the workflow tests compare with and feed MultiQC."""

from __future__ import annotations

import csv
import os
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO, run_cli

SHEET = REPO / "examples" / "study" / "samples.csv"
BIN = Path(sys.executable).parent          # virnuc-hpc, multiqc and snakemake of this venv


def example_samples() -> list[str]:
    with open(SHEET, newline="") as handle:
        return [row["sample"] for row in csv.DictReader(handle)]


def tools_env() -> dict[str, str]:
    """This environment with the venv's programs first on PATH (as an activated venv)."""
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


@pytest.fixture(scope="session")
def predicted_example(tiny_cache, tmp_path_factory) -> Path:
    """RUN of `virnuc-hpc predict --samplesheet examples/study/samples.csv --models tiny`."""
    run_dir = tmp_path_factory.mktemp("example") / "run"
    done = run_cli("predict", "--samplesheet", SHEET, "-o", run_dir, "--models", "tiny",
                   "--no-report", "--quiet")
    assert done.returncode == 0, done.stderr
    return run_dir

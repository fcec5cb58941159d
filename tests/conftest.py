"""Shared fixtures: golden files, the tiny model cache, a real SLURM test cluster, headless
chromium."""

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.executors.slurm_cluster import (APT_PACKAGES, SlurmCluster, install_allowed,
                                           install_slurm, missing_binaries)
from tests.helpers import GOLDEN
from tests.helpers_browser import CHROMIUM, MISSING, launched_browser


@pytest.fixture(scope="session", autouse=True)
def verification_stamps(tmp_path_factory) -> Path:
    """Node-local model verification stamps in the session's temp dir, not in /tmp."""
    root = tmp_path_factory.mktemp("stamps")
    os.environ["VIRNUC_HPC_STAMPS"] = str(root / "stamps")
    return root / "stamps"


@pytest.fixture(scope="session")
def golden() -> Path:
    if not GOLDEN.is_dir():
        pytest.fail(f"golden files not found at {GOLDEN}: restore tests/golden, or set "
                    "VIRNUC_SHARED to a folder holding golden/")
    return GOLDEN


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory) -> Path:
    """A model cache holding the tiny profile, shared by the session and its subprocesses."""
    import os

    from virnuc_hpc.models import ModelCache, resolve_profile

    root = tmp_path_factory.mktemp("model-cache")
    os.environ["VIRNUC_HPC_CACHE"] = str(root)
    cache = ModelCache(root)
    for size in (300, 500):
        for spec in resolve_profile("tiny", size).specs():
            cache.prewarm(spec)
    return root


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium, headless, driven by playwright (skipped without /usr/bin/chromium)."""
    if not CHROMIUM.exists():
        pytest.skip(MISSING)
    yield from launched_browser()


@pytest.fixture(scope="session")
def slurm_cluster():
    """slurmctld + slurmd on free ports in a temp dir; SLURM_CONF and PATH point at it.

    Missing SLURM binaries are installed only with CI=true or VIRNUC_INSTALL_SLURM=1; otherwise
    the tests that need the cluster are skipped, saying what to install.
    """
    if missing_binaries():
        if not install_allowed():
            pytest.skip(f"SLURM not installed ({', '.join(missing_binaries())} missing): "
                        f"apt-get install {' '.join(APT_PACKAGES)}, or set VIRNUC_INSTALL_SLURM=1")
        install_slurm()
    root = Path(tempfile.mkdtemp(prefix="vslurm-"))   # short path: slurmd puts sockets here
    cluster = SlurmCluster(root)
    cluster.start()
    saved = {k: os.environ.get(k) for k in ("SLURM_CONF", "PATH")}
    os.environ.update(cluster.env())
    try:
        yield cluster
    finally:
        cluster.stop()
        if os.environ.get("VIRNUC_KEEP_SLURM") != "1":   # keep state and logs for debugging
            shutil.rmtree(root, ignore_errors=True)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def dedup_study(tiny_cache, tmp_path_factory) -> Path:
    """ROOT: a 3-sample study of real reads (ROOT/in/samples.csv), 40 % of them repeating
    another across samples, its `predict` run (ROOT/predicted) and a plan of it in 3 shards
    (ROOT/run): for the shared-nothing tests (tests/plan/test_export.py, tests/reduce/)."""
    import numpy as np

    from tests.helpers import run_cli
    from tests.invariance.genomes import study_sheet
    from virnuc_hpc.plan import load_plan

    root = tmp_path_factory.mktemp("dedup-study")
    sheet = study_sheet(root / "in", np.random.default_rng(7), [12, 9, 15], duplicate_share=0.4)
    for argv in (["predict", "--samplesheet", sheet, "-o", root / "predicted", "--no-report",
                  "--quiet"],
                 ["plan", "--samplesheet", sheet, "--run-dir", root / "run", "--shards", "3"]):
        done = run_cli(*argv, "--models", "tiny")
        assert done.returncode == 0, done.stderr
    assert load_plan(root / "run").duplicate_count >= 5
    return root


@pytest.fixture(scope="session")
def study_tasks(dedup_study, tmp_path_factory) -> Path:
    """The dedup study's three task folders, each run from its exported inputs and written
    outside the run dir (FOLDER/00000, ...)."""
    from tests.helpers import run_cli
    from virnuc_hpc.plan.export import export_shards

    root = tmp_path_factory.mktemp("study-tasks")
    export_shards(dedup_study / "run", root / "in")
    for index in range(3):
        done = run_cli("run-task", root / "in" / f"{index:05d}", "--index", index, "--out",
                       root / "out" / f"{index:05d}", "--device", "cpu")
        assert done.returncode == 0, done.stderr
    return root / "out"

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

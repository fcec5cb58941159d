"""Shared fixtures."""

from pathlib import Path

import pytest

from tests.helpers import GOLDEN


@pytest.fixture(scope="session")
def golden() -> Path:
    if not GOLDEN.is_dir():
        pytest.fail(f"golden files not found at {GOLDEN}: set VIRNUC_SHARED to the shared/ folder")
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

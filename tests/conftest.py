"""Shared fixtures."""

from pathlib import Path

import pytest

from tests.helpers import GOLDEN


@pytest.fixture(scope="session")
def golden() -> Path:
    if not GOLDEN.is_dir():
        pytest.fail(f"golden files not found at {GOLDEN}: set VIRNUC_SHARED to the shared/ folder")
    return GOLDEN

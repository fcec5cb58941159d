"""The MKL shim for the rerun on MKL's Intel code path (mkl.py)."""

import pytest

from tests.invariance.mkl import build_shim, unavailable


@pytest.fixture(scope="session")
def mkl_shim(tmp_path_factory):
    why = unavailable()
    if why:
        pytest.skip(why)
    return build_shim(tmp_path_factory.mktemp("mkl-shim"))

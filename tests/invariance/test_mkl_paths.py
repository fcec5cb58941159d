"""The invariance tests once more on MKL's Intel code path (mkl.py), in a child pytest whose
MKL believes it runs on an Intel CPU: the fixed shapes must hold on both paths, and the
length-sorted batches must be seen to fail there (so the tests reach the case)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers import REPO
from tests.invariance.mkl import intel_path_env, on_intel_path, probe

RERUN = ["tests/invariance/test_real_genomes.py", "tests/invariance/test_property.py",
         "tests/models/test_packed.py"]
RERUN_EXAMPLES = "25"   # the property's examples on the second path


@pytest.fixture(scope="module")
def intel_env(mkl_shim):
    if on_intel_path():
        pytest.skip("this is the rerun itself")
    env = intel_path_env(mkl_shim)
    native, intel = probe(), probe(env)
    if native[0] == intel[0]:
        pytest.skip("MKL takes the same path with the shim as without it here (an Intel CPU, "
                    "or MKL not in this torch): the suite's own run covers that path")
    return env, intel


def test_mkl_picks_its_kernel_by_the_row_count_on_its_intel_path(intel_env):
    """The failure mode is live there: one row's bits change with how many rows share the
    call (DNABERT-S's widths)."""
    _, (_, differing) = intel_env
    assert differing > 0


def test_the_invariance_tests_pass_on_mkls_intel_path(intel_env):
    env, _ = intel_env
    env = dict(env, VIRNUC_PROPERTY_EXAMPLES=RERUN_EXAMPLES)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-rA", "-k", "not parallel", *RERUN], cwd=REPO, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-6000:]
    proof = "PASSED tests/invariance/test_real_genomes.py::" \
            "test_length_sorted_batches_do_change_bytes_on_this_path"
    assert proof in done.stdout, "the proof that the tests reach the case did not pass"

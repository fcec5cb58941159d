"""versions.yml (nf-core's convention) and `virnuc-hpc --version`: the same text, from package
metadata."""

from __future__ import annotations

import platform
from importlib import metadata

import yaml

from tests.helpers import run_cli
from virnuc_hpc.core.versions import package_version, versions_yaml


def test_versions_yaml_names_the_tool_python_torch_transformers_and_fair_esm():
    parsed = yaml.safe_load(versions_yaml())
    assert list(parsed) == ["virnuc_hpc"]
    tools = parsed["virnuc_hpc"]
    assert list(tools) == ["virnuc-hpc", "python", "torch", "transformers", "fair-esm"]
    assert tools["python"] == platform.python_version()
    for name in ("virnuc-hpc", "torch", "transformers", "fair-esm"):
        assert tools[name] == metadata.version(name)


def test_a_package_not_installed_says_so():
    assert package_version("no-such-distribution-virnuc") == "not installed"


def test_version_flag_prints_versions_yml():
    done = run_cli("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout == versions_yaml() and done.stderr == ""

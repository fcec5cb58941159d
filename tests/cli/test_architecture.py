"""The layout's rules hold (docs/architecture.md): import-linter's contracts in pyproject.toml
(layers, no cycles, the core importing nothing that shows or parses), every package in a
layer, at most three modules at the top level, and the doc's figures those of the code."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from tests.helpers import REPO

sys.path.insert(0, str(REPO / "scripts"))
import architecture  # noqa: E402

PACKAGE = REPO / "virnuc_hpc"


def test_import_linter_keeps_every_contract():
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint)], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "Contracts: 3 kept, 0 broken." in done.stdout


def test_every_package_has_its_layer_and_the_top_level_holds_at_most_three_modules():
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    layered = {name.split(".")[1] for layer in architecture.layers() for name in layer}
    assert packages == layered
    modules = [p.name for p in PACKAGE.glob("*.py")]
    assert len(set(modules) - {"__init__.py"}) <= 3, modules
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    assert {c["type"] for c in config["contracts"]} == {"layers", "acyclic_siblings",
                                                         "forbidden"}


def test_the_docs_figures_are_the_codes():
    assert architecture.main(["--check"]) == 0


def test_an_upward_import_and_a_cycle_would_be_counted():
    """The counters can fail: one import from the core up to the CLI is a cycle and an
    upward import."""
    graph = architecture.graph_of_code()
    graph.add_import(importer="virnuc_hpc.core.errors", imported="virnuc_hpc.cli.plan_cmd")
    graph.add_import(importer="virnuc_hpc.cli.plan_cmd", imported="virnuc_hpc.core.errors")
    text = architecture.figures(graph)
    assert "- imports that point up a layer: 1" in text
    assert "- import cycles between modules: 1" in text

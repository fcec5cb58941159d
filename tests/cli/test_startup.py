"""Commands that run no model never import torch (it costs ~2 s per start); the figures are
printed by bench/bench_startup.py."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers import REPO

EXAMPLE = REPO / "examples" / "reads.fa"
PROBE = """
import sys
from virnuc_hpc.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
heavy = sorted(m for m in ("torch", "transformers", "esm") if m in sys.modules)
print("HEAVY", ",".join(heavy) or "none", "CODE", code)
"""


def _heavy_modules(*argv) -> str:
    done = subprocess.run([sys.executable, "-c", PROBE, *map(str, argv)], capture_output=True,
                          text=True, cwd=REPO)
    line = done.stdout.strip().splitlines()[-1]
    assert line.endswith("CODE 0"), done.stdout + done.stderr
    return line.split()[1]


@pytest.fixture(scope="module")
def reduced(tiny_cache, tmp_path_factory):
    from tests.helpers_run import planned_run

    run_dir = tmp_path_factory.mktemp("startup") / "run"
    planned_run(EXAMPLE, run_dir, shards=2)
    return run_dir


@pytest.mark.parametrize("argv", [
    ["--help"], ["--version"], ["status", "{run}"], ["status", "{run}", "--json"],
    ["reduce", "{run}"],
    ["status", "{run}", "--by-sample"],
    ["translate", str(EXAMPLE), "--nucleotide-out", "{tmp}/n.fa", "--protein-out", "{tmp}/p.faa"],
    ["plan", str(EXAMPLE), "--models", "tiny", "--run-dir", "{tmp}/plan"],
    ["plan", str(EXAMPLE), "--models", "tiny", "--run-dir", "{tmp}/dry", "--dry-run"],
    ["models", "list"],
], ids=lambda argv: " ".join(a for a in argv if "{" not in a and "/" not in a))
def test_commands_without_models_do_not_import_torch(reduced, tmp_path, argv):
    argv = [a.format(run=reduced, tmp=tmp_path) for a in argv]
    assert _heavy_modules(*argv) == "none"

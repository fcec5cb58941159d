"""What a user sees must not change when the code moves: every command's `--help`, and the
files of RUN/results/ (names and bytes) for the bundled example and a 3-sample study.

The snapshot (tests/snapshots/) was taken before the package was laid out as the pipeline's
stages (docs/architecture.md). Bytes are compared as they are, except where a file holds the
moment or the place it was written: summary.json without its `time`, and report.html as its
headings, table headers and accounting text (its timeline image, dates, paths and rates
change from run to run). VIRNUC_UPDATE_SNAPSHOTS=1 writes the snapshot anew (after a change
that is meant to show)."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import pytest

from tests.helpers import REPO, run_cli

SNAPSHOTS = Path(__file__).parents[1] / "snapshots"
UPDATE = os.environ.get("VIRNUC_UPDATE_SNAPSHOTS") == "1"
COMMANDS = ["translate", "plan", "export-shards", "run-task", "run", "reduce", "status",
            "resubmit", "predict", "embed", "bench", "models", "submit", "report"]
SUBCOMMANDS = {"models": ["fetch", "verify", "list", "check-reference", "check-install"]}
ENV = {"COLUMNS": "100", "LINES": "50"}


def helps() -> dict[str, str]:
    """Every `--help` text, by command (`models fetch` included)."""
    env = dict(os.environ, **ENV)
    out = {"virnuc-hpc": run_cli("--help", env=env).stdout}
    for command in COMMANDS:
        out[command] = run_cli(command, "--help", env=env).stdout
        for sub in SUBCOMMANDS.get(command, []):
            out[f"{command} {sub}"] = run_cli(command, sub, "--help", env=env).stdout
    return out


def normalized(path: Path) -> bytes:
    """A results file's bytes, with what records the moment or the place taken out (the
    checkout's path, where an input's path is written, reads REPO)."""
    if path.name == "summary.json":
        data = json.loads(path.read_text())
        data.pop("time", None)
        text = json.dumps(data, indent=1, sort_keys=True)
    elif path.name == "report.html":
        html = path.read_text()
        kept = re.findall(r"<h[12]>.*?</h[12]>|<tr><th>.*?</tr>|<p class=identity>.*?</p>|"
                          r"<p class=reuse>.*?</p>", html)
        text = "\n".join(kept)
    else:
        return path.read_bytes().replace(str(REPO).encode(), b"REPO")
    return text.replace(str(REPO), "REPO").encode()


def listing(results: Path) -> dict[str, str]:
    """File name -> sha256 of its (normalized) bytes, for every file of RUN/results."""
    return {str(p.relative_to(results)): hashlib.sha256(normalized(p)).hexdigest()
            for p in sorted(results.rglob("*")) if p.is_file() and not p.name.startswith(".")}


def check(name: str, found) -> None:
    path = SNAPSHOTS / f"{name}.json"
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(found, indent=1, sort_keys=True) + "\n")
    expected = json.loads(path.read_text())
    if isinstance(found, dict):
        assert sorted(found) == sorted(expected), f"{name}: other entries"
        for key in expected:
            assert found[key] == expected[key], f"{name}: {key} differs"
    assert found == expected


def test_every_commands_help_is_unchanged():
    check("help", helps())


@pytest.mark.parametrize("case", ["example", "study"])
def test_the_results_files_of_the_example_and_a_study_are_unchanged(tiny_cache, tmp_path,
                                                                     case):
    out = tmp_path / case
    inputs = ([REPO / "examples" / "reads.fa"] if case == "example" else
              ["--samplesheet", REPO / "examples" / "study" / "samples.csv"])
    done = run_cli("predict", *inputs, "-o", out, "--models", "tiny", "--shards", "2",
                   "--quiet")
    assert done.returncode == 0, done.stderr
    check(f"results-{case}", listing(out / "results"))

"""Test helpers: golden paths, a CLI runner, results files as bytes, a FASTA record reader."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from virnuc_hpc.core.rundir import RunDir

REPO = Path(__file__).resolve().parents[1]
# The original tool's outputs, vendored in tests/golden (VIRNUC_SHARED=DIR: DIR/golden instead)
SHARED = Path(os.environ["VIRNUC_SHARED"]) if "VIRNUC_SHARED" in os.environ else None
GOLDEN = SHARED / "golden" if SHARED is not None else REPO / "tests" / "golden"
# Every sample's results files (what the invariance promises compare byte for byte)
PER_SAMPLE = ("prediction_results.txt", "prediction_results_highestscore.csv", "predictions.tsv")
STUDY_FILES = (*PER_SAMPLE, "samples.tsv", "versions.yml")   # and the study's own tables


def run_cli(*args, env=None, cwd=None) -> subprocess.CompletedProcess:
    """Run `virnuc-hpc` as a user would, in a fresh interpreter."""
    return subprocess.run([sys.executable, "-m", "virnuc_hpc", *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=cwd)


def results_bytes(run_dir, names=PER_SAMPLE) -> dict[str, bytes]:
    """The results files called one of `names` (every sample's), by path under RUN/results/."""
    root = RunDir(run_dir).results
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.name in names}


def read_fasta(path) -> list[tuple[str, str]]:
    """(header, sequence) pairs, for comparing records rather than bytes."""
    records, header, parts = [], None, []
    for line in Path(path).read_text().splitlines():
        if line.startswith(">"):
            if header is not None:
                records.append((header, "".join(parts)))
            header, parts = line[1:], []
        else:
            parts.append(line)
    if header is not None:
        records.append((header, "".join(parts)))
    return records

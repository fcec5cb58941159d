"""Helpers for the shared-nothing tests (plan/export.py, reduce/folders.py)."""

from __future__ import annotations

from pathlib import Path

from virnuc_hpc.core.rundir import RunDir

RESULTS = ("prediction_results.txt", "prediction_results_highestscore.csv", "predictions.tsv",
           "samples.tsv", "versions.yml")


def results(run: Path) -> dict[str, bytes]:
    """Every sample's results files, samples.tsv and versions.yml, by path under results/."""
    root = RunDir(run).results
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.name in RESULTS}

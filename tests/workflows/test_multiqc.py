"""The real MultiQC (PyPI, the test extra) on the results of a 3-sample run: a virnuc_hpc
section with one row per sample in multiqc_data, and a page headless Chromium opens with no
console error."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import pytest

from tests.helpers_browser import open_page
from tests.workflows.conftest import BIN, example_samples
from virnuc_hpc.core.rundir import RunDir


@pytest.fixture(scope="module")
def multiqc_out(predicted_example, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("multiqc")
    done = subprocess.run([str(BIN / "multiqc"), str(RunDir(predicted_example).results),
                           "--outdir", str(out), "--no-version-check", "--strict", "--no-ansi"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def tsv(path: Path) -> dict[str, dict]:
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    return {row.get("Sample", row.get("sample")): row for row in rows}


def test_general_statistics_have_one_row_per_sample_with_its_accounting(predicted_example,
                                                                       multiqc_out):
    general = tsv(multiqc_out / "multiqc_data" / "multiqc_general_stats.txt")
    samples = tsv(RunDir(predicted_example).samples_table)
    assert sorted(general) == sorted(example_samples()) == sorted(samples)
    for name, row in general.items():
        ours = {column.rsplit("virnuc_hpc-", 1)[1]: value for column, value in row.items()
                if "virnuc_hpc-" in column}
        for key in ("input_sequences", "predicted", "virus_sequences", "skipped",
                    "skipped_all_frames_have_stop"):
            assert float(ours[key]) == int(samples[name][key]), (name, key)


def test_the_section_and_its_plots_hold_every_sample(multiqc_out):
    data = multiqc_out / "multiqc_data"
    calls = tsv(data / "multiqc_virnuc_hpc_calls_plot.txt")
    scores = tsv(data / "multiqc_virnuc_hpc_best_virus_score_plot.txt")
    assert sorted(calls) == sorted(scores) == sorted(example_samples())
    plots = json.loads((data / "multiqc_data.json").read_text())["report_plot_data"]
    assert {"virnuc_hpc_calls_plot", "virnuc_hpc_best_virus_score_plot"} <= set(plots)
    versions = tsv(data / "multiqc_software_versions.txt")
    assert set(versions["virnuc_hpc"]) >= {"virnuc-hpc", "python", "torch", "transformers",
                                           "fair-esm"}


def test_chromium_opens_the_multiqc_report_with_no_console_error(browser, multiqc_out,
                                                               tmp_path):
    seen = open_page(browser, multiqc_out / "multiqc_report.html", tmp_path / "multiqc.png")
    assert seen["errors"] == []
    assert all(url.startswith(("file:", "data:")) for url in seen["requests"])
    for text in ("virnuc_hpc", "Calls per sample", "Best virus score", *example_samples()):
        assert text in seen["text"]

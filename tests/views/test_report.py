"""The run report: numbers from the results, the figure's selection, bounded inputs, errors,
and the page as a browser shows it (Debian's chromium, headless)."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import time
from pathlib import Path

import pytest

from tests.helpers import REPO
from tests.helpers_browser import open_page
from tests.helpers_run import planned_run, predictions
from virnuc_hpc.cli import main
from virnuc_hpc.pipeline.results import reduce_and_report
from virnuc_hpc.core.errors import ConfigError, IntegrityError, UserError
from virnuc_hpc.plan import load_manifest, plan_input
from virnuc_hpc.reduce.merge import reduce_run
from virnuc_hpc.views.report import MAX_TRACKS, collect, write_report
from virnuc_hpc.core.rundir import RunDir
from virnuc_hpc.parts import PartWriter, write_accounting

try:
    from test_store import WIDTHS, write_fake_task
except ImportError:  # tests/ imported as a package
    from tests.parts.test_parts import WIDTHS, write_fake_task

ODD_ID = 'odd<b>&"id\''


def write_fasta(path: Path, records: list[tuple[str, str]]) -> Path:
    path.write_text("".join(f">{rid}\n{seq}\n" for rid, seq in records))
    return path


def fake_run(tmp_path: Path, records: list[tuple[str, str]], shards: int = 2,
             all_skipped: bool = False) -> Path:
    """A reduced run without models: fake scores (tests/parts/test_parts.py), or no kept frame."""
    run_dir = tmp_path / "run"
    plan = plan_input(write_fasta(tmp_path / "in.fa", records), run_dir, shards=shards)
    for shard in plan.shards:
        m = load_manifest(run_dir, shard.index)
        task = RunDir(run_dir).task(shard.index)
        ordinals, ids, lengths, chunks = m.computed_rows()   # duplicates aside
        if all_skipped:
            writer = PartWriter(task, WIDTHS, {"classifier": "c" * 8})
            write_accounting(task, [{"id": i, "length": n, "chunks": c, "kept_frames": 0,
                                     "skip_reason": "all_frames_have_stop"}
                                    for i, n, c in zip(ids, lengths, chunks)])
            writer.write_done(started=time.time(), gpu="cpu", rate=0.0)
        else:
            write_fake_task(task, ordinals, ids, lengths, chunks, part_rows=8)
    assert reduce_run(run_dir).ok
    return run_dir


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def tiny_run(tiny_cache, tmp_path_factory) -> Path:
    """examples/reads.fa through the tiny models, 3 shards, reduced (no report yet)."""
    run_dir = tmp_path_factory.mktemp("report") / "reads"
    planned_run(REPO / "examples/reads.fa", run_dir, shards=3, part_rows=8)
    return run_dir


def test_page_agrees_with_summary(tiny_run):
    summary = json.loads(RunDir(tiny_run).summary.read_text())
    text = write_report(tiny_run).html.read_text()
    total, predicted, skipped = summary["input_sequences"], summary["predicted"], \
        summary["skipped"]
    assert total == predicted + skipped == 44
    assert (f"Input sequences = predicted + skipped: {total:,} = {predicted:,} + "
            f"{skipped:,}") in text and "(holds)" in text
    for reason, count in summary["skipped_by_reason"].items():
        assert re.search(rf"<td>skipped: {reason}</td><td class=n>{count:,}</td>", text)
    assert f"<td>predicted: virus</td><td class=n>{summary['virus_sequences']:,}</td>" in text
    assert "NOT biologically meaningful" in text  # the tiny profile says so
    assert not re.search(r"(src|href)=\"?(https?:)?//", text)  # nothing from the network


def test_models_come_from_the_cache_entries(tiny_run, tiny_cache):
    text = write_report(tiny_run).html.read_text()
    manifest = json.loads((tiny_cache / "tiny-esm2" / "MANIFEST.json").read_text())
    sha = next(iter(manifest["files"].values()))["sha256"]
    assert f"<code>{sha}</code>" in text and "tiny-seed-" in text
    assert text.count("holds the bytes the run used") == 3


def test_default_figure_draws_the_longest_predicted_sequences(tiny_run):
    report = collect(tiny_run, top=3)
    rows = [r for r in predictions(tiny_run) if r["call"] != "skipped"]
    longest = sorted(rows, key=lambda r: -int(r["length"]))[:3]
    assert [t.row.id for t in report.tracks] == [r["sequence_id"] for r in longest]
    for track in report.tracks:
        assert sum(c.virus for c in track.chunks) == track.row.virus_chunks
        assert all(0 <= c.start < c.end <= track.row.length for c in track.chunks)
        assert all(0.5 <= c.best <= 1.0 for c in track.chunks)


def test_top_bounds_the_figure(tiny_run):
    height_one = png_size(write_report(tiny_run, top=1).figure.read_bytes())[1]
    height_four = png_size(write_report(tiny_run, top=4).figure.read_bytes())[1]
    assert height_four > height_one
    assert len(collect(tiny_run, top=4).tracks) == 4
    with pytest.raises(ConfigError, match="--top"):
        collect(tiny_run, top=MAX_TRACKS + 1)


def test_sequences_picks_the_given_ids_in_order(tiny_run, capsys):
    rows = predictions(tiny_run)
    skipped = next(r["sequence_id"] for r in rows if r["call"] == "skipped")
    chosen = [rows[5]["sequence_id"], skipped, rows[0]["sequence_id"]]
    assert main(["report", str(tiny_run), "--sequences", ",".join(chosen)]) == 0
    assert "report.html" in capsys.readouterr().out
    report = collect(tiny_run, sequences=chosen)
    assert [t.row.id for t in report.tracks] == chosen
    assert report.tracks[1].chunks == [] and report.tracks[1].row.skip_reason
    page = RunDir(tiny_run).report.read_text()
    assert all(f"<td>{i}</td>" in page for i in chosen)
    assert "The sequences named with --sequences" in page


def test_unknown_sequence_is_a_one_line_error(tiny_run, capsys):
    assert main(["report", str(tiny_run), "--sequences", "contig001,no_such_read"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no_such_read" in err and "predictions.tsv" in err


def test_a_run_not_reduced_names_reduce(tmp_path, capsys):
    run_dir = tmp_path / "run"
    plan_input(write_fasta(tmp_path / "in.fa", [("a", "ACGT" * 40)]), run_dir, shards=1)
    assert main(["report", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert f"virnuc-hpc reduce {run_dir}" in err and len(err.strip().splitlines()) == 1


def test_every_sequence_skipped_still_gives_a_report(tmp_path):
    run_dir = fake_run(tmp_path, [(f"s{i}", "ACGT" * 50) for i in range(6)], all_skipped=True)
    files = write_report(run_dir)
    text = files.html.read_text()
    assert "Input sequences = predicted + skipped: 6 = 0 + 6" in text
    assert png_size(files.figure.read_bytes())[0] > 0
    assert collect(run_dir).tracks == []


def test_ids_are_escaped_and_results_checked(tmp_path):
    records = [(ODD_ID, "ACGT" * 300)] + [(f"r{i}", "ACGTTGCA" * (10 + i)) for i in range(30)]
    run_dir = fake_run(tmp_path, records)
    text = write_report(run_dir, sequences=[ODD_ID]).html.read_text()
    assert ODD_ID not in text and "odd&lt;b&gt;&amp;&quot;id&#x27;" in text
    assert text.count("not on this machine") == 3  # fake models: the fingerprints only
    summary = RunDir(run_dir).summary
    data = json.loads(summary.read_text())
    summary.write_text(json.dumps({**data, "skipped": data["skipped"] + 1}))
    with pytest.raises(IntegrityError, match="virnuc-hpc reduce"):
        collect(run_dir)


def test_reduce_writes_the_report_and_survives_a_failure_to_draw(tmp_path, monkeypatch, capsys):
    run_dir = fake_run(tmp_path, [(f"r{i}", "ACGTTGCA" * (20 + i)) for i in range(12)])
    run = RunDir(run_dir)
    assert reduce_and_report(run_dir) == 0
    assert run.report.is_file() and run.prediction_figure.is_file()
    assert f"report: {run.report}" in capsys.readouterr().out

    def broken(report):
        raise RuntimeError("no fonts\non this node")

    monkeypatch.setattr("virnuc_hpc.views.report.draw", broken)
    assert reduce_and_report(run_dir) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"virnuc-hpc report {run_dir}" in err[0] and "no fonts" in err[0]
    assert run.summary.is_file() and run.predictions.is_file()
    assert not run.report.exists()  # no stale report of an earlier reduce


def test_no_report_skips_it_removes_a_stale_one_and_says_how_to_write_it(tmp_path, capsys):
    run_dir = fake_run(tmp_path, [(f"r{i}", "ACGTTGCA" * (20 + i)) for i in range(5)])
    run = RunDir(run_dir)
    assert main(["reduce", str(run_dir)]) == 0 and run.report.is_file()
    capsys.readouterr()
    assert main(["reduce", str(run_dir), "--no-report"]) == 0
    out = capsys.readouterr().out
    assert f"report: skipped (--no-report); write it with `virnuc-hpc report {run_dir}`" in out
    assert run.summary.is_file() and not run.report.exists() and \
        not run.prediction_figure.exists()


def test_selection_limits(tmp_path, capsys):
    with pytest.raises(ConfigError, match="--sequences"):
        collect(tmp_path, sequences=[f"s{i}" for i in range(MAX_TRACKS + 1)])
    assert main(["report", str(tmp_path), "--top", "0"]) == 2
    assert "--top must be 1 to" in capsys.readouterr().err
    with pytest.raises(UserError, match="no plan.json"):
        collect(tmp_path)


# --- the page in a browser ---------------------------------------------------------------------

def test_chromium_opens_the_report(browser, tiny_run, tmp_path):
    seen = open_page(browser, write_report(tiny_run).html, tmp_path / "report.png")
    assert seen["errors"] == []
    assert all(url.startswith(("file:", "data:")) for url in seen["requests"])
    assert len(seen["images"]) == 5
    assert all(complete and width > 0 and height > 0 for complete, width, height in seen["images"])
    assert "Input sequences = predicted + skipped" in seen["text"]
    assert png_size((tmp_path / "report.png").read_bytes())[1] > 900
    if os.environ.get("VIRNUC_UPDATE_DOCS") == "1":
        shutil.copyfile(tmp_path / "report.png", REPO / "docs" / "report.png")


def test_chromium_opens_a_report_where_everything_was_skipped(browser, tmp_path):
    run_dir = fake_run(tmp_path, [("a", "ACGT" * 10), ("b", "TTA")], shards=1, all_skipped=True)
    seen = open_page(browser, write_report(run_dir).html, tmp_path / "skipped.png")
    assert seen["errors"] == [] and len(seen["images"]) == 5
    assert all(complete and width > 0 for complete, width, _ in seen["images"])
    assert "Input sequences = predicted + skipped: 2 = 0 + 2" in seen["text"]

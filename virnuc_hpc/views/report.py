"""The run report: `RUN/results/report.html` (one self-contained page) and `prediction.png`.

Everything is derived from what the run left on disk: `results/summary.json` (the
accounting), `predictions.tsv` (one row per input sequence), `prediction_results.txt` (scores
per kept frame), `plan.json` (options, profile, models), `tasks/*/DONE` (per-shard start, end,
host, GPU, rate), the feature parts' mtimes (throughput over time), `provenance/*.json` and the
model cache's entry manifests (when the cache is on this machine). In a run of several samples
the per-row files are each sample's (`results/<sample>/`, read in sample order, a sequence
named `SAMPLE/ID`), and the page adds a table of `results/samples.tsv`.

Memory and time stay bounded however many sequences the run holds: `predictions.tsv` is read
once (fixed-bin histograms, a heap of the longest N or the named sequences, each one's first
row in `prediction_results.txt`), then `prediction_results.txt` is read once, keeping only
the drawn sequences' frames. The figure follows VirNucPro's `drew_fig.py`: per chunk the best
score (red when the chunk is virus by VirNucPro's rule `max(score2) >= max(score1)`, blue
otherwise), but drawn over the bases each chunk spans (`chunk_spans`) instead of 500 bp per
chunk number, for any N sequences instead of the first five.

The page is one function per section (`SECTIONS`), each taking the collected `RunReport`.
"""

from __future__ import annotations

import base64
import csv
import heapq
import html
import json
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from itertools import islice
from pathlib import Path
from typing import Callable, Iterable, NamedTuple

import numpy as np

from ..models.cacheinfo import default_root, manifest_fingerprint, read_manifest
from ..core.errors import ConfigError, IntegrityError, UserError
from ..core.fsio import atomic_write
from ..reduce.outputs import PREDICTION_HEADER, is_virus
from ..plan import Plan, load_plan
from ..reduce.schema import SAMPLES_HEADER, FrameRow, PredictionRow, format_score
from ..core.rundir import ResultFiles, RunDir
from ..reduce.scores import SCORE_EDGES, Histogram
from ..sequences.prepare import SKIP_REASONS, chunk_spans
from ..parts import frame_key, read_done
from ..core.versions import package_version

DEFAULT_TOP = 5
MAX_TRACKS = 40
MAX_SHARD_ROWS = 100
CALLS = ("virus", "others")
PACKAGES = ("virnuc-hpc", "torch", "transformers", "fair-esm", "numpy", "safetensors",
            "submitit", "matplotlib")
SAMPLE_COUNTS = frozenset(SAMPLES_HEADER[1:-1])
TINY_NOTE = ("tiny model profile: random weights, these results are NOT biologically "
             "meaningful")


# --- pass 1: predictions.tsv ---------------------------------------------------------------

class SequenceRow(NamedTuple):
    """A predictions.tsv row, its input ordinal (over the samples, in order), its sample ("" in
    a run of one file) and its first row in its prediction_results.txt."""

    ordinal: int
    first_frame: int
    sample: str
    id: str
    length: int
    chunks: int
    kept_frames: int
    virus_chunks: int
    best_virus_score: str
    call: str
    skip_reason: str


def _row(ordinal: int, first_frame: int, sample: str, row: PredictionRow) -> SequenceRow:
    """A drawn sequence: its predictions.tsv row, where it is, its score as the file has it."""
    best = "" if row.best_virus_score is None else format_score(row.best_virus_score)
    return SequenceRow(ordinal, first_frame, sample, row.sequence_id, row.length, row.chunks,
                       row.kept_frames, row.virus_chunks, best, row.call, row.skip_reason)


def qualified(sample: str, sequence_id: str) -> str:
    """How a sequence is named on the page and in --sequences: `SAMPLE/ID` in a study."""
    return f"{sample}/{sequence_id}" if sample else sequence_id


@dataclass
class Tally:
    """What one pass over predictions.tsv counts."""

    calls: Counter = field(default_factory=Counter)
    skipped_by_reason: Counter = field(default_factory=Counter)
    kept_frames: Counter = field(default_factory=Counter)
    scores: dict[str, Histogram] = field(
        default_factory=lambda: {call: Histogram(SCORE_EDGES) for call in CALLS})

    def add(self, row: PredictionRow) -> None:
        self.calls[row.call] += 1
        self.kept_frames[row.kept_frames] += 1
        if row.call in self.scores:
            self.scores[row.call].add(row.best_virus_score)
        else:
            self.skipped_by_reason[row.skip_reason] += 1

    def flush(self) -> None:
        for histogram in self.scores.values():
            histogram.flush()


class Longest:
    """The N longest predicted sequences (ties: first in input order), by a bounded heap."""

    def __init__(self, n: int):
        self.n, self._heap = n, []

    def offer(self, ordinal: int, first_frame: int, sample: str, row: PredictionRow) -> None:
        if row.call not in CALLS:
            return
        key = (row.length, -ordinal)
        if len(self._heap) < self.n:
            heapq.heappush(self._heap, (key, _row(ordinal, first_frame, sample, row)))
        elif key > self._heap[0][0]:
            heapq.heapreplace(self._heap, (key, _row(ordinal, first_frame, sample, row)))

    def rows(self, path: Path) -> list[SequenceRow]:
        return [row for _, row in sorted(self._heap, reverse=True)]

    def describe(self) -> str:
        return f"The {self.n} longest predicted sequences (--top {self.n})"


class Named:
    """The sequences given by ID, in the order given."""

    def __init__(self, ids: Iterable[str]):
        self.ids = list(dict.fromkeys(ids))
        self._wanted, self._found = set(self.ids), {}

    def offer(self, ordinal: int, first_frame: int, sample: str, row: PredictionRow) -> None:
        name = qualified(sample, row.sequence_id)
        if name in self._wanted and name not in self._found:
            self._found[name] = _row(ordinal, first_frame, sample, row)

    def rows(self, path: Path) -> list[SequenceRow]:
        missing = [i for i in self.ids if i not in self._found]
        if missing:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if
                                              len(missing) > 5 else "")
            raise UserError(f"{path}: no input sequence {shown}; fix: give IDs from its "
                            "sequence_id column (--sequences ID,...; SAMPLE/ID in a run of "
                            "several samples)")
        return [self._found[i] for i in self.ids]

    def describe(self) -> str:
        return "The sequences named with --sequences"


def scan_predictions(path: Path, selector: Longest | Named, tally: Tally | None = None,
                     sample: str = "", start: int = 0) -> tuple[Tally, int]:
    """One pass over a predictions.tsv: the tally (added to `tally`), the selector's
    sequences (numbered from `start`), and the number of rows."""
    tally, first_frame, rows = tally or Tally(), 0, 0
    with open(path, encoding="utf-8") as handle:
        try:
            reader = PredictionRow.reader(handle.readline(), str(path))
        except ValueError as exc:
            raise IntegrityError(f"{exc}: not a predictions.tsv; rerun `virnuc-hpc reduce` on "
                                 "this run") from None
        for rows, line in enumerate(handle, 1):
            row = reader.parse(line, rows + 1)
            tally.add(row)
            selector.offer(start + rows - 1, first_frame, sample, row)
            first_frame += row.kept_frames
    tally.flush()
    return tally, rows


# --- pass 2: prediction_results.txt ---------------------------------------------------------

class ChunkScore(NamedTuple):
    start: int
    end: int
    best: float
    virus: bool


def chunk_scores(path: Path, rows: list[SequenceRow], chunk_size: int,
                 ) -> dict[int, list[ChunkScore]]:
    """Per drawn sequence (by ordinal), its scored chunks: one pass, skipping other rows."""
    scores: dict[int, list[ChunkScore]] = {}
    with open(path, encoding="utf-8") as handle:
        if handle.readline() != PREDICTION_HEADER:
            raise IntegrityError(f"{path}: not a prediction_results.txt header; rerun "
                                 "`virnuc-hpc reduce` on this run")
        position = 0
        for row in sorted({r.ordinal: r for r in rows if r.kept_frames}.values()):
            next(islice(handle, row.first_frame - position, row.first_frame - position), None)
            lines = list(islice(handle, row.kept_frames))
            position = row.first_frame + len(lines)
            scores[row.ordinal] = _sequence_chunks(path, row, lines, chunk_size)
    return scores


def _sequence_chunks(path: Path, row: SequenceRow, lines: list[str],
                     chunk_size: int) -> list[ChunkScore]:
    spans, maxima = chunk_spans(row.length, chunk_size), {}
    try:
        frames = [FrameRow.parse(line) for line in lines]
    except ValueError:
        frames = []
    keys = [frame_key(frame.frame_id, row.id) for frame in frames]
    if len(frames) != row.kept_frames or any(k is None or k[0] > len(spans) for k in keys):
        raise IntegrityError(f"{path}: lines {row.first_frame + 2}.. are not the frames of "
                             f"{row.id!r} that predictions.tsv lists; rerun `virnuc-hpc "
                             "reduce` on this run")
    for key, frame in zip(keys, frames):
        best = maxima.setdefault(key[0], [0.0, 0.0])
        best[0], best[1] = max(best[0], frame.score1), max(best[1], frame.score2)
    return [ChunkScore(*spans[n - 1], max(m1, m2), is_virus(m1, m2))
            for n, (m1, m2) in sorted(maxima.items())]


# --- shards, models, provenance -------------------------------------------------------------

class ShardRun(NamedTuple):
    """What a shard's DONE says about its run (None where an older DONE lacks it)."""

    index: int
    sequences: int
    rows: int
    started: float | None
    ended: float
    host: str
    gpu: str
    rate: float | None


def shard_runs(run: RunDir, plan: Plan) -> list[ShardRun]:
    runs = []
    for shard in plan.shards:
        done = read_done(run.task(shard.index)) or {}
        runs.append(ShardRun(shard.index, done.get("sequences", shard.sequences),
                             done.get("rows", 0), done.get("started"), done.get("time", 0.0),
                             str(done.get("host", "?")), str(done.get("gpu", "?")),
                             done.get("rate")))
    return runs


def part_times(run: RunDir, plan: Plan) -> list[tuple[float, int]]:
    """(mtime, rows) of every feature part, in time order: frames published over time."""
    times = []
    for shard in plan.shards:
        task = run.task(shard.index)
        for entry in (read_done(task) or {}).get("parts", []):
            path = task.part(entry["index"])
            if path.is_file():
                times.append((path.stat().st_mtime, int(entry["rows"])))
    return sorted(times)


class ModelRow(NamedTuple):
    name: str
    fingerprint: str
    manifest: dict | None  # the cache entry's MANIFEST on this machine, if there
    matches: bool | None  # whether that entry holds the bytes the run used
    where: str


def model_rows(run: RunDir, plan: Plan) -> list[ModelRow]:
    """The run's models (name -> fingerprint from the plan, else from the feature index),
    with the cache entries found on this machine."""
    prints = plan.models or _json(run.features_index).get("fingerprints", {})
    rows = []
    for name, fingerprint in sorted(prints.items()):
        where = default_root() / name
        manifest = read_manifest(where)
        try:
            matches = manifest_fingerprint(manifest["files"]) == fingerprint
        except (KeyError, TypeError, AttributeError):
            manifest, matches = None, None
        rows.append(ModelRow(name, fingerprint, manifest, matches, str(where)))
    return rows


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def provenance(run: RunDir) -> dict[str, dict]:
    folder = run.provenance("plan").parent
    return {p.stem: _json(p) for p in sorted(folder.glob("*.json"))} if folder.is_dir() else {}


def versions() -> dict[str, str]:
    """Versions of the packages that matter, on the machine writing the report."""
    return {name: package_version(name) for name in PACKAGES}


# --- collecting -----------------------------------------------------------------------------

@dataclass
class Track:
    row: SequenceRow
    chunks: list[ChunkScore]


@dataclass
class RunReport:
    """Everything the page shows, collected in two passes over the results."""

    run: RunDir
    plan: Plan
    summary: dict
    tally: Tally
    tracks: list[Track]
    selection: str
    shards: list[ShardRun]
    parts: list[tuple[float, int]]
    models: list[ModelRow]
    provenance: dict[str, dict]
    versions: dict[str, str]
    samples: list[dict[str, str]] = field(default_factory=list)
    created: float = field(default_factory=time.time)

    @property
    def tiny(self) -> bool:
        return self.plan.profile == "tiny"

    @property
    def t0(self) -> float:
        """Time zero of the time plots: the first shard start (or part), else now."""
        starts = [s.started for s in self.shards if s.started is not None]
        starts += [t for t, _ in self.parts[:1]]
        return min(starts, default=self.created)

    @property
    def span(self) -> float:
        """Seconds from the first shard start to the last end."""
        return max([s.ended for s in self.shards] + [t for t, _ in self.parts[-1:]],
                   default=self.t0) - self.t0


def check_selection(sequences: list[str] | None, top: int) -> Longest | Named:
    if sequences is not None:
        if not 1 <= len(sequences) <= MAX_TRACKS:
            raise ConfigError(f"--sequences takes 1 to {MAX_TRACKS} IDs, got {len(sequences)}")
        return Named(sequences)
    if not 1 <= top <= MAX_TRACKS:
        raise ConfigError(f"--top must be 1 to {MAX_TRACKS}, got {top}")
    return Longest(top)


def load_summary(run: RunDir) -> dict:
    if not run.summary.is_file():
        raise UserError(f"{run.root} is not reduced yet (no {run.summary}); run `virnuc-hpc "
                        f"reduce {run.root}` first")
    return json.loads(run.summary.read_text(encoding="utf-8"))


def collect(run_dir: str | os.PathLike, sequences: list[str] | None = None,
            top: int | None = None) -> RunReport:
    run = RunDir(run_dir)
    selector = check_selection(sequences, DEFAULT_TOP if top is None else top)
    plan, summary = load_plan(run.root), load_summary(run)
    sets, tally, start = result_sets(run, plan), Tally(), 0
    for sample, files in sets:
        tally, rows = scan_predictions(files.predictions, selector, tally, sample, start)
        start += rows
    where = run.results if plan.per_sample else run.predictions
    _check_agrees(run, where, summary, tally)
    rows, scores = selector.rows(where), {}
    for sample, files in sets:
        if mine := [row for row in rows if row.sample == sample]:
            scores.update(chunk_scores(files.prediction_results, mine, plan.chunk_size))
    tracks = [Track(row, scores.get(row.ordinal, [])) for row in rows]
    return RunReport(run, plan, summary, tally, tracks, selector.describe(),
                     shard_runs(run, plan), part_times(run, plan), model_rows(run, plan),
                     provenance(run), versions(), sample_rows(run, plan))


def result_sets(run: RunDir, plan: Plan) -> list[tuple[str, ResultFiles]]:
    """("", RUN/results/) for a run of one file; (name, RUN/results/<name>/) per sample."""
    if not plan.per_sample:
        return [("", run.outputs())]
    return [(sample.name, run.outputs(sample.name)) for sample in plan.samples]


def sample_rows(run: RunDir, plan: Plan) -> list[dict[str, str]]:
    """results/samples.tsv's rows (none in a run of one file)."""
    if not plan.per_sample:
        return []
    with open(run.samples_table, encoding="utf-8") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def _check_agrees(run: RunDir, where: Path, summary: dict, tally: Tally) -> None:
    counted = {"virus_sequences": tally.calls["virus"], "others_sequences": tally.calls["others"],
               "skipped": tally.calls["skipped"],
               "input_sequences": sum(tally.calls.values()),
               "skipped_by_reason": dict(sorted(tally.skipped_by_reason.items()))}
    differ = [key for key, value in counted.items() if summary.get(key) != value]
    if differ:
        raise IntegrityError(f"{where} and {run.summary} disagree on "
                             f"{', '.join(differ)}; rerun `virnuc-hpc reduce {run.root}`")


# --- figures ----------------------------------------------------------------------------------

def draw(report: RunReport) -> dict[str, bytes]:
    """Every figure of the page, as PNG bytes by name."""
    from . import figures

    unit, seconds = time_unit(report.span)
    since = lambda t: (t - report.t0) / seconds
    timed = [s for s in report.shards if s.started is not None]
    frames = np.cumsum([rows for _, rows in report.parts], dtype=np.int64)
    return {
        "scores": figures.score_histograms(
            SCORE_EDGES, {call: h.counts for call, h in report.tally.scores.items()}),
        "kept_frames": figures.kept_frames(report.tally.kept_frames),
        "prediction": figures.prediction([_figure_track(t) for t in report.tracks],
                                         TINY_NOTE if report.tiny else ""),
        "timeline": figures.timeline([s.index for s in timed], [since(s.started) for s in timed],
                                     [since(s.ended) for s in timed], [s.host for s in timed],
                                     unit),
        "throughput": figures.throughput(np.array([since(t) for t, _ in report.parts]), frames,
                                         unit),
    }


def time_unit(span_s: float) -> tuple[str, float]:
    """The unit a time axis of `span_s` seconds reads best in: (name, seconds per unit)."""
    if span_s < 180:
        return "seconds", 1.0
    return ("minutes", 60.0) if span_s < 3 * 3600 else ("hours", 3600.0)


def _figure_track(track: Track):
    from .figures import Track as FigureTrack

    row = track.row
    title = f"{qualified(row.sample, row.id)}  ({row.length:,} bp, {row.chunks:,} chunks, " \
            f"{row.call})"
    note = f"skipped ({row.skip_reason}): no kept frame" if not row.kept_frames else ""
    return FigureTrack(title, row.length, [tuple(c) for c in track.chunks], note)


# --- the page ---------------------------------------------------------------------------------

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
 margin:0;color:#1d1d1f;background:#f6f7f9;line-height:1.45}
main{max-width:1060px;margin:0 auto;padding:24px 28px 48px}
header{background:#1f3b9c;color:#fff;padding:20px 28px}
header h1{margin:0 0 4px;font-size:24px} header p{margin:2px 0;opacity:.9;font-size:14px}
section{background:#fff;border:1px solid #e1e4e8;border-radius:8px;padding:16px 22px;
 margin:18px 0}
h2{font-size:18px;margin:0 0 10px;color:#1f3b9c}
table{border-collapse:collapse;font-size:13px;margin:8px 0}
.scroll{overflow-x:auto}
th,td{padding:3px 10px;border-bottom:1px solid #eceef1;text-align:left;vertical-align:top}
th{background:#f3f4f7;font-weight:600} td.n{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%;height:auto;display:block;margin:8px 0}
code{font-size:12px;background:#f3f4f7;padding:1px 4px;border-radius:3px;word-break:break-all}
.warn{background:#fdecea;border:2px solid #d62728;color:#8a1c1c;font-weight:600;
 padding:10px 16px;border-radius:6px;margin:18px 0}
.identity{font-size:17px;font-weight:600;margin:6px 0 10px}
.ok{color:#1a7f37} .bad{color:#d62728} .muted{color:#6b6b6b;font-size:13px}
.virus{color:#d62728;font-weight:600} .others{color:#1f3b9c;font-weight:600}
"""


def esc(value) -> str:
    return html.escape(str(value), quote=True)


class Html(str):
    """A table cell that is HTML already (whoever built it escaped its parts)."""


def num(value) -> str:
    """A cell: ints with thousands separators, Html as is, anything else escaped."""
    if isinstance(value, Html):
        return value
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else esc(value)


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min" if seconds < 2 * 3600 else f"{seconds / 3600:.1f} h"


def when(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))


def table(header: Iterable[str], rows: Iterable[Iterable], numeric: Iterable[int] = ()) -> str:
    """An HTML table of `num` cells (right-aligned in the `numeric` columns)."""
    right = set(numeric)
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td class=n>{num(c)}</td>" if i in right else
                                    f"<td>{num(c)}</td>" for i, c in enumerate(row)) + "</tr>"
                   for row in rows)
    return f"<div class=scroll><table><tr>{head}</tr>{body}</table></div>"  # wide: scrolls


def image(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{esc(alt)}">'


def section(title: str, *parts: str) -> str:
    return f"<section><h2>{esc(title)}</h2>{''.join(parts)}</section>"


def share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "—"


def accounting_section(r: RunReport, images: dict) -> str:
    s = r.summary
    total, predicted, skipped = s["input_sequences"], s["predicted"], s["skipped"]
    holds = total == predicted + skipped
    identity = (f'<p class=identity>Input sequences = predicted + skipped: {total:,} = '
                f'{predicted:,} + {skipped:,} <span class={"ok" if holds else "bad"}>'
                f'{"(holds)" if holds else "(DOES NOT HOLD)"}</span></p>')
    rows = [("predicted: virus", s["virus_sequences"], share(s["virus_sequences"], total), ""),
            ("predicted: others", s["others_sequences"], share(s["others_sequences"], total), "")]
    rows += [(f"skipped: {reason}", count, share(count, total), SKIP_REASONS.get(reason, ""))
             for reason, count in s["skipped_by_reason"].items()]
    chunks = [(name.replace("_", " "), s[name]) for name in
              ("chunks", "scored_chunks", "virus_chunks", "kept_frames", "highestscore_rows")]
    return section("Accounting", identity,
                   table(("sequences", "count", "share", "meaning"), rows, numeric=(1, 2)),
                   table(("chunks and frames", "count"), chunks, numeric=(1,)),
                   reuse_paragraph(s),
                   f"<p class=muted>Call rule: {esc(s['call_rule'])}.</p>")


def reuse_paragraph(s: dict) -> str:
    """What the duplicate reads saved: computed once, each copy given its first one's rows."""
    if not s.get("dedup", True):
        return "<p class=muted>Duplicate reads: not looked for (planned with --no-dedup).</p>"
    reused = s.get("reused", {})
    n, frames = reused.get("sequences", 0), reused.get("frames", 0)
    return (f"<p class=reuse>Duplicate reads: {n:,} of {s['input_sequences']:,} sequences "
            f"({share(n, s['input_sequences'])}) equal an earlier one of the run and took its "
            f"results; their {frames:,} kept frames were not embedded again: "
            f"{100 * reused.get('encoder_work_saved', 0.0):.1f}% of the encoder work "
            "saved.</p>")


def calls_section(r: RunReport, images: dict) -> str:
    return section("Calls and scores",
                   "<p>Per predicted sequence, its best virus score (the highest score2 of its "
                   "kept frames), one panel per call.</p>",
                   image(images["scores"], "score histogram per call"))


def frames_section(r: RunReport, images: dict) -> str:
    return section("Kept frames per sequence",
                   "<p>Stop-free frames over all chunks of a sequence; 0 means skipped.</p>",
                   image(images["kept_frames"], "kept frames per sequence"))


def prediction_section(r: RunReport, images: dict) -> str:
    rows = [(qualified(t.row.sample, t.row.id), t.row.length, t.row.chunks, t.row.kept_frames,
             t.row.virus_chunks, t.row.best_virus_score or "—", t.row.call,
             t.row.skip_reason or "") for t in r.tracks]
    return section("Prediction along the sequences (prediction.png)",
                   f"<p>{esc(r.selection)}: per chunk the best score over its kept frames, "
                   "<span class=virus>red</span> when the chunk is virus (max score2 &ge; max "
                   "score1), <span class=others>blue</span> otherwise, drawn over the bases the "
                   "chunk spans; gaps are chunks with no kept frame. Other sequences: "
                   f"<code>virnuc-hpc report {esc(r.run.root)} --sequences ID,...</code></p>",
                   image(images["prediction"], "prediction along the sequences"),
                   table(("sequence", "length", "chunks", "kept frames", "virus chunks",
                          "best virus score", "call", "skip reason"), rows,
                         numeric=(1, 2, 3, 4)) if rows else "")


def shards_section(r: RunReport, images: dict) -> str:
    shown = r.shards
    note = ""
    if len(shown) > MAX_SHARD_ROWS:
        shown = sorted(sorted(shown, key=lambda s: s.rate or 0.0)[:MAX_SHARD_ROWS])
        note = (f"<p class=muted>The {MAX_SHARD_ROWS} slowest of {len(r.shards):,} shards "
                "(all of them: <code>virnuc-hpc status RUN</code>).</p>")
    rows = [(s.index, s.sequences, s.rows, when(s.started), when(s.ended),
             duration(s.ended - s.started) if s.started else "—",
             f"{s.rate:,.1f}" if s.rate is not None else "—", s.host, s.gpu) for s in shown]
    total = sum(s.rows for s in r.shards)
    return section("Shards over time",
                   f"<p>Shards: {len(r.shards):,}; kept frames embedded: {total:,}; "
                   f"{duration(r.span)} from the first start to the last end.</p>",
                   image(images["timeline"], "per-shard timeline"),
                   image(images["throughput"], "frames embedded over time"), note,
                   table(("shard", "sequences", "frames", "started", "ended", "took",
                          "frames/s", "host", "GPU"), rows, numeric=(0, 1, 2, 5, 6)))


def models_section(r: RunReport, images: dict) -> str:
    if not r.models:
        return section("Models", "<p>The plan records no models.</p>")
    rows = [(m.name, m.fingerprint, *_cache_cells(m)) for m in r.models]
    return section("Models", table(("model", "fingerprint (the run's)", "source", "revision",
                                    "files (sha256)", "cache entry on this machine"), rows))


def _cache_cells(m: ModelRow) -> tuple[str, str, Html | str, str]:
    if m.manifest is None:
        return "—", "—", "—", f"not on this machine ({m.where}); the fingerprint identifies it"
    files = Html("<br>".join(f"{esc(name)} <code>{esc(record.get('sha256', '?'))}</code>"
                             for name, record in sorted(m.manifest.get("files", {}).items())))
    state = "holds the bytes the run used" if m.matches else "holds OTHER bytes than the run used"
    revision = m.manifest.get("revision") or m.manifest.get("requested_revision") or "—"
    return m.manifest.get("source", "—"), revision, files, f"{m.where}: {state}"


def options_section(r: RunReport, images: dict) -> str:
    p = r.plan
    config = asdict(p.config)
    precision = p.precision + (f" ({p.precision_note})" if p.precision_note else "")
    rows = [*_input_rows(p), ("chunk size", p.chunk_size), ("model profile", p.profile),
            ("precision", precision), ("batches", p.config.describe_batching()),
            *((f"option {k}", "default" if v is None else v) for k, v in config.items()
              if k != "precision"),
            ("shards", len(p.shards)), ("imbalance (max/mean chunks)", f"{p.imbalance:.4f}"),
            ("run fingerprint", p.fingerprint), ("planned with virnuc-hpc", p.package_version)]
    stages = [(stage, when(rec.get("time")), rec.get("host", "?"), rec.get("python", "?"),
               rec.get("virnuc_hpc", "?"), " ".join(map(str, rec.get("argv", []))))
              for stage, rec in r.provenance.items()]
    return section("Options and versions", table(("option", "value"), rows),
                   table(("stage", "time", "host", "python", "virnuc-hpc", "command"), stages),
                   "<p class=muted>Packages on the machine that wrote this report:</p>",
                   table(("package", "version"), r.versions.items()))


def _input_rows(p: Plan) -> list[tuple[str, object]]:
    if not p.per_sample:
        source = p.samples[0]
        return [("input", source.path), ("input sha256", source.sha256),
                ("input bytes", source.bytes)]
    return [("samples", len(p.samples)), ("sample sheet", p.sheet or "— (files given)"),
            ("input bytes", sum(s.bytes for s in p.samples))]


def samples_section(r: RunReport, images: dict) -> str:
    """A study's samples.tsv as a table (no section for a run of one file)."""
    if not r.samples:
        return ""
    header = [h for h in r.samples[0] if h != "fasta"]
    numeric = [i for i, h in enumerate(header) if h in SAMPLE_COUNTS]
    rows = [[int(row[h]) if h in SAMPLE_COUNTS else row[h] for h in header] for row in r.samples]
    return section(f"Samples ({len(r.samples):,})",
                   "<p>Per sample (<code>results/samples.tsv</code>; its files are in "
                   "<code>results/&lt;sample&gt;/</code>): input sequences = predicted + "
                   "skipped.</p>", table(header, rows, numeric=numeric))


SECTIONS: tuple[Callable[[RunReport, dict], str], ...] = (
    accounting_section, samples_section, calls_section, frames_section, prediction_section,
    shards_section, models_section, options_section)


def page(r: RunReport, images: dict[str, bytes]) -> str:
    warn = f"<div class=warn>{esc(TINY_NOTE)}.</div>" if r.tiny else ""
    return ("<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
            f"<title>virnuc-hpc report: {esc(r.run.root.name)}</title>"
            f"<style>{CSS}</style></head><body>"
            f"<header><h1>VirNucPro run report</h1><p>{esc(r.run.root.resolve())}</p>"
            f"<p>written {when(r.created)} {esc(time.strftime('%Z'))} by virnuc-hpc "
            f"{esc(r.versions.get('virnuc-hpc'))}</p></header><main>{warn}"
            + "".join(render(r, images) for render in SECTIONS) + "</main></body></html>\n")


# --- writing ----------------------------------------------------------------------------------

class ReportFiles(NamedTuple):
    html: Path
    figure: Path


def write_report(run_dir: str | os.PathLike, sequences: list[str] | None = None,
                 top: int | None = None) -> ReportFiles:
    """Write RUN/results/prediction.png, then report.html (which embeds it). The figure
    draws `sequences` (IDs) or the `top` longest predicted ones (default DEFAULT_TOP)."""
    report = collect(run_dir, sequences, top)
    images = draw(report)
    run = report.run
    atomic_write(run.prediction_figure, images["prediction"])
    atomic_write(run.report, page(report, images))
    return ReportFiles(run.report, run.prediction_figure)


def report_after_reduce(run_dir: str | os.PathLike) -> str | None:
    """`reduce`'s report: None when written, else a one-line warning. Never raises, so a
    failure to draw never costs the results."""
    try:
        write_report(run_dir)
    except Exception as exc:  # any failure to draw is reported, results stay
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())
        return (f"warning: the run report was not written ({reason}); the results are "
                f"complete; retry: virnuc-hpc report {run_dir}")
    return None

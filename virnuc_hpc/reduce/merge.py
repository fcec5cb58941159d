"""Reduce a run: verify every shard and merge them into RUN/results/, in input order.

Nothing is merged unless every shard verifies (`store.verify_task` against its manifest, and
the same widths and model fingerprints in all shards); otherwise the result names each bad
index with its reasons and the resubmit command. Each part is read once: verification hashes
its bytes and parses its tensors, and hands the scores on (`on_part`), from which the shard
is turned into a small per-sequence scratch file (scores only; the features are not copied).
The shards' files are then merged by global ordinal with `heapq.merge`, which visits the
samples in order: each sample's three files are written in turn (one sample's files open at a
time) and its accounting checked. The per-chunk table of all samples is sorted on disk once,
keyed by (sample, chunk ID), and read back sample by sample. Memory grows with neither the
frames nor the samples: it holds one shard's scores at a time and a block per scratch file.

Files: VirNucPro's `prediction_results.txt` and `prediction_results_highestscore.csv`
(outputs.py), `predictions.tsv` (one row per input sequence, in input order) - in RUN/results/
for a run of one file, in RUN/results/<sample>/ for a study, with `samples.tsv` (one row per
sample); an index of the feature parts (`features_index.json`), `versions.yml` (versions.py),
MultiQC's custom content (mqc.py: the accounting and a best-virus-score histogram per sample,
counted while the merge streams), and `summary.json`, written last, with the accounting (per
sample too, in a study). Per-sequence call: VirNucPro only calls chunks (`Is_Virus =
max(score2) >= max(score1)` over a chunk's kept frames); a sequence is `virus` when any of its
chunks is, `others` when it has kept frames but no virus chunk, and `skipped` (with the
reason) when no frame was kept. The identity input sequences = predicted + skipped is checked
for every sample; the files are staged in scratch and published only when every sample's
accounting adds up.

A reduce that is killed leaves the previous results or complete new files (each is published
whole; summary.json, removed first and written last, says the set is complete) plus scratch,
which the next reduce sweeps (one reduce per run at a time: a lock in RUN/results/). SIGTERM
and SIGUSR2 stop it cleanly (scratch removed, exit 75); an I/O error ends as one line naming
the file and the rerun (`ReduceIOError`, exit 1).
"""

from __future__ import annotations

import heapq
import json
import os
import shutil
import signal
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from functools import lru_cache
from itertools import groupby, islice
from pathlib import Path
from typing import IO, Iterator, Mapping

import numpy as np
from filelock import FileLock, Timeout

from . import mqc
from ..core.errors import IntegrityError, UserError
from ..core.faults import fault_point
from ..core.fsio import atomic_write, make_dirs, publish
from .schema import SAMPLES_HEADER, FrameRow, PredictionRow
from .outputs import HIGHEST_HEADER, LABELS, ChunkTable, chunk_id, \
    reopening_lines
from ..plan import Manifest, Plan, SamplePlan, load_manifest, load_plan
from ..plan.duplicates import Duplicates
from ..core.rundir import ResultFiles, RunDir, contained, index_name, write_provenance
from .scores import Histogram
from ..sequences.prepare import SKIP_REASONS
from ..parts import (FEATURE_DTYPES, AccountRow, iter_accounting, mark_rejected, part_layout,
                    read_done, stored_features, verify_task)
from ..core.versions import versions_yaml

CALL_RULE = ("a sequence is 'virus' if any of its chunks is (VirNucPro's per-chunk rule: "
             "max(score2) >= max(score1) over the chunk's kept frames), 'others' if it has kept "
             "frames and no virus chunk, 'skipped' when no frame was kept (see skip_reason)")
COUNTS = ("virus", "others", "skipped", "kept_frames", "chunks", "scored_chunks",
          "virus_chunks", "highestscore_rows", "duplicates", "reused_frames")
REPS_CACHED = 1 << 16   # representatives' results kept in memory (the rest re-read from disk)


class ReduceStopped(UserError):
    """SIGTERM or SIGUSR2 reached reduce: nothing partial was left; run it again."""

    exit_code = 75


class ReduceIOError(UserError):
    """The file system failed reduce (ENOSPC, EIO, read-only): one line, the rerun."""

    exit_code = 1

    def __init__(self, run: RunDir, exc: OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        super().__init__(f"reduce of {run.root}: {exc.strerror or exc}{where}; nothing partial "
                         "was published; fix the file system (space, permissions), then rerun: "
                         f"`virnuc-hpc reduce {run.root}`")


@dataclass
class ShardProblem:
    index: int
    problems: list[str]


@dataclass
class ReduceResult:
    """`ok` and the written files, or the bad shards and how to resubmit them."""

    ok: bool
    run_dir: str
    bad: list[ShardProblem] = field(default_factory=list)
    summary: dict | None = None
    files: dict[str, str] = field(default_factory=dict)

    @property
    def bad_indices(self) -> list[int]:
        return [shard.index for shard in self.bad]

    @property
    def resubmit_command(self) -> str | None:
        if not self.bad:
            return None
        indices = ",".join(map(str, self.bad_indices))
        return f"virnuc-hpc resubmit {self.run_dir} --indices {indices}"

    def report(self) -> str:
        """Human-readable lines: the written files, or each bad index and the fix."""
        if self.ok:
            return "\n".join(f"{name}: {path}" for name, path in self.files.items())
        lines = [f"{len(self.bad)} shard(s) failed verification; nothing was merged:"]
        lines += [f"  index {s.index}: {'; '.join(s.problems)}" for s in self.bad]
        return "\n".join(lines + [f"fix: {self.resubmit_command}"])


# --- verification (and extraction, in the same read) ----------------------------------------

PartScores = list[tuple[list[str], np.ndarray]]


def planned_features(plan: Plan) -> str:
    """What the plan asked the parts to keep of the features (fp32, fp16, none)."""
    return plan.config.features


class _Verifier:
    """Shard after shard against its manifest and the plan's feature storage, and against
    the first good shard's widths and model fingerprints (and `widths`/`fingerprints` when
    given)."""

    def __init__(self, run: RunDir, widths, fingerprints, features: str | None = None):
        self.run, self.widths, self.fingerprints = run, widths, fingerprints
        self.features = features
        self.reference: tuple[int, tuple] | None = None

    def __call__(self, index: int, parts: PartScores | None = None,
                 ) -> tuple[list[str], Manifest | None]:
        """(problems, manifest); the scores of every verified part go to `parts`."""
        try:
            self.run.checked_task(index)
            manifest = load_manifest(self.run, index)
        except IntegrityError as exc:
            return [str(exc)], None
        keep = None if parts is None else \
            lambda k, ids, tensors: parts.append((list(ids), np.array(tensors["scores"])))
        task = self.run.task(index)
        expected = replace(manifest.expectation(self.widths, self.fingerprints),
                           features=self.features)
        problems = verify_task(task, expected, keep)
        if not problems:
            done = read_done(task)
            if (done.get("shard", index), done.get("plan", manifest.plan_fingerprint)) != \
                    (index, manifest.plan_fingerprint):
                problems.append(f"{task.root} holds the task of shard {done.get('shard')} of "
                                f"plan {str(done.get('plan'))[:12]}, not of this shard")
            declared = (done.get("widths"), done.get("fingerprints"), stored_features(done))
            self.reference = self.reference or (index, declared)
            if declared != self.reference[1]:
                problems.append(f"widths, model fingerprints or feature storage differ from "
                                f"shard {self.reference[0]}'s")
        return problems, manifest


def verify_run(run_dir: str | os.PathLike, widths: Mapping[str, int] | None = None,
               fingerprints: Mapping[str, str] | None = None) -> list[ShardProblem]:
    """Verify every shard of the plan; [] when all can be merged. Shards must also agree with
    each other (and with `widths`/`fingerprints` when given) on widths and model fingerprints."""
    run, plan = RunDir(run_dir), load_plan(run_dir)
    verify = _Verifier(run, widths, fingerprints, planned_features(plan))
    checked = ((shard.index, verify(shard.index)[0]) for shard in plan.shards)
    return [ShardProblem(index, problems) for index, problems in checked if problems]


def _verify_and_extract(run: RunDir, plan: Plan, verify: _Verifier, table: ChunkTable,
                        scratch: Path) -> list[ShardProblem]:
    """Every shard verified; while all are good so far, each one's scratch file written
    (shards in order: a duplicate's representative always comes before it)."""
    bad, reps = [], _Representatives(scratch, run_duplicates(run, plan).reps)
    with reps:
        for shard in plan.shards:
            parts: PartScores = []
            problems, manifest = verify(shard.index, parts)
            if problems:
                bad.append(ShardProblem(shard.index, problems))
            elif not bad:
                with open(_scratch_file(scratch, shard.index), "w", encoding="utf-8") as out:
                    _extract_shard(run, manifest, parts, (table, reps), out)
                fault_point("reduce.shard", shard.index)
    return bad


def run_duplicates(run: RunDir, plan: Plan) -> Duplicates:
    """The run's duplicate reads (none when it was planned without, or with --no-dedup)."""
    if not plan.duplicates:
        return Duplicates.none()
    return Duplicates.load(run.duplicates, run.representatives)


class _Representatives:
    """What each representative computed (its accounting row and frames), kept on disk for
    its duplicates, which come after it; the most recently used are kept in memory."""

    def __init__(self, scratch: Path, ordinals: np.ndarray):
        self.ordinals = ordinals
        self.offsets = np.full(len(ordinals), -1, np.int64)
        self.handle = open(scratch / "representatives.jsonl", "w+b")
        self.get = lru_cache(maxsize=REPS_CACHED)(self._read)

    def put(self, ordinal: int, row: AccountRow, frames: list) -> None:
        k = int(np.searchsorted(self.ordinals, ordinal))
        self.handle.seek(0, os.SEEK_END)
        self.offsets[k] = self.handle.tell()
        record = [row.id, row.length, row.chunks, row.kept_frames, row.skip_reason,
                  [[fid, str(s1), str(s2)] for fid, s1, s2 in frames]]
        self.handle.write(json.dumps(record).encode() + b"\n")

    def _read(self, ordinal: int) -> tuple[AccountRow, list]:
        self.handle.seek(int(self.offsets[int(np.searchsorted(self.ordinals, ordinal))]))
        rid, length, chunks, kept, reason, frames = json.loads(self.handle.readline())
        return AccountRow(rid, length, chunks, kept, reason), \
            [(fid, np.float32(s1), np.float32(s2)) for fid, s1, s2 in frames]

    def copy_for(self, rep: int, rid: str) -> tuple[AccountRow, list]:
        """The representative's row and frames under the duplicate's ID `rid`."""
        row, frames = self.get(rep)
        cut = len(row.id)
        return replace(row, id=rid), [(rid + fid[cut:], s1, s2) for fid, s1, s2 in frames]

    def __enter__(self) -> "_Representatives":
        return self

    def __exit__(self, *exc) -> None:
        self.handle.close()


def _scratch_file(scratch: Path, index: int) -> Path:
    return scratch / f"shard-{index_name(index)}.tsv"


# --- per-shard extraction -----------------------------------------------------------------

def _frames(parts: PartScores) -> Iterator[tuple[str, np.float32, np.float32]]:
    for ids, scores in parts:
        yield from zip(ids, scores[:, 0], scores[:, 1])


def _extract_shard(run: RunDir, manifest: Manifest, parts: PartScores,
                   into: tuple[ChunkTable, _Representatives], out: IO[str]) -> None:
    """One line per sequence (S: its sample, scored chunks, whether it is a duplicate and
    predictions.tsv row), then one per kept frame (F: its prediction_results.txt row), each
    keyed by its global ordinal. A duplicate gets its representative's row and frames under
    its own ID."""
    (table, reps), frames = into, _frames(parts)
    accounting = iter_accounting(run.task(manifest.index))
    copies = dict(zip(manifest.duplicates["ordinal"].tolist(),
                      manifest.duplicates["rep"].tolist()))
    keep = set(manifest.representatives.tolist())
    for ordinal, sample, rid in zip(manifest.ordinals.tolist(), manifest.samples.tolist(),
                                    manifest.ids):
        if ordinal in copies:
            row, taken = reps.copy_for(copies[ordinal], rid)
        else:
            row = next(accounting)
            taken = list(islice(frames, row.kept_frames))
            if ordinal in keep:
                reps.put(ordinal, row, taken)
        out.writelines(_sequence_lines(ordinal, sample, row, taken, table,
                                       ordinal in copies))


def _sequence_lines(ordinal: int, sample: int, row: AccountRow, frames: list,
                    table: ChunkTable, duplicate: bool = False) -> list[str]:
    """The scratch lines of one sequence: `ORDINAL S SAMPLE CHUNKS DUPLICATE <its
    predictions.tsv row>`, then `ORDINAL F <its prediction_results.txt row>` per kept frame."""
    lines = [f"{ordinal}\tF\t" + FrameRow(fid, LABELS[int(s2 > s1)], s1, s2).line()
             for fid, s1, s2 in frames]
    virus_chunks, groups = 0, _chunks(frames)
    for key, group in groups:
        max1, max2 = max(s1 for _, s1, _ in group), max(s2 for _, _, s2 in group)
        table.add_chunk(f"{sample:08d}/{key}", max1, max2)  # sorts by sample, then chunk ID
        virus_chunks += bool(max2 >= max1)
    call = "skipped" if not frames else ("virus" if virus_chunks else "others")
    best = max(s2 for _, _, s2 in frames) if frames else None
    prediction = PredictionRow(row.id, row.length, row.chunks, row.kept_frames, virus_chunks,
                               best, call, row.skip_reason)
    return [f"{ordinal}\tS\t{sample}\t{len(groups)}\t{int(duplicate)}\t" + prediction.line(),
            *lines]


def _chunks(frames: list) -> list[tuple[str, list]]:
    groups: list[tuple[str, list]] = []
    for frame in frames:
        key = chunk_id(frame[0])
        if groups and groups[-1][0] == key:
            groups[-1][1].append(frame)
        else:
            groups.append((key, [frame]))
    return groups


# --- merge, sample by sample ------------------------------------------------------------------

def _keyed(path: Path) -> Iterator[tuple[int, str, str]]:
    for line in reopening_lines(path):
        ordinal, kind, rest = line.split("\t", 2)
        yield int(ordinal), kind, rest


class _Until:
    """The merged lines, handed out up to a given ordinal at a time."""

    def __init__(self, items: Iterator[tuple[int, str, str]]):
        self.items, self.head = items, next(items, None)

    def until(self, end: int) -> Iterator[tuple[int, str, str]]:
        while self.head is not None and self.head[0] < end:
            yield self.head
            self.head = next(self.items, None)


def _chunks_by_sample(table: ChunkTable) -> Iterator[tuple[int, Iterator[tuple[str, bool]]]]:
    """(sample index, its (chunk ID, Is_Virus) in lexicographic order), samples in order."""
    for sample, group in groupby(table.chunks(), key=lambda item: int(item[0][:8])):
        yield sample, ((key[9:], virus) for key, virus in group)


@dataclass
class _Sample:
    """One sample's files being written (staged), its counts and its predicted sequences'
    best virus scores (a fixed-bin histogram)."""

    index: int
    plan: SamplePlan
    files: ResultFiles
    counts: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)
    scores: Histogram = field(default_factory=Histogram)
    seen: int = 0

    def write_rows(self, items: Iterator[tuple[int, str, str]], start: int) -> None:
        self.files.root.mkdir(parents=True)
        with open(self.files.prediction_results, "w", encoding="utf-8") as results, \
                open(self.files.predictions, "w", encoding="utf-8") as predictions:
            results.write(FrameRow.header())
            predictions.write(PredictionRow.header())
            for ordinal, kind, rest in items:
                if kind == "F":
                    results.write(rest + "\n")
                    continue
                sample, scored, duplicate, row = rest.split("\t", 3)
                self._check_order(ordinal, start, int(sample))
                predictions.write(self._count(int(scored), row, duplicate == "1") + "\n")
        self.scores.flush()

    def _check_order(self, ordinal: int, start: int, sample: int) -> None:
        if ordinal != start + self.seen:
            raise IntegrityError(f"input sequence {start + self.seen} is missing from the "
                                 f"shards (found {ordinal}); the plan and the tasks disagree")
        if sample != self.index:
            raise IntegrityError(f"sample {self.plan.name!r}: accounting does not add up: the "
                                 f"plan counts input sequence {ordinal} in it, the shards in "
                                 f"sample {sample}; the plan and the tasks disagree")
        self.seen += 1

    def _count(self, scored: int, line: str, duplicate: bool) -> str:
        row = PredictionRow.parse(line)
        self.counts.update({row.call: 1, "kept_frames": row.kept_frames, "chunks": row.chunks,
                            "scored_chunks": scored, "virus_chunks": row.virus_chunks,
                            "duplicates": int(duplicate),
                            "reused_frames": row.kept_frames * duplicate})
        if not row.predicted:
            self.skipped[row.skip_reason] += 1
        else:
            self.scores.add(row.best_virus_score)
        return line

    def write_highest(self, chunks: Iterator[tuple[str, bool]]) -> None:
        with open(self.files.highestscore, "w", encoding="utf-8") as out:
            out.write(HIGHEST_HEADER)
            for key, virus in chunks:
                out.write(f"{key}\t{virus}\n")
                self.counts["highestscore_rows"] += 1

    def accounting(self) -> dict:
        """This sample's summary; raises IntegrityError (nothing is published) unless input
        sequences = merged = predicted + skipped."""
        c, planned = self.counts, self.plan.sequences
        predicted = c["virus"] + c["others"]
        if not (planned == self.seen == predicted + c["skipped"]):
            raise IntegrityError(f"sample {self.plan.name!r}: accounting does not add up: "
                                 f"{planned} input sequences, {self.seen} merged, {predicted} "
                                 f"predicted + {c['skipped']} skipped")
        return {"sample": self.plan.name, "input_sequences": planned, **_counted(c,
                self.skipped), "fasta": self.plan.path, "metadata": self.plan.metadata}


def _counted(counts: Counter, skipped: Counter) -> dict:
    return {"predicted": counts["virus"] + counts["others"], "skipped": counts["skipped"],
            "skipped_by_reason": dict(sorted(skipped.items())),
            "virus_sequences": counts["virus"], "others_sequences": counts["others"],
            **{name: counts[name] for name in COUNTS[3:]}}


def _merge(plan: Plan, paths: list[Path], table: ChunkTable,
           staged: Path) -> tuple[list[dict], list[Histogram]]:
    """Every sample's three files, staged in `staged/<index>/`; their accounting and
    best-virus-score histograms."""
    merged = _Until(heapq.merge(*map(_keyed, paths), key=lambda item: item[0]))
    chunks = _chunks_by_sample(table)
    pending = next(chunks, None)
    starts, accounts, histograms = plan.sample_starts().tolist(), [], []
    for index, source in enumerate(plan.samples):
        sample = _Sample(index, source, ResultFiles(staged / f"{index:08d}"))
        sample.write_rows(merged.until(starts[index + 1]), starts[index])
        mine = pending is not None and pending[0] == index
        sample.write_highest(pending[1] if mine else iter(()))
        pending = next(chunks, None) if mine else pending
        accounts.append(sample.accounting())
        histograms.append(sample.scores)
    if merged.head is not None:
        raise IntegrityError(f"the shards hold input sequence {merged.head[0]}, the plan has "
                             f"{starts[-1]}; the plan and the tasks disagree")
    return accounts, histograms


# --- the results ------------------------------------------------------------------------------

def reduce_run(run_dir: str | os.PathLike, widths: Mapping[str, int] | None = None,
               fingerprints: Mapping[str, str] | None = None) -> ReduceResult:
    """Verify all shards, then write RUN/results/. Returns the bad shards instead when any
    shard fails; raises IntegrityError (publishing nothing) if the accounting does not add up."""
    run = RunDir(run_dir)
    try:
        with _stop_signals(run):
            return _reduce(run, load_plan(run_dir), widths, fingerprints)
    except OSError as exc:
        raise ReduceIOError(run, exc) from exc


def _reduce(run: RunDir, plan: Plan, widths, fingerprints) -> ReduceResult:
    make_dirs(contained(run.root, run.results))
    with _alone(run):
        scratch = Path(tempfile.mkdtemp(prefix=".reduce-", dir=run.results))
        try:
            with ChunkTable(scratch) as table:
                verify = _Verifier(run, widths, fingerprints, planned_features(plan))
                bad = _verify_and_extract(run, plan, verify, table, scratch)
                if bad:
                    for shard in bad:  # status shows them corrupt, resubmit reruns them
                        mark_rejected(run.task(shard.index), shard.problems)
                    return ReduceResult(False, str(run.root), bad)
                for stale in (run.summary, run.report, run.prediction_figure):  # from the merge
                    stale.unlink(missing_ok=True)
                summary = _write_results(run, plan, table, scratch)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        write_provenance(run, "reduce", {"fingerprint": plan.fingerprint, "summary": summary})
    return ReduceResult(True, str(run.root), [], summary, _files(run, plan))


class _stop_signals:
    """SIGTERM/SIGUSR2 raise ReduceStopped (so scratch and temp files are removed on the way
    out) instead of killing the process mid-write."""

    def __init__(self, run: RunDir):
        self.run = run

    def _stop(self, signum, frame):
        raise ReduceStopped(f"stopped by {signal.Signals(signum).name} before it finished; "
                            f"nothing partial was published; rerun: `virnuc-hpc reduce "
                            f"{self.run.root}`")

    def __enter__(self):
        self.previous = {}
        if threading.current_thread() is threading.main_thread():
            self.previous = {sig: signal.signal(sig, self._stop)
                             for sig in (signal.SIGTERM, signal.SIGUSR2)}

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        return False


class _alone:
    """One reduce per run at a time; the one holding the lock sweeps what killed ones left
    (scratch dirs, temp files) from RUN/results/."""

    def __init__(self, run: RunDir):
        self.run, self.lock = run, FileLock(run.results / ".reduce.lock", timeout=0)

    def __enter__(self):
        try:
            self.lock.acquire()
        except Timeout:
            raise UserError(f"another reduce of {self.run.root} is running; wait for it (or "
                            "rerun `virnuc-hpc reduce` once it ended)") from None
        for leftover in self.run.results.glob(".reduce-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        provenance = self.run.provenance("reduce")
        for leftover in (*self.run.results.glob("**/.*.tmp"),
                         *provenance.parent.glob(f".{provenance.name}.*.tmp")):
            leftover.unlink(missing_ok=True)

    def __exit__(self, *exc):
        self.lock.release()
        return False


def _files(run: RunDir, plan: Plan) -> dict[str, str]:
    names = ("features_index", "versions", "summary")
    multiqc = {"multiqc": str(run.multiqc("*"))}
    if not plan.per_sample:
        names = ("prediction_results", "highestscore", "predictions", *names)
        return {**{name: str(getattr(run, name)) for name in names}, **multiqc}
    folders = f"{run.results}/<sample>/ (one folder per sample, {len(plan.samples)})"
    return {"samples": str(run.samples_table), "per_sample": folders,
            **{name: str(getattr(run, name)) for name in names}, **multiqc}


def _write_results(run: RunDir, plan: Plan, table: ChunkTable, scratch: Path) -> dict:
    paths = [_scratch_file(scratch, shard.index) for shard in plan.shards]
    accounts, histograms = _merge(plan, paths, table, scratch / "out")
    fault_point("reduce.merged")
    totals = _totals(plan, accounts)
    staged = []
    for index, sample in enumerate(plan.samples):  # every sample adds up: publish
        final = run.outputs(sample.name if plan.per_sample else None)
        make_dirs(final.root)
        staged += zip(ResultFiles(scratch / "out" / f"{index:08d}"), final)
    if plan.per_sample:
        _write_samples_table(scratch / "out" / "samples.tsv", accounts)
        staged.append((scratch / "out" / "samples.tsv", run.samples_table))
    staged += _stage_workflow_files(run, plan, accounts, histograms, scratch / "out")
    _publish(staged)
    atomic_write(run.features_index, json.dumps(_features_index(run, plan), indent=1) + "\n")
    summary = _summary(plan, totals, accounts)
    atomic_write(run.summary, json.dumps(summary, indent=1, sort_keys=True) + "\n")
    return summary


def _stage_workflow_files(run: RunDir, plan: Plan, accounts: list[dict],
                          histograms: list[Histogram], out: Path) -> list[tuple[Path, Path]]:
    """versions.yml and the MultiQC files, written in `out`: (staged, final) pairs."""
    texts = {run.versions: versions_yaml(), run.multiqc_versions: versions_yaml()}
    texts |= {run.multiqc(part): json.dumps(doc, indent=1) + "\n"
              for part, doc in mqc.documents(accounts, histograms, plan.profile).items()}
    for final, text in texts.items():
        (out / final.name).write_text(text, encoding="utf-8")
    return [(out / final.name, final) for final in texts]


def _publish(staged: list[tuple[Path, Path]]) -> None:
    """Each staged file renamed over its result (fsio.publish); if one fails, those this call
    published are removed again (summary.json, removed first and written last, is absent)."""
    done: list[Path] = []
    try:
        for source, target in staged:
            publish(source, target)
            done.append(target)
    except BaseException:
        for target in done:
            target.unlink(missing_ok=True)
        raise


def _totals(plan: Plan, accounts: list[dict]) -> dict:
    """The whole run's counts; checks input sequences = predicted + skipped over all samples."""
    total, reasons = Counter(), Counter()
    for account in accounts:
        total.update({k: v for k, v in account.items() if isinstance(v, int)})
        reasons.update(account["skipped_by_reason"])
    if not (plan.sequences == total["input_sequences"] == total["predicted"] + total["skipped"]):
        raise IntegrityError(f"accounting does not add up: {plan.sequences} input sequences, "
                             f"{total['input_sequences']} merged, {total['predicted']} predicted "
                             f"+ {total['skipped']} skipped")
    return {"input_sequences": plan.sequences, "predicted": total["predicted"],
            "skipped": total["skipped"],
            "identity": "input_sequences = predicted + skipped: holds",
            "skipped_by_reason": dict(sorted(reasons.items())),
            **{k: total[k] for k in ("virus_sequences", "others_sequences", *COUNTS[3:])}}


def _write_samples_table(path: Path, accounts: list[dict]) -> None:
    """samples.tsv: one row per sample, then the sheet's other columns."""
    extra = list(dict.fromkeys(k for a in accounts for k in a["metadata"]))
    with open(path, "w", encoding="utf-8") as out:
        out.write("\t".join([*SAMPLES_HEADER, *extra]) + "\n")
        for a in accounts:
            reasons = [a["skipped_by_reason"].get(r, 0) for r in SKIP_REASONS]
            row = [a["sample"], a["input_sequences"], a["predicted"], a["virus_sequences"],
                   a["others_sequences"], a["skipped"], *reasons, a["kept_frames"],
                   a["duplicates"], a["reused_frames"], a["fasta"],
                   *(a["metadata"].get(k, "") for k in extra)]
            out.write("\t".join(map(str, row)) + "\n")


def _features_index(run: RunDir, plan: Plan) -> dict:
    """Where every part is, and what each holds (`features`: the storage choice, the tensors
    of every part with their dtypes, tensor bytes per frame; `stored`: measured totals)."""
    shards = []
    for shard in plan.shards:
        task, done = run.task(shard.index), read_done(run.task(shard.index))
        parts = [{**entry, "path": run.relative(task.part(entry["index"])),
                  "sidecar": run.relative(task.sidecar(entry["index"]))} for entry in done["parts"]]
        shards.append({"index": shard.index, "rows": done["rows"], "manifest": shard.manifest,
                       "accounting": run.relative(task.accounting), "parts": parts})
    first = read_done(run.task(plan.shards[0].index))
    features = stored_features(first)  # every shard's, verified
    return {"format": 1, "fingerprint": plan.fingerprint, "widths": first["widths"],
            "fingerprints": first["fingerprints"],
            "features": part_layout(features, first["widths"]),
            "stored": _stored_totals(shards),
            "layout": _layout_note(features),
            "samples": [s.name for s in plan.samples],
            "duplicates": _duplicates_note(run, plan),
            "shards": shards}


def _duplicates_note(run: RunDir, plan: Plan) -> dict:
    """Where a duplicate read's rows are: its representative's (no part holds them twice)."""
    if not plan.duplicates:
        return {"count": 0}
    return {"count": plan.duplicates["duplicates"], "pairs": run.relative(run.duplicates),
            "dtype": "(ordinal <i8, representative <i8), sorted by ordinal",
            "note": "a duplicate's frames and features are its representative's, whose rows "
                    "are in the parts of the shard holding the representative's ordinal"}


def _stored_totals(shards: list[dict]) -> dict:
    """Frames and part bytes over the run, measured (headers included, sidecars not)."""
    rows = sum(shard["rows"] for shard in shards)
    size = sum(part["bytes"] for shard in shards for part in shard["parts"])
    return {"frames": rows, "part_bytes": size,
            "part_bytes_per_frame": round(size / rows, 1) if rows else None}


def _layout_note(features: str) -> str:
    where = ("rows in each shard's input order, frame IDs in the sidecars; the input ordinals "
             "and samples of a shard's sequences are in its manifest")
    if features == "none":
        return ("tensor scores [n, 2] float32 per part; the features were not kept "
                "(--features none; widths are the models'); " + where)
    dtype = FEATURE_DTYPES[features].name
    return (f"tensors dnabert [n, widths.dnabert] then esm [n, widths.esm] ({dtype}) and "
            f"scores [n, 2] (float32) per part; {where}")


def reused(totals: dict) -> dict:
    """What the duplicate reads saved: their sequences and frames, taken from their
    representatives, and that share of the encoders' work."""
    frames = totals.get("kept_frames", 0)
    return {"sequences": totals.get("duplicates", 0), "frames": totals.get("reused_frames", 0),
            "encoder_work_saved": round(totals.get("reused_frames", 0) / frames, 6)
            if frames else 0.0}


def _summary(plan: Plan, totals: dict, accounts: list[dict]) -> dict:
    summary = {**totals, "reused": reused(totals), "dedup": plan.config.dedup,
               "shards": len(plan.shards), "fingerprint": plan.fingerprint,
               "chunk_size": plan.chunk_size, "profile": plan.profile,
               "precision": plan.precision, "batching": plan.config.batching(),
               "features": planned_features(plan),
               "call_rule": CALL_RULE, "time": time.time()}
    if plan.per_sample:
        summary["samples"] = accounts
    return summary

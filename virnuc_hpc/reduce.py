"""Reduce a run: verify every shard, then merge them into RUN/results/ in input order.

Nothing is merged unless every shard verifies (`store.verify_task` against its manifest, and
the same widths and model fingerprints in all shards); otherwise the result names each bad
index with its reasons and the resubmit command. The merge streams: each shard is turned
into a small per-sequence file (scores only; the features are not copied), the shards are
merged by input ordinal with `heapq.merge`, and the per-chunk table is sorted on disk.

Files: VirNucPro's `prediction_results.txt` and `prediction_results_highestscore.csv`
(outputs.py), `predictions.tsv` (one row per input sequence, in input order), an index of
the feature parts (`features_index.json`), and `summary.json`, written last, with the
accounting. Per-sequence call: VirNucPro only calls chunks (`Is_Virus = max(score2) >=
max(score1)` over a chunk's kept frames); a sequence is `virus` when any of its chunks is,
`others` when it has kept frames but no virus chunk, and `skipped` (with the reason) when no
frame was kept. The identity input sequences = predicted + skipped is checked on every run and
nothing is written when it fails.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Iterator, Mapping

import numpy as np
from safetensors import safe_open

from filelock import FileLock, Timeout

from .errors import IntegrityError, UserError
from .faults import fault_point
from .fsio import atomic_write, make_dirs
from .outputs import LABELS, PREDICTION_HEADER, ChunkTable, atomic_text, chunk_id, reopening_lines
from .plan import Manifest, Plan, load_manifest, load_plan
from .rundir import RunDir, TaskDir, contained, index_name, write_provenance
from .store import AccountRow, iter_accounting, mark_rejected, read_done, verify_task

PREDICTIONS_HEADER = ("sequence_id", "length", "chunks", "kept_frames", "virus_chunks",
                      "best_virus_score", "call", "skip_reason")
CALL_RULE = ("a sequence is 'virus' if any of its chunks is (VirNucPro's per-chunk rule: "
             "max(score2) >= max(score1) over the chunk's kept frames), 'others' if it has kept "
             "frames and no virus chunk, 'skipped' when no frame was kept (see skip_reason)")


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


# --- verification -------------------------------------------------------------------------

def verify_run(run_dir: str | os.PathLike, widths: Mapping[str, int] | None = None,
               fingerprints: Mapping[str, str] | None = None) -> list[ShardProblem]:
    """Verify every shard of the plan; [] when all can be merged. Shards must also agree with
    each other (and with `widths`/`fingerprints` when given) on widths and model fingerprints."""
    run, plan = RunDir(run_dir), load_plan(run_dir)
    bad, reference = [], None
    for shard in plan.shards:
        problems = _verify_shard(run, shard.index, widths, fingerprints)
        done = read_done(run.task(shard.index)) if not problems else None
        if done is not None:
            declared = (done.get("widths"), done.get("fingerprints"))
            reference = reference or (shard.index, declared)
            if declared != reference[1]:
                problems.append(f"widths or model fingerprints differ from shard {reference[0]}'s")
        if problems:
            bad.append(ShardProblem(shard.index, problems))
    return bad


def _verify_shard(run: RunDir, index: int, widths, fingerprints) -> list[str]:
    try:
        contained(run.root, run.task(index).root)
        manifest = load_manifest(run, index)
    except IntegrityError as exc:
        return [str(exc)]
    return verify_task(run.task(index), manifest.expectation(widths, fingerprints))


# --- per-shard extraction -----------------------------------------------------------------

@dataclass
class _Totals:
    counts: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)


def _part_frames(task: TaskDir, done: dict) -> Iterator[tuple[str, np.float32, np.float32]]:
    """(frame ID, score1, score2) over the shard's parts; only the scores are read."""
    for entry in done["parts"]:
        ids = json.loads(task.sidecar(entry["index"]).read_bytes())["ids"]
        with safe_open(str(task.part(entry["index"])), framework="numpy") as handle:
            scores = handle.get_tensor("scores")
        yield from zip(ids, scores[:, 0], scores[:, 1])


def _sequence_lines(ordinal: int, row: AccountRow, frames: list, table: ChunkTable,
                    totals: _Totals) -> list[str]:
    """The shard-file lines of one sequence: its predictions.tsv row, then its frames."""
    lines = [f"{ordinal}\tF\t{fid}\t{LABELS[int(s2 > s1)]}\t{s1!s}\t{s2!s}\n"
             for fid, s1, s2 in frames]
    virus_chunks, groups = 0, _chunks(frames)
    for key, group in groups:
        max1, max2 = max(s1 for _, s1, _ in group), max(s2 for _, _, s2 in group)
        table.add_chunk(key, max1, max2)
        virus_chunks += bool(max2 >= max1)
    call = "skipped" if not frames else ("virus" if virus_chunks else "others")
    best = f"{max(s2 for _, _, s2 in frames)!s}" if frames else ""
    totals.counts.update({call: 1, "kept_frames": len(frames), "chunks": row.chunks,
                          "scored_chunks": len(groups), "virus_chunks": virus_chunks})
    if not frames:
        totals.skipped[row.skip_reason] += 1
    fields = (row.id, row.length, row.chunks, row.kept_frames, virus_chunks, best, call,
              row.skip_reason)
    return [f"{ordinal}\tS\t" + "\t".join(map(str, fields)) + "\n", *lines]


def _chunks(frames: list) -> list[tuple[str, list]]:
    groups: list[tuple[str, list]] = []
    for frame in frames:
        key = chunk_id(frame[0])
        if groups and groups[-1][0] == key:
            groups[-1][1].append(frame)
        else:
            groups.append((key, [frame]))
    return groups


def _extract_shard(run: RunDir, manifest: Manifest, table: ChunkTable, out: IO[str],
                   totals: _Totals) -> None:
    task = run.task(manifest.index)
    frames = _part_frames(task, read_done(task))
    for ordinal, row in zip(manifest.ordinals.tolist(), iter_accounting(task)):
        taken = [frame for _, frame in zip(range(row.kept_frames), frames)]
        if len(taken) != row.kept_frames:
            raise IntegrityError(f"shard {manifest.index}: fewer frames than its accounting lists")
        out.writelines(_sequence_lines(ordinal, row, taken, table, totals))
    if next(frames, None) is not None:
        raise IntegrityError(f"shard {manifest.index}: more frames than its accounting lists")


# --- merge --------------------------------------------------------------------------------

def _keyed(path: Path) -> Iterator[tuple[int, str, str]]:
    for line in reopening_lines(path):
        ordinal, kind, rest = line.split("\t", 2)
        yield int(ordinal), kind, rest


def _merge(paths: list[Path], results: IO[str], predictions: IO[str]) -> int:
    """Write both per-row files in input order; returns the number of sequences seen."""
    results.write(PREDICTION_HEADER)
    predictions.write("\t".join(PREDICTIONS_HEADER) + "\n")
    expected = 0
    for ordinal, kind, rest in heapq.merge(*map(_keyed, paths), key=lambda item: item[0]):
        if kind == "F":
            results.write(rest + "\n")
            continue
        if ordinal != expected:
            raise IntegrityError(f"input sequence {expected} is missing from the shards "
                                 f"(found {ordinal}); the plan and the tasks disagree")
        predictions.write(rest + "\n")
        expected += 1
    return expected


def _check_identity(plan: Plan, seen: int, totals: _Totals) -> dict:
    predicted = totals.counts["virus"] + totals.counts["others"]
    skipped = totals.counts["skipped"]
    if not (plan.sequences == seen == predicted + skipped):
        raise IntegrityError(f"accounting does not add up: {plan.sequences} input sequences, "
                             f"{seen} merged, {predicted} predicted + {skipped} skipped")
    return {"input_sequences": plan.sequences, "predicted": predicted, "skipped": skipped,
            "identity": "input_sequences = predicted + skipped: holds"}


def _features_index(run: RunDir, plan: Plan) -> dict:
    shards = []
    for shard in plan.shards:
        task, done = run.task(shard.index), read_done(run.task(shard.index))
        parts = [{**entry, "path": run.relative(task.part(entry["index"])),
                  "sidecar": run.relative(task.sidecar(entry["index"]))} for entry in done["parts"]]
        shards.append({"index": shard.index, "rows": done["rows"], "manifest": shard.manifest,
                       "accounting": run.relative(task.accounting), "parts": parts})
    first = read_done(run.task(0))
    return {"format": 1, "fingerprint": plan.fingerprint, "widths": first["widths"],
            "fingerprints": first["fingerprints"],
            "layout": "tensors dnabert [n, widths.dnabert] then esm [n, widths.esm] and scores "
                      "[n, 2] per part; rows in each shard's input order, frame IDs in the "
                      "sidecars; "
                      "the input ordinals of a shard's sequences are in its manifest",
            "shards": shards}


def reduce_run(run_dir: str | os.PathLike, widths: Mapping[str, int] | None = None,
               fingerprints: Mapping[str, str] | None = None) -> ReduceResult:
    """Verify all shards, then write RUN/results/. Returns the bad shards instead when any
    shard fails; raises IntegrityError (writing nothing) if the accounting does not add up."""
    run = RunDir(run_dir)
    try:
        with _stop_signals(run):
            return _reduce(run, load_plan(run_dir), widths, fingerprints)
    except OSError as exc:
        raise ReduceIOError(run, exc) from exc


def _reduce(run: RunDir, plan: Plan, widths, fingerprints) -> ReduceResult:
    bad = verify_run(run, widths, fingerprints)
    if bad:
        for shard in bad:  # status shows them corrupt, resubmit reruns them
            mark_rejected(run.task(shard.index), shard.problems)
        return ReduceResult(False, str(run.root), bad)
    make_dirs(contained(run.root, run.results))
    with _alone(run):
        for stale in (run.summary, run.report, run.prediction_figure):  # derived from the merge
            stale.unlink(missing_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=".reduce-", dir=run.results))
        try:
            summary = _write_results(run, plan, scratch)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        write_provenance(run, "reduce", {"fingerprint": plan.fingerprint, "summary": summary})
    files = {name: str(getattr(run, name)) for name in
             ("prediction_results", "highestscore", "predictions", "features_index", "summary")}
    return ReduceResult(True, str(run.root), [], summary, files)


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
        for leftover in (*self.run.results.glob(".*.tmp"),
                         *provenance.parent.glob(f".{provenance.name}.*.tmp")):
            leftover.unlink(missing_ok=True)

    def __exit__(self, *exc):
        self.lock.release()
        return False


def _write_results(run: RunDir, plan: Plan, scratch: Path) -> dict:
    totals, paths = _Totals(), []
    with ChunkTable(scratch) as table:
        for shard in plan.shards:
            paths.append(scratch / f"shard-{index_name(shard.index)}.tsv")
            with open(paths[-1], "w", encoding="utf-8") as out:
                _extract_shard(run, load_manifest(run, shard.index), table, out, totals)
            fault_point("reduce.shard", shard.index)
        with atomic_text(run.prediction_results) as results, atomic_text(run.predictions) as preds:
            accounting = _check_identity(plan, _merge(paths, results, preds), totals)
            fault_point("reduce.merged")
        with atomic_text(run.highestscore) as out:
            chunk_rows = table.write(out)
    atomic_write(run.features_index, json.dumps(_features_index(run, plan), indent=1) + "\n")
    summary = _summary(plan, totals, accounting, chunk_rows)
    atomic_write(run.summary, json.dumps(summary, indent=1, sort_keys=True) + "\n")
    return summary


def _summary(plan: Plan, totals: _Totals, accounting: dict, chunk_rows: int) -> dict:
    counts = totals.counts
    return {**accounting, "skipped_by_reason": dict(sorted(totals.skipped.items())),
            "virus_sequences": counts["virus"], "others_sequences": counts["others"],
            "chunks": counts["chunks"], "scored_chunks": counts["scored_chunks"],
            "virus_chunks": counts["virus_chunks"], "highestscore_rows": chunk_rows,
            "kept_frames": counts["kept_frames"], "shards": len(plan.shards),
            "fingerprint": plan.fingerprint, "chunk_size": plan.chunk_size, "profile": plan.profile,
            "call_rule": CALL_RULE, "time": time.time()}

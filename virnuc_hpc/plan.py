"""Plan a run: read the inputs once, cost every sequence, bin-pack sequences into shards.

The inputs are a study (`samples.Study`): one file, several, or a sample sheet. Its sequences
are numbered by one global ordinal over the samples in order (sheet order, then file order),
and all of them are packed together: a shard may hold pieces of many samples, and a large
sample may span many shards. The cost of a sequence is its number of VirNucPro chunks, so
fixed-length reads cost the same and shards get equal counts; packing is longest-processing-
time greedy (packing.py), decided from the histogram of costs alone.

Memory does not grow with the study: the one read of the inputs streams each sequence's
length, chunks, bases and digest to `shards/.scan.tmp` and its ID to `shards/.all-ids.tmp`
(a dry run keeps the rows in a temporary file and no IDs), keeping only the histogram of
costs and per-sample totals; the packing is then decided, and a second pass over the scratch
files (not the inputs) routes each block of rows to its shard's files.

Per shard the planner writes `shard-NNNNN.npy` (global ordinal, length, chunks, digest and
sample index; input order), `shard-NNNNN.ids` (IDs, one per line) and
`shard-NNNNN.manifest.json` (their sha256), then `plan.json` last: per sample its name, file,
sha256, size, sequences, chunks and metadata; per shard its totals and how many sequences
and chunks of each sample it holds. A task re-reads only the sample files its shard needs,
in order (`iter_shard_records`), checking each sequence's ID, length and digest (8 bytes of
BLAKE2b of the sequence as the reader yields it), so an input changed after planning is
refused by every task that would read a changed sequence, without re-hashing any file per
task.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import shutil
import tempfile
from array import array
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import lru_cache, partial
from itertools import groupby, islice
from pathlib import Path
from typing import IO, Iterator, Mapping

import numpy as np

from . import __version__
from .errors import ConfigError, IntegrityError, UserError
from .fsio import atomic_write, fsync_dir, make_dirs, sha256_bytes, sha256_file
from .packing import Allocation, Assigner, allocate, assign_shards, imbalance
from .rundir import (RunDir, check_record_paths, claim_run_dir, contained, index_name,
                     write_provenance)
from .samples import Sample, Study, study_from_files
from .sequences.prepare import chunk_spans
from .sequences.reader import Record, iter_records
from .store import Expectation
from .throughput import esm_rate

FORMAT = 3  # 2: per-sequence digests; 3: samples (sample column, per-sample records)
CHUNK_SIZES = (300, 500)
DEFAULT_SEQUENCES_PER_SHARD = 10_000
FRAMES_PER_CHUNK = {300: 1.27, 500: 0.78}  # docs/workload.md, bacterial reads (upper figure)
SHARD_DTYPE = np.dtype([("ordinal", "<i8"), ("length", "<i8"), ("chunks", "<i8"),
                        ("digest", "<u8"), ("sample", "<i4")])
SCAN_DTYPE = np.dtype([("length", "<i8"), ("chunks", "<i8"), ("bases", "<i8"),
                       ("digest", "<u8")])
BLOCK = 200_000  # sequences buffered by the scan, and routed to the shards at a time
_BLAKE2B_8 = hashlib.blake2b(digest_size=8)
FSYNC_THREADS = 16
ESTIMATE_NOTE = ("estimate: {rate}; {frames} kept frames per {chunk}-bp chunk assumed "
                 "(docs/workload.md), DNABERT-S and I/O ignored")


@dataclass
class SamplePlan:
    """One sample of the study: its file and what the plan found in it."""

    name: str
    path: str
    sha256: str
    bytes: int
    sequences: int
    chunks: int
    bases: int
    tokens_est: int
    gpu_hours_est: float
    metadata: dict = field(default_factory=dict)


@dataclass
class ShardPlan:
    index: int
    sequences: int
    chunks: int
    bases: int
    tokens_est: int
    gpu_hours_est: float
    manifest: str | None = None
    manifest_sha256: str | None = None
    samples: list[list[int]] = field(default_factory=list)  # [sample, sequences, chunks]


@dataclass
class Plan:
    """What `plan` decided; `plan.json` is its JSON form."""

    fingerprint: str
    samples: list[SamplePlan]
    sheet: str | None
    chunk_size: int
    profile: str
    config: dict
    models: dict
    package_version: str
    sequences: int
    chunks: int
    bases: int
    imbalance: float
    estimate_note: str
    shards: list[ShardPlan] = field(default_factory=list)
    format: int = FORMAT

    @property
    def per_sample(self) -> bool:
        """Results per sample (a sheet or several files); one file keeps RUN/results/."""
        return self.sheet is not None or len(self.samples) > 1

    def sample_starts(self) -> np.ndarray:
        """The global ordinal where each sample starts, and the total at the end."""
        return np.concatenate([[0], np.cumsum([s.sequences for s in self.samples])]).astype(
            np.int64)

    @property
    def tokens_est(self) -> int:
        return sum(s.tokens_est for s in self.shards)

    @property
    def gpu_hours_est(self) -> float:
        return sum(s.gpu_hours_est for s in self.shards)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Plan:
        data = json.loads(text)
        data["samples"] = [SamplePlan(**s) for s in data["samples"]]
        data["shards"] = [ShardPlan(**s) for s in data["shards"]]
        return cls(**data)

    def table(self, max_rows: int = 40) -> str:
        """The dry-run table: the samples (when per sample), then one row per shard (each
        elided past `max_rows`) and the totals."""
        head = f"{'shard':>6} {'sequences':>11} {'chunks':>11} {'est_tokens':>13} {'est_GPU_h':>10}"
        rows = [_row(index_name(s.index), s.sequences, s.chunks, s.tokens_est, s.gpu_hours_est)
                for s in self.shards]
        total = _row("total", self.sequences, self.chunks, self.tokens_est, self.gpu_hours_est)
        shards = "\n".join([head, *_elide(rows, max_rows), total,
                            f"shards: {len(self.shards)}, "
                            f"imbalance (max/mean chunks): {self.imbalance:.4f}",
                            f"GPU hours: {self.estimate_note}"])
        return f"{self.samples_table(max_rows)}\n\n{shards}" if self.per_sample else shards

    def samples_table(self, max_rows: int = 40) -> str:
        width = max(6, *(len(s.name) for s in self.samples))
        head = f"{'sample':<{width}} {'sequences':>11} {'chunks':>11} {'est_GPU_h':>10}"
        rows = [f"{s.name:<{width}} {s.sequences:>11,} {s.chunks:>11,} {s.gpu_hours_est:>10.3f}"
                for s in self.samples]
        sheet = f" (from {self.sheet})" if self.sheet else ""
        return "\n".join([head, *_elide(rows, max_rows), f"samples: {len(self.samples)}{sheet}"])


def _row(name: str, sequences: int, chunks: int, tokens: int, hours: float) -> str:
    return f"{name:>6} {sequences:>11,} {chunks:>11,} {tokens:>13,} {hours:>10.3f}"


def _elide(rows: list[str], max_rows: int) -> list[str]:
    if len(rows) <= max_rows:
        return rows
    return rows[:max_rows // 2] + [f"{'...':>6}"] + rows[-(max_rows // 2):]


# --- reading ------------------------------------------------------------------------------

@lru_cache(maxsize=1 << 16)
def chunk_cost(length: int, chunk_size: int) -> tuple[int, int]:
    """(chunks, bases over all chunks) of a sequence: a function of its length only."""
    spans = chunk_spans(length, chunk_size)
    return len(spans), sum(end - start for start, end in spans)


def _digest_bytes(seq: str) -> bytes:
    digest = _BLAKE2B_8.copy()  # a copy costs less than a new hash object, per short read
    digest.update(seq.encode("ascii"))
    return digest.digest()


def sequence_digest(seq: str) -> int:
    """8 bytes of BLAKE2b of a sequence, as the unsigned integer the shard arrays hold."""
    return int.from_bytes(_digest_bytes(seq), "little")


@dataclass
class _Tally:
    """What the scan keeps: the histogram of costs, and per sample its totals."""

    costs: Counter = field(default_factory=Counter)
    samples: list[tuple[int, int, int]] = field(default_factory=list)  # sequences, chunks, bases


class _Rows:
    """Per-sequence rows of one sample, buffered and written to the scan file in blocks."""

    def __init__(self, out: IO[bytes], tally: _Tally):
        self.out, self.tally, self.totals = out, tally, [0, 0, 0]
        self._reset()

    def _reset(self) -> None:
        self.lengths, self.chunks, self.bases, self.digests = (array("q"), array("q"),
                                                               array("q"), bytearray())

    def add(self, seq: str, chunk_size: int) -> None:
        count, covered = chunk_cost(len(seq), chunk_size)
        self.lengths.append(len(seq))
        self.chunks.append(count)
        self.bases.append(covered)
        self.digests += _digest_bytes(seq)
        if len(self.lengths) >= BLOCK:
            self.flush()

    def flush(self) -> None:
        table = np.empty(len(self.lengths), SCAN_DTYPE)
        table["length"] = np.frombuffer(self.lengths, dtype=np.int64)
        table["chunks"] = np.frombuffer(self.chunks, dtype=np.int64)
        table["bases"] = np.frombuffer(self.bases, dtype=np.int64)
        table["digest"] = np.frombuffer(self.digests, dtype="<u8")
        self.out.write(table.tobytes())
        values, counts = np.unique(table["chunks"], return_counts=True)
        self.tally.costs.update(dict(zip(values.tolist(), counts.tolist())))
        self.totals = [self.totals[0] + len(table), self.totals[1] + int(table["chunks"].sum()),
                       self.totals[2] + int(table["bases"].sum())]
        self._reset()


def _scan_sample(sample: Sample, chunk_size: int, rows_out: IO[bytes], ids_out: IO[str] | None,
                 tally: _Tally) -> None:
    rows = _Rows(rows_out, tally)
    for record in iter_records(sample.path):
        rows.add(record.seq, chunk_size)
        if ids_out is not None:
            ids_out.write(record.id + "\n")
    rows.flush()
    tally.samples.append(tuple(rows.totals))


def _scan(study: Study, chunk_size: int, rows_out: IO[bytes],
          ids_out: IO[str] | None) -> tuple[_Tally, list[str]]:
    """One read of every input (hashed alongside): the tally, and each file's sha256."""
    tally = _Tally()
    with ThreadPoolExecutor(1) as pool:
        digests = [pool.submit(sha256_file, sample.path) for sample in study.samples]
        for sample in study.samples:
            _scan_sample(sample, chunk_size, rows_out, ids_out, tally)
        return tally, [digest.result() for digest in digests]


def _shard_count(n: int, shards: int | None, per_shard: int | None) -> int:
    if shards is not None and per_shard is not None:
        raise ConfigError("give either --shards or --sequences-per-shard, not both")
    for name, value in (("--shards", shards), ("--sequences-per-shard", per_shard)):
        if value is not None and value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value}")
    per_shard = per_shard or DEFAULT_SEQUENCES_PER_SHARD
    wanted = shards if shards is not None else math.ceil(n / per_shard)
    return max(1, min(wanted, n))


def _validate(chunk_size: int, profile: str) -> None:
    if chunk_size not in CHUNK_SIZES:
        choices = ", ".join(map(str, CHUNK_SIZES))
        raise ConfigError(f"chunk size {chunk_size} is not one of {choices}")
    if not profile:
        raise ConfigError("a model profile is required (e.g. 'real' or 'tiny')")


def _inputs_key(study: Study, digests: list[str]) -> str | list[dict]:
    """What the fingerprint knows of the inputs: one file's sha256 (as before samples), or
    every sample's name, sha256 and metadata."""
    if not study.per_sample:
        return digests[0]
    return [{"name": s.name, "sha256": d, "metadata": s.metadata}
            for s, d in zip(study.samples, digests)]


def fingerprint(inputs: str | list[dict], chunk_size: int, profile: str, config: Mapping,
                models: Mapping) -> str:
    """What the results depend on (not the sharding): the input (its sha256, or per sample
    name, sha256 and metadata), chunk size, profile and config, model identities and
    checksums, package version."""
    key = {"input_sha256": inputs} if isinstance(inputs, str) else {"samples": inputs}
    key.update({"chunk_size": chunk_size, "profile": profile, "config": dict(config),
                "models": dict(models), "package_version": __version__})
    return sha256_bytes(json.dumps(key, sort_keys=True, default=str).encode())


def study_fingerprint(inputs: str | os.PathLike | Study, chunk_size: int = 500,
                      profile: str = "tiny", config: Mapping | None = None,
                      model_identities: Mapping | None = None) -> str:
    """The fingerprint `plan_input` would record, from the files' sha256 alone (no parsing):
    whether a run dir holds a plan of these inputs and options."""
    study = _study(inputs)
    with ThreadPoolExecutor(4) as pool:
        digests = list(pool.map(sha256_file, [s.path for s in study.samples]))
    return fingerprint(_inputs_key(study, digests), chunk_size, profile, dict(config or {}),
                       dict(model_identities or {}))


def _study(inputs: str | os.PathLike | Study) -> Study:
    return inputs if isinstance(inputs, Study) else study_from_files([inputs])


def plan_input(inputs: str | os.PathLike | Study, run_dir: str | os.PathLike,
               shards: int | None = None, sequences_per_shard: int | None = None,
               chunk_size: int = 500, profile: str = "tiny", config: Mapping | None = None,
               model_identities: Mapping | None = None, dry_run: bool = False) -> Plan:
    """Read the inputs (a file, or a `Study`) once and plan the run in `run_dir` (nothing is
    written on a dry run)."""
    _validate(chunk_size, profile)
    study, run = _study(inputs), RunDir(run_dir)
    if not dry_run:
        _prepare_run_dir(run)
    try:
        plan = _plan(study, run, shards, sequences_per_shard, chunk_size, profile,
                     dict(config or {}), dict(model_identities or {}), dry_run)
        if not dry_run:
            atomic_write(run.plan, plan.to_json())
    except BaseException:
        if not dry_run:
            shutil.rmtree(run.shards, ignore_errors=True)
        raise
    if not dry_run:
        write_provenance(run, "plan", {"fingerprint": plan.fingerprint, "sheet": plan.sheet,
                                       "samples": [_provenance(s) for s in plan.samples]})
    return plan


def _provenance(sample: SamplePlan) -> dict:
    return {"name": sample.name, "path": sample.path, "sha256": sample.sha256}


def _plan(study: Study, run: RunDir, shards: int | None, per_shard: int | None,
          chunk_size: int, profile: str, config: dict, models: dict, dry_run: bool) -> Plan:
    with _scratch(run, dry_run) as (rows, ids):
        tally, digests = _scan(study, chunk_size, rows, ids)
        total = sum(n for n, _, _ in tally.samples)
        allocation = allocate(tally.costs, _shard_count(total, shards, per_shard))
        rows.seek(0)
        if ids is not None:
            ids.seek(0)
        routed = _route(run if not dry_run else None, rows, ids, total, allocation,
                        _starts(tally))
    plan = _make_plan(study, digests, chunk_size, profile, config, models, tally, allocation,
                      routed)
    if not dry_run:
        _write_manifests(run, plan)
    return plan


def _starts(tally: _Tally) -> np.ndarray:
    return np.concatenate([[0], np.cumsum([n for n, _, _ in tally.samples])]).astype(np.int64)


@contextmanager
def _scratch(run: RunDir, dry_run: bool) -> Iterator[tuple[IO[bytes], IO[str] | None]]:
    """The scan's files: in RUN/shards (removed when routed), or a temporary file for a dry
    run, which keeps no IDs."""
    if dry_run:
        with tempfile.TemporaryFile() as rows:
            yield rows, None
        return
    paths = (run.shards / ".scan.tmp", run.shards / ".all-ids.tmp")
    with open(paths[0], "w+b") as rows, open(paths[1], "w+", encoding="utf-8") as ids:
        yield rows, ids
    for path in paths:
        path.unlink()


# --- routing rows to the shards ---------------------------------------------------------

@dataclass
class _Routed:
    """Per shard its bases, and per (shard, sample) the sequences and chunks it holds."""

    bases: np.ndarray
    held: dict[tuple[int, int], list[int]] = field(default_factory=dict)

    def add(self, shard: np.ndarray, table: np.ndarray, bases: np.ndarray) -> None:
        self.bases += np.bincount(shard, bases, len(self.bases)).astype(np.int64)
        key = shard.astype(np.int64) << 32 | table["sample"].astype(np.int64)
        keys, inverse = np.unique(key, return_inverse=True)
        counts = np.bincount(inverse)
        chunks = np.bincount(inverse, table["chunks"]).astype(np.int64)
        for k, n, c in zip(keys.tolist(), counts.tolist(), chunks.tolist()):
            held = self.held.setdefault((k >> 32, k & 0xFFFFFFFF), [0, 0])
            held[0], held[1] = held[0] + n, held[1] + c


def _route(run: RunDir | None, rows: IO[bytes], ids: IO[str] | None, total: int,
           allocation: Allocation, starts: np.ndarray) -> _Routed:
    """Read the scan back a block at a time and send each row (and ID) to its shard's files
    (to none on a dry run); count what each shard holds."""
    assigner, routed = Assigner(allocation), _Routed(np.zeros(len(allocation.loads), np.int64))
    if run is not None:
        _start_arrays(run, allocation.sequences)
    for first in range(0, total, BLOCK):
        count = min(BLOCK, total - first)
        scanned = np.frombuffer(rows.read(count * SCAN_DTYPE.itemsize), SCAN_DTYPE)
        shard, table = assigner(scanned["chunks"]), _shard_rows(first, scanned, starts)
        routed.add(shard, table, scanned["bases"])
        if run is not None:
            _append(run, shard, table, list(islice(ids, len(table))))
    return routed


def _shard_rows(first: int, scanned: np.ndarray, starts: np.ndarray) -> np.ndarray:
    table = np.empty(len(scanned), SHARD_DTYPE)
    table["ordinal"] = np.arange(first, first + len(scanned))
    for name in ("length", "chunks", "digest"):
        table[name] = scanned[name]
    table["sample"] = np.searchsorted(starts, table["ordinal"], side="right") - 1
    return table


def _start_arrays(run: RunDir, sizes: np.ndarray) -> None:
    """Each shard's .npy with the header for its final size; rows are appended in order."""
    descr = np.lib.format.dtype_to_descr(SHARD_DTYPE)
    for index, size in enumerate(sizes.tolist()):
        with open(run.shard_arrays(index), "wb") as handle:
            np.lib.format.write_array_header_1_0(
                handle, {"descr": descr, "fortran_order": False, "shape": (size,)})
        run.shard_ids(index).touch()


def _append(run: RunDir, shard: np.ndarray, table: np.ndarray, ids: list[str]) -> None:
    order = np.argsort(shard, kind="stable")  # grouped by shard, input order inside each
    ranked = shard[order]
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
    for start, end in zip(starts.tolist(), np.r_[starts[1:], len(order)].tolist()):
        index, rows = int(ranked[start]), order[start:end]
        with open(run.shard_arrays(index), "ab") as out:
            out.write(table[rows].tobytes())
        with open(run.shard_ids(index), "a", encoding="utf-8") as out:
            out.writelines(ids[i] for i in rows.tolist())


# --- the plan -------------------------------------------------------------------------------

def _make_plan(study: Study, digests: list[str], chunk_size: int, profile: str, config: dict,
               models: dict, tally: _Tally, allocation: Allocation, routed: _Routed) -> Plan:
    frames, rate = FRAMES_PER_CHUNK[chunk_size], esm_rate(config.get("precision", "fp32"))
    estimate = partial(_estimate, frames=frames, residues_per_s=rate.residues_per_s)
    samples = [SamplePlan(s.name, str(s.path), d, s.path.stat().st_size, n, c, b,
                          *estimate(c, b), dict(s.metadata))
               for s, d, (n, c, b) in zip(study.samples, digests, tally.samples)]
    shard_plans = [ShardPlan(i, int(n), int(c), int(b), *estimate(int(c), int(b)))
                   for i, (n, c, b) in enumerate(zip(allocation.sequences, allocation.loads,
                                                     routed.bases))]
    for (shard, sample), (n, c) in sorted(routed.held.items()):
        shard_plans[shard].samples.append([sample, n, c])
    note = ESTIMATE_NOTE.format(rate=rate.describe(), frames=frames, chunk=chunk_size)
    return Plan(fingerprint(_inputs_key(study, digests), chunk_size, profile, config, models),
                samples, str(study.sheet) if study.sheet else None, chunk_size, profile,
                config, models, __version__, sum(s.sequences for s in samples),
                sum(s.chunks for s in samples), sum(s.bases for s in samples),
                imbalance(allocation.loads), note, shard_plans)


def _estimate(chunks: int, bases: int, frames: float, residues_per_s: float) -> tuple[int, float]:
    """(ESM tokens, GPU hours) of `chunks` chunks covering `bases` bases."""
    tokens = round(frames * (bases / 3 + 2 * chunks))
    return tokens, tokens / residues_per_s / 3600


def _prepare_run_dir(run: RunDir) -> None:
    if run.plan.exists():
        raise UserError(f"{run.root} already holds a plan ({run.plan}); "
                        "use a new --run-dir, or remove this one to re-plan")
    claim_run_dir(run)
    if run.shards.exists():
        shutil.rmtree(run.shards)  # left by a plan of ours that did not finish (no plan.json)
    make_dirs(run.shards)


def _write_manifests(run: RunDir, plan: Plan) -> None:
    """Shard files are written plainly, then fsynced together: until plan.json exists the
    shards directory is scratch (a crashed plan's is removed by the next one)."""
    for shard in plan.shards:
        _write_manifest(run, plan, shard)
    with ThreadPoolExecutor(FSYNC_THREADS) as pool:
        list(pool.map(_fsync, sorted(run.shards.iterdir())))
    fsync_dir(run.shards)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_manifest(run: RunDir, plan: Plan, shard: ShardPlan) -> None:
    ids_path, arrays_path = run.shard_ids(shard.index), run.shard_arrays(shard.index)
    manifest = {"format": FORMAT, "index": shard.index, "plan_fingerprint": plan.fingerprint,
                "sequences": shard.sequences, "chunks": shard.chunks, "bases": shard.bases,
                "arrays": {"file": arrays_path.name, "sha256": sha256_file(arrays_path)},
                "ids": {"file": ids_path.name, "sha256": sha256_file(ids_path)}}
    data = json.dumps(manifest, indent=1, sort_keys=True) + "\n"
    run.manifest(shard.index).write_text(data, encoding="utf-8")
    shard.manifest = run.relative(run.manifest(shard.index))
    shard.manifest_sha256 = sha256_bytes(data.encode())


# --- reading a plan back ------------------------------------------------------------------

def load_plan(run_dir: str | os.PathLike) -> Plan:
    run = RunDir(run_dir)
    try:
        text = run.plan.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{run.root} has no plan.json; run `virnuc-hpc plan INPUT --run-dir "
                        f"{run.root}` first") from None
    _check_format(run.plan, json.loads(text).get("format"))
    plan = Plan.from_json(text)
    for shard in plan.shards:  # the input may be anywhere; the run's own files may not
        if shard.manifest not in (None, run.relative(run.manifest(shard.index))):
            raise IntegrityError(f"{run.plan}: shard {shard.index} names {shard.manifest!r}, not "
                                 "its manifest in the run dir; refused; fix: re-plan the run")
    return plan


def _check_format(path: Path, found: int | None) -> None:
    if found != FORMAT:
        raise UserError(f"{path}: plan format {found}, this virnuc-hpc reads format {FORMAT} "
                        "(it was planned by another version); fix: plan the input again in a "
                        "new run dir (`virnuc-hpc plan INPUT --run-dir NEW`)")


@dataclass
class Manifest:
    """The sequences of one shard, in input order."""

    index: int
    ordinals: np.ndarray
    lengths: np.ndarray
    chunks: np.ndarray
    digests: np.ndarray
    samples: np.ndarray
    ids: list[str]
    plan_fingerprint: str

    def expectation(self, widths: Mapping[str, int] | None = None,
                    fingerprints: Mapping[str, str] | None = None) -> Expectation:
        return Expectation(self.ids, self.lengths.tolist(), self.chunks.tolist(), widths,
                           fingerprints)


def read_manifest_json(run_dir: str | os.PathLike, index: int) -> dict:
    """The small JSON part of a shard manifest (counts and checksums)."""
    return json.loads(RunDir(run_dir).manifest(index).read_text(encoding="utf-8"))


def load_manifest(run_dir: str | os.PathLike, index: int) -> Manifest:
    """A shard's manifest with its arrays and IDs, checked against their sha256."""
    run = RunDir(run_dir)
    for path in (run.manifest(index), run.shard_arrays(index), run.shard_ids(index)):
        contained(run.root, path)
    try:
        meta = read_manifest_json(run, index)
        arrays_bytes = run.shard_arrays(index).read_bytes()
        ids_bytes = run.shard_ids(index).read_bytes()
    except (OSError, ValueError) as exc:
        raise IntegrityError(f"shard {index}: manifest unreadable ({exc}); re-plan the run"
                             ) from None
    _check_format(run.manifest(index), meta.get("format"))
    _check_manifest_names(run, index, meta)
    if sha256_bytes(arrays_bytes) != meta["arrays"]["sha256"] or \
            sha256_bytes(ids_bytes) != meta["ids"]["sha256"]:
        raise IntegrityError(f"shard {index}: manifest files changed since planning; "
                             "re-plan the run")
    table = np.load(io.BytesIO(arrays_bytes), allow_pickle=False)
    ids = ids_bytes.decode("utf-8").splitlines()
    return Manifest(index, table["ordinal"], table["length"], table["chunks"], table["digest"],
                    table["sample"], ids, meta["plan_fingerprint"])


def _check_manifest_names(run: RunDir, index: int, meta: dict) -> None:
    """A manifest names its two files in shards/, nothing else (never `../../etc/passwd`)."""
    check_record_paths(meta, run.manifest(index), "re-plan the run")
    names = (meta.get("arrays", {}).get("file"), meta.get("ids", {}).get("file"))
    if names != (run.shard_arrays(index).name, run.shard_ids(index).name):
        raise IntegrityError(f"{run.manifest(index)}: names {names}, not shard {index}'s files "
                             "in the run dir; refused; fix: re-plan the run")


def iter_shard_records(run_dir: str | os.PathLike, index: int) -> Iterator[Record]:
    """The records of shard `index`, re-read from the planned sample files (only those it
    holds sequences of), in input order. Raises IntegrityError if a file no longer has the
    planned ID, length and sequence digest at one of those ordinals (or ends before them)."""
    plan, manifest = load_plan(run_dir), load_manifest(run_dir, index)
    starts = plan.sample_starts().tolist()
    wanted = zip(manifest.samples.tolist(), manifest.ordinals.tolist(), manifest.ids,
                 manifest.lengths.tolist(), manifest.digests.tolist())
    for sample, targets in groupby(wanted, key=lambda target: target[0]):
        yield from _sample_records(plan, sample, starts[sample], targets, index)


def _sample_records(plan: Plan, sample: int, start: int, targets: Iterator[tuple],
                    index: int) -> Iterator[Record]:
    source = plan.samples[sample]
    target = next(targets)
    for record in iter_records(source.path, check_duplicates=False):
        if start + record.ordinal != target[1]:
            continue
        _check_planned(plan, source, record, target)
        yield record
        target = next(targets, None)
        if target is None:
            return
    raise _changed(plan, source, f"it ends before record {target[1] - start + 1} of shard "
                                 f"{index}")


def _check_planned(plan: Plan, source: SamplePlan, record: Record, target: tuple) -> None:
    _, _, rid, length, digest = target
    where = f"record {record.ordinal + 1} ('{record.id}', line {record.line})"
    if (record.id, record.length) != (rid, length):
        raise _changed(plan, source, f"{where} is {record.length} bp, the plan has {rid!r} "
                                     f"({length} bp)")
    if sequence_digest(record.seq) != digest:
        raise _changed(plan, source, f"{where} has other bases than when it was planned "
                                     "(same ID and length)")


def _changed(plan: Plan, source: SamplePlan, what: str) -> IntegrityError:
    return IntegrityError(f"{source.path}: {what}: the input changed since planning; fix: "
                          f"restore the planned file (sha256 {source.sha256[:16]}...) or plan "
                          f"it again in a new run dir (`virnuc-hpc plan {_inputs_hint(plan)} "
                          "--run-dir NEW`)")


def _inputs_hint(plan: Plan) -> str:
    if plan.sheet:
        return f"--samplesheet {plan.sheet}"
    return " ".join(s.path for s in plan.samples[:3]) + (" ..." if len(plan.samples) > 3 else "")


__all__ = ["Plan", "SamplePlan", "ShardPlan", "Manifest", "plan_input", "load_plan",
           "load_manifest", "read_manifest_json", "iter_shard_records", "assign_shards",
           "imbalance", "fingerprint", "study_fingerprint", "sequence_digest"]

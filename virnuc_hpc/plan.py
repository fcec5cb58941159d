"""Plan a run: read the input once, cost every sequence, bin-pack sequences into shards.

The cost of a sequence is its number of VirNucPro chunks, so fixed-length reads cost the same
and shards get equal counts. Packing is longest-processing-time greedy: sequences in order of
decreasing cost, each to the least loaded shard; runs of equal cost are placed in one
vectorised "water-filling" step that gives the same loads as placing them one by one. The
most loaded shard is then within one sequence's cost of the least loaded one.

Per shard the planner writes `shard-NNNNN.npy` (ordinal, length, chunks, digest; input
order), `shard-NNNNN.ids` (IDs, one per line) and `shard-NNNNN.manifest.json` (their sha256),
then `plan.json` last. Memory stays a few numpy arrays of N numbers: IDs are streamed to disk,
never held as N Python strings. A task re-reads the input and keeps its ordinals
(`iter_shard_records`), checking each one's ID, length and digest (8 bytes of BLAKE2b of the
sequence as the reader yields it), so an input changed after planning is refused by every
task that would read a changed sequence, without re-hashing the whole file per task.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import shutil
from array import array
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import IO, Iterator, Mapping

import numpy as np

from . import __version__
from .errors import ConfigError, IntegrityError, UserError
from .fsio import atomic_write, fsync_dir, make_dirs, sha256_bytes, sha256_file
from .rundir import (RunDir, check_record_paths, claim_run_dir, contained, index_name,
                     write_provenance)
from .sequences.prepare import chunk_spans
from .sequences.reader import Record, iter_records
from .sequences.source import check_input
from .store import Expectation
from .throughput import esm_rate

FORMAT = 2  # 2: per-sequence digests in the shard arrays
CHUNK_SIZES = (300, 500)
DEFAULT_SEQUENCES_PER_SHARD = 10_000
FRAMES_PER_CHUNK = {300: 1.27, 500: 0.78}  # docs/workload.md, bacterial reads (upper figure)
SHARD_DTYPE = np.dtype([("ordinal", "<i8"), ("length", "<i8"), ("chunks", "<i8"),
                        ("digest", "<u8")])
ID_FLUSH_LINES = 200_000
_BLAKE2B_8 = hashlib.blake2b(digest_size=8)
FSYNC_THREADS = 16
ESTIMATE_NOTE = ("estimate: {rate}; {frames} kept frames per {chunk}-bp chunk assumed "
                 "(docs/workload.md), DNABERT-S and I/O ignored")


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


@dataclass
class Plan:
    """What `plan` decided; `plan.json` is its JSON form."""

    fingerprint: str
    input: dict
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
        data["shards"] = [ShardPlan(**s) for s in data["shards"]]
        return cls(**data)

    def table(self, max_rows: int = 40) -> str:
        """The dry-run table: one row per shard (elided past `max_rows`) and the totals."""
        head = f"{'shard':>6} {'sequences':>11} {'chunks':>11} {'est_tokens':>13} {'est_GPU_h':>10}"
        rows = [_row(index_name(s.index), s.sequences, s.chunks, s.tokens_est, s.gpu_hours_est)
                for s in self.shards]
        if len(rows) > max_rows:
            rows = rows[:max_rows // 2] + [f"{'...':>6}"] + rows[-(max_rows // 2):]
        total = _row("total", self.sequences, self.chunks, self.tokens_est, self.gpu_hours_est)
        return "\n".join([head, *rows, total,
                          f"shards: {len(self.shards)}, "
                          f"imbalance (max/mean chunks): {self.imbalance:.4f}",
                          f"GPU hours: {self.estimate_note}"])


def _row(name: str, sequences: int, chunks: int, tokens: int, hours: float) -> str:
    return f"{name:>6} {sequences:>11,} {chunks:>11,} {tokens:>13,} {hours:>10.3f}"


# --- packing ------------------------------------------------------------------------------

def _fill(loads: np.ndarray, cost: int, count: int) -> np.ndarray:
    """How many of `count` items of equal `cost` each shard gets when every item in turn goes
    to the least loaded shard (ties: lowest index)."""
    lo, hi = int(loads.min()), int(loads.min()) + (count - 1) * cost
    while lo < hi:  # smallest level T with at least `count` slots L_s + j*cost <= T
        mid = (lo + hi) // 2
        if _slots(loads, cost, mid).sum() >= count:
            hi = mid
        else:
            lo = mid + 1
    below = _slots(loads, cost, lo - 1)
    at_level = np.flatnonzero((loads <= lo) & ((lo - loads) % cost == 0))
    below[at_level[:count - int(below.sum())]] += 1
    return below


def _slots(loads: np.ndarray, cost: int, level: int) -> np.ndarray:
    return np.where(loads <= level, (level - loads) // cost + 1, 0)


def assign_shards(costs: np.ndarray, shards: int) -> np.ndarray:
    """Shard index (int32) per item: greedy LPT over integer `costs`. Zero-cost items are
    spread by count so that every shard gets its share of sequences."""
    costs = np.asarray(costs, dtype=np.int64)
    order = np.argsort(-costs, kind="stable")  # decreasing cost, input order among equals
    ranked = costs[order]
    starts = np.concatenate([[0], np.flatnonzero(ranked[1:] != ranked[:-1]) + 1])
    values, ends = ranked[starts].tolist(), np.append(starts[1:], costs.size).tolist()
    del ranked
    loads, counts = np.zeros(shards, np.int64), np.zeros(shards, np.int64)
    assign = np.empty(costs.size, np.int32)
    for cost, start, end in zip(values, starts.tolist(), ends):
        per_shard = _fill(counts, 1, end - start) if cost == 0 else _fill(loads, cost, end - start)
        assign[order[start:end]] = np.repeat(np.arange(shards, dtype=np.int32), per_shard)
        loads += per_shard * cost
        counts += per_shard
    return assign


def imbalance(loads: np.ndarray) -> float:
    """max/mean of shard loads (1.0 is perfect)."""
    mean = float(np.mean(loads)) if len(loads) else 0.0
    return float(np.max(loads)) / mean if mean > 0 else 1.0


# --- reading ------------------------------------------------------------------------------

@dataclass
class _Costs:
    lengths: np.ndarray
    chunks: np.ndarray
    bases: np.ndarray  # bases over all chunks (overlaps counted), the work the encoders see
    digests: np.ndarray  # `sequence_digest` of every sequence


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


def _scan(input_path: Path, chunk_size: int, ids_out: IO[str] | None) -> _Costs:
    lengths, chunks, bases, digests = array("q"), array("q"), array("q"), bytearray()
    for record in iter_records(input_path):
        length = len(record.seq)
        count, covered = chunk_cost(length, chunk_size)
        lengths.append(length)
        chunks.append(count)
        bases.append(covered)
        digests += _digest_bytes(record.seq)
        if ids_out is not None:
            ids_out.write(record.id + "\n")
    return _Costs(*(np.frombuffer(a, dtype=np.int64) for a in (lengths, chunks, bases)),
                  np.frombuffer(digests, dtype="<u8"))


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


def fingerprint(input_sha256: str, chunk_size: int, profile: str, config: Mapping,
                models: Mapping) -> str:
    """What the results depend on (not the sharding): input, chunk size, profile and config,
    model identities and checksums, package version."""
    key = {"input_sha256": input_sha256, "chunk_size": chunk_size, "profile": profile,
           "config": dict(config), "models": dict(models), "package_version": __version__}
    return sha256_bytes(json.dumps(key, sort_keys=True, default=str).encode())


def plan_input(input_path: str | os.PathLike, run_dir: str | os.PathLike, shards: int | None = None,
               sequences_per_shard: int | None = None, chunk_size: int = 500, profile: str = "tiny",
               config: Mapping | None = None, model_identities: Mapping | None = None,
               dry_run: bool = False) -> Plan:
    """Read `input_path` once and plan the run in `run_dir` (nothing is written on a dry run)."""
    _validate(chunk_size, profile)
    check_input(input_path)  # before resolving: a symbolic link loop or a pipe gets its message
    input_path, run = Path(input_path).resolve(), RunDir(run_dir)
    if not dry_run:
        _prepare_run_dir(run)
    try:
        with ThreadPoolExecutor(1) as pool:
            input_sha = pool.submit(sha256_file, input_path)
            costs = _scan_to(run, input_path, chunk_size, dry_run)
            digest = input_sha.result()
        n_shards = _shard_count(len(costs.lengths), shards, sequences_per_shard)
        assign = assign_shards(costs.chunks, n_shards)
        plan = _make_plan(input_path, digest, chunk_size, profile, dict(config or {}),
                          dict(model_identities or {}), costs, assign, n_shards)
        if not dry_run:
            _write_shards(run, plan, costs, assign)
            atomic_write(run.plan, plan.to_json())
    except BaseException:
        if not dry_run:
            shutil.rmtree(run.shards, ignore_errors=True)
        raise
    if not dry_run:
        write_provenance(run, "plan", {"fingerprint": plan.fingerprint, "input": plan.input})
    return plan


def _prepare_run_dir(run: RunDir) -> None:
    if run.plan.exists():
        raise UserError(f"{run.root} already holds a plan ({run.plan}); "
                        "use a new --run-dir, or remove this one to re-plan")
    claim_run_dir(run)
    if run.shards.exists():
        shutil.rmtree(run.shards)  # left by a plan of ours that did not finish (no plan.json)
    make_dirs(run.shards)


def _scan_to(run: RunDir, input_path: Path, chunk_size: int, dry_run: bool) -> _Costs:
    if dry_run:
        return _scan(input_path, chunk_size, None)
    with open(_all_ids(run), "w", encoding="utf-8") as ids_out:
        return _scan(input_path, chunk_size, ids_out)


def _all_ids(run: RunDir) -> Path:
    return run.shards / ".all-ids.tmp"


def _make_plan(input_path: Path, digest: str, chunk_size: int, profile: str, config: dict,
               models: dict, costs: _Costs, assign: np.ndarray, n_shards: int) -> Plan:
    per = {name: np.bincount(assign, getattr(costs, name), n_shards).astype(np.int64)
           for name in ("chunks", "bases")}
    counts = np.bincount(assign, minlength=n_shards)
    frames, rate = FRAMES_PER_CHUNK[chunk_size], esm_rate(config.get("precision", "fp32"))
    shard_plans = [_shard_plan(i, int(n), int(c), int(b), frames, rate.residues_per_s)
                   for i, (n, c, b) in enumerate(zip(counts, per["chunks"], per["bases"]))]
    source = {"path": str(input_path), "sha256": digest, "bytes": input_path.stat().st_size}
    note = ESTIMATE_NOTE.format(rate=rate.describe(), frames=frames, chunk=chunk_size)
    return Plan(fingerprint(digest, chunk_size, profile, config, models), source, chunk_size,
                profile, config, models, __version__, int(counts.sum()), int(costs.chunks.sum()),
                int(costs.bases.sum()), imbalance(per["chunks"]), note, shard_plans)


def _shard_plan(index: int, sequences: int, chunks: int, bases: int, frames: float,
                residues_per_s: float) -> ShardPlan:
    tokens = round(frames * (bases / 3 + 2 * chunks))
    return ShardPlan(index, sequences, chunks, bases, tokens, tokens / residues_per_s / 3600)


# --- writing the shards ------------------------------------------------------------------

def _write_shards(run: RunDir, plan: Plan, costs: _Costs, assign: np.ndarray) -> None:
    """Shard files are written plainly, then fsynced together: until plan.json exists the
    shards directory is scratch (a crashed plan's is removed by the next one)."""
    order = np.argsort(assign, kind="stable")  # grouped by shard, input order inside each
    bounds = np.concatenate([[0], np.cumsum(np.bincount(assign, minlength=len(plan.shards)))])
    for shard in plan.shards:
        ordinals = order[bounds[shard.index]:bounds[shard.index + 1]]
        table = np.empty(ordinals.size, SHARD_DTYPE)
        table["ordinal"] = ordinals
        table["length"], table["chunks"] = costs.lengths[ordinals], costs.chunks[ordinals]
        table["digest"] = costs.digests[ordinals]
        with open(run.shard_arrays(shard.index), "wb") as handle:
            np.save(handle, table, allow_pickle=False)
    del order
    _split_ids(run, assign)
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


def _split_ids(run: RunDir, assign: np.ndarray) -> None:
    """Stream the input-order ID file into one ID file per shard, with bounded buffers."""
    buffers: dict[int, list[str]] = {}
    with open(_all_ids(run), encoding="utf-8") as ids:
        for start in range(0, assign.size, ID_FLUSH_LINES):
            for shard, line in zip(assign[start:start + ID_FLUSH_LINES].tolist(), ids):
                buffers.setdefault(shard, []).append(line)
            _flush_ids(run, buffers)
    _all_ids(run).unlink()


def _flush_ids(run: RunDir, buffers: dict[int, list[str]]) -> None:
    for shard, lines in buffers.items():
        with open(run.shard_ids(shard), "a", encoding="utf-8") as out:
            out.writelines(lines)
    buffers.clear()


def _write_manifest(run: RunDir, plan: Plan, shard: ShardPlan) -> None:
    ids_path, arrays_path = run.shard_ids(shard.index), run.shard_arrays(shard.index)
    ids_path.touch()  # a shard can hold no sequence only when the input has none
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
        plan = Plan.from_json(run.plan.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{run.root} has no plan.json; run `virnuc-hpc plan INPUT --run-dir "
                        f"{run.root}` first") from None
    _check_format(run.plan, plan.format)
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
                    ids, meta["plan_fingerprint"])


def _check_manifest_names(run: RunDir, index: int, meta: dict) -> None:
    """A manifest names its two files in shards/, nothing else (never `../../etc/passwd`)."""
    check_record_paths(meta, run.manifest(index), "re-plan the run")
    names = (meta.get("arrays", {}).get("file"), meta.get("ids", {}).get("file"))
    if names != (run.shard_arrays(index).name, run.shard_ids(index).name):
        raise IntegrityError(f"{run.manifest(index)}: names {names}, not shard {index}'s files "
                             "in the run dir; refused; fix: re-plan the run")


def iter_shard_records(run_dir: str | os.PathLike, index: int) -> Iterator[Record]:
    """The records of shard `index`, re-read from the planned input, in input order. Raises
    IntegrityError if the input no longer has the planned ID, length and sequence digest at
    one of those ordinals (or ends before them)."""
    plan, manifest = load_plan(run_dir), load_manifest(run_dir, index)
    path = plan.input["path"]
    wanted = iter(zip(manifest.ordinals.tolist(), manifest.ids, manifest.lengths.tolist(),
                      manifest.digests.tolist()))
    target = next(wanted, None)
    if target is None:
        return
    for record in iter_records(path, check_duplicates=False):
        if record.ordinal != target[0]:
            continue
        _check_planned(plan, record, target)
        yield record
        target = next(wanted, None)
        if target is None:
            return
    raise _changed(plan, f"it ends before record {target[0] + 1} of shard {index}")


def _check_planned(plan: Plan, record: Record, target: tuple[int, str, int, int]) -> None:
    _, rid, length, digest = target
    where = f"record {record.ordinal + 1} ('{record.id}', line {record.line})"
    if (record.id, record.length) != (rid, length):
        raise _changed(plan, f"{where} is {record.length} bp, the plan has {rid!r} "
                             f"({length} bp)")
    if sequence_digest(record.seq) != digest:
        raise _changed(plan, f"{where} has other bases than when it was planned (same ID "
                             "and length)")


def _changed(plan: Plan, what: str) -> IntegrityError:
    path = plan.input["path"]
    return IntegrityError(f"{path}: {what}: the input changed since planning; fix: restore the "
                          f"planned file (sha256 {plan.input['sha256'][:16]}...) or plan it again "
                          f"in a new run dir (`virnuc-hpc plan {path} --run-dir NEW`)")


__all__ = ["Plan", "ShardPlan", "Manifest", "plan_input", "load_plan", "load_manifest",
           "read_manifest_json", "iter_shard_records", "assign_shards", "imbalance", "fingerprint",
           "sequence_digest"]

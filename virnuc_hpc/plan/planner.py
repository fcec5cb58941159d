"""`plan_input`: read the inputs once, size and cut the shards, write the run's plan.

The one read (scan.py) streams each sequence's row to `rows.bin`, its ID to `ids.txt` and its
bases to the run's sequence file (seqfile.py), keeping only per-sample totals; the shard
count follows from the work (sizing.py); one pass over `rows.bin` cuts it into contiguous
shards (route.py, packing.py); the manifests (manifest.py) and then plan.json are written last.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterator, Mapping

import numpy as np

from .. import __version__
from ..core.config import RunConfig
from .devices import Target
from ..core.errors import ConfigError, UserError
from ..core.fsio import atomic_write, make_dirs, sha256_bytes, sha256_file
from ..core.rundir import RunDir, claim_run_dir, write_provenance
from .throughput import esm_rate
from .manifest import write_manifests
from .packing import imbalance
from .planfile import Plan, SamplePlan, ShardPlan, fingerprint
from .duplicates import Duplicates, find, per_sample
from .route import BLOCK, Slice, feeds, route
from .samples import Study, study_from_files
from .scan import ROW_DTYPE, Outputs, Tally, scan
from .seqfile import LEVEL, SeqFileWriter
from .sizing import FRAMES_PER_CHUNK, Sizing, Work, describe, shard_count

CHUNK_SIZES = (300, 500)
ESTIMATE_NOTE = ("estimate: {rate}; {frames} kept frames per {chunk}-bp chunk assumed "
                 "(docs/workload.md), DNABERT-S and I/O ignored")
CPU = Target("this machine")


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


def study_fingerprint(inputs: str | os.PathLike | Study, chunk_size: int = 500,
                      profile: str = "tiny", config: RunConfig | Mapping | None = None,
                      model_identities: Mapping | None = None) -> str:
    """The fingerprint `plan_input` would record, from the files' sha256 alone (no parsing):
    whether a run dir holds a plan of these inputs and options."""
    study = _study(inputs)
    with ThreadPoolExecutor(4) as pool:
        digests = list(pool.map(sha256_file, [s.path for s in study.samples]))
    return fingerprint(_inputs_key(study, digests), chunk_size, profile,
                       run_config(config).as_dict(), dict(model_identities or {}))


def run_config(config: RunConfig | Mapping | None) -> RunConfig:
    """The run's options as their type (a mapping of non-default options is parsed)."""
    return config if isinstance(config, RunConfig) else RunConfig.from_dict(dict(config or {}))


def _study(inputs: str | os.PathLike | Study) -> Study:
    return inputs if isinstance(inputs, Study) else study_from_files([inputs])


def plan_input(inputs: str | os.PathLike | Study, run_dir: str | os.PathLike,
               shards: int | None = None, sequences_per_shard: int | None = None,
               chunk_size: int = 500, profile: str = "tiny",
               config: RunConfig | Mapping | None = None,
               model_identities: Mapping | None = None, dry_run: bool = False,
               target: Target = CPU, precision_note: str = "") -> Plan:
    """Read the inputs (a file, or a `Study`) once and plan the run in `run_dir` for `target`
    (where the tasks run: it sizes the shards unless `shards`/`sequences_per_shard` is
    given); nothing is written on a dry run."""
    _validate(chunk_size, profile)
    study, run = _study(inputs), RunDir(run_dir)
    if not dry_run:
        _prepare_run_dir(run)
    try:
        plan = _plan(study, run, Sizing(target, shards, sequences_per_shard), chunk_size,
                     profile, run_config(config), dict(model_identities or {}), dry_run)
        plan.precision_note = precision_note
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


def _plan(study: Study, run: RunDir, sizing: Sizing, chunk_size: int, profile: str,
          config: RunConfig, models: dict, dry_run: bool) -> Plan:
    rate = esm_rate(config.precision).residues_per_s
    with _outputs(run, dry_run) as out:
        tally, digests = scan(study, chunk_size, out)
        dups = _duplicates(run, out, tally, config.dedup)
        work = _work(out.rows, tally, dups)
        count = shard_count(tally.totals[0], Work.of(*work.totals, chunk_size, rate), sizing)
        slices = route(out.rows, tally.totals[0], work.totals[0], count, _starts(tally),
                       out.ids, dups)
        frames = out.seqfile.close() if out.seqfile is not None else None
    plan = _make_plan(study, digests, (chunk_size, profile, config, models), tally, slices,
                      work)
    for shard, fed in zip(plan.shards, feeds(dups, slices, _starts(tally))):
        shard.feeds = fed
    plan.sizing_note = describe(sizing)
    plan.batching = plan.config.batching()
    if not dry_run:
        plan.seqfile = _write_index(run, frames)
        plan.duplicates = _dup_record(run, dups)
        write_manifests(run, plan, slices, dups)
    return plan


@dataclass
class _Work:
    """Per sample what is left to compute once duplicates are set aside: (duplicates,
    chunks, bases)."""

    samples: list[tuple[int, int, int]]

    @property
    def totals(self) -> tuple[int, int]:
        return sum(s[1] for s in self.samples), sum(s[2] for s in self.samples)


def _duplicates(run: RunDir, out: Outputs, tally: Tally, dedup: bool) -> Duplicates:
    """The run's duplicates (none with `dedup: false`), in shards/ or in the dry run's
    scratch."""
    if not dedup:
        return Duplicates.none()
    if out.ids is None:   # a dry run
        paths = (out.scratch / "duplicates.bin", out.scratch / "representatives.bin")
    else:
        paths = (run.duplicates, run.representatives)
    return find(out.rows, tally.totals[0], out.scratch, *paths)


def _work(rows: IO[bytes], tally: Tally, dups: Duplicates) -> _Work:
    """One pass over the rows: each sample's chunks and bases that are not duplicates."""
    starts, total = _starts(tally), tally.totals[0]
    chunks, bases = np.zeros(len(starts) - 1, np.int64), np.zeros(len(starts) - 1, np.int64)
    rows.seek(0)
    for first in range(0, total, BLOCK):
        block = np.frombuffer(rows.read(min(BLOCK, total - first) * ROW_DTYPE.itemsize),
                              ROW_DTYPE)
        keep = ~dups.mask(first, len(block))
        sample = np.searchsorted(starts, np.arange(first, first + len(block)), "right") - 1
        chunks += np.bincount(sample[keep], block["chunks"][keep], len(chunks)).astype(np.int64)
        bases += np.bincount(sample[keep], block["bases"][keep], len(bases)).astype(np.int64)
    counts = per_sample(dups, starts)
    return _Work([(int(d), int(c), int(b)) for d, c, b in zip(counts, chunks, bases)])


def _dup_record(run: RunDir, dups: Duplicates) -> dict:
    files = {"pairs": run.duplicates, "representatives": run.representatives}
    if not all(p.exists() for p in files.values()):
        return {}
    return {"duplicates": len(dups), "representatives": len(dups.reps),
            **{key: {"file": path.name, "sha256": sha256_file(path)}
               for key, path in files.items()}}


def _starts(tally: Tally) -> np.ndarray:
    return np.concatenate([[0], np.cumsum([n for n, _, _ in tally.samples])]).astype(np.int64)


@contextmanager
def _outputs(run: RunDir, dry_run: bool) -> Iterator[Outputs]:
    """The scan's files: the run's rows, IDs and sequence file, or, for a dry run, rows in
    a temporary file and nothing else."""
    if dry_run:
        with tempfile.TemporaryDirectory() as scratch, \
                tempfile.TemporaryFile(dir=scratch) as rows:
            yield Outputs(rows, scratch=Path(scratch))
        return
    with open(run.rows, "w+b") as rows, open(run.ids, "w+b") as ids:
        seqfile = SeqFileWriter(run.seqfile)
        try:
            yield Outputs(rows, ids, seqfile, scratch=run.shards)
        except BaseException:
            seqfile.abort()
            raise


def _write_index(run: RunDir, frames: np.ndarray) -> dict:
    buffer = io.BytesIO()
    np.save(buffer, frames, allow_pickle=False)
    atomic_write(run.seqfile_index, buffer.getvalue())
    return {"file": run.seqfile.name, "index": run.seqfile_index.name,
            "index_sha256": sha256_bytes(buffer.getvalue()), "frames": len(frames),
            "bytes": run.seqfile.stat().st_size, "compression": f"zstd level {LEVEL}"}


def _make_plan(study: Study, digests: list[str], options: tuple, tally: Tally,
               slices: list[Slice], work: _Work) -> Plan:
    chunk_size, profile, config, models = options
    rate = esm_rate(config.precision)

    def cost(chunks: int, bases: int) -> tuple[int, float]:
        estimate = Work.of(chunks, bases, chunk_size, rate.residues_per_s)
        return estimate.tokens, estimate.hours

    samples = [SamplePlan(s.name, str(s.path), d, s.path.stat().st_size, n, c, b,
                          *cost(uc, ub), dict(s.metadata), dups)
               for s, d, (n, c, b), (dups, uc, ub) in zip(study.samples, digests,
                                                          tally.samples, work.samples)]
    shards = [ShardPlan(i, p.count, p.chunks, p.bases, *cost(p.chunks, p.bases),
                        samples=p.samples, first=p.first, duplicates=p.duplicates)
              for i, p in enumerate(slices)]
    note = ESTIMATE_NOTE.format(rate=rate.describe(), frames=FRAMES_PER_CHUNK[chunk_size],
                                chunk=chunk_size)
    return Plan(fingerprint(_inputs_key(study, digests), chunk_size, profile, config.as_dict(),
                            models),
                samples, str(study.sheet) if study.sheet else None, chunk_size, profile,
                config, models, __version__, sum(s.sequences for s in samples),
                sum(s.chunks for s in samples), sum(s.bases for s in samples),
                imbalance(np.array([p.chunks for p in slices])), note, shards)


def _prepare_run_dir(run: RunDir) -> None:
    if run.plan.exists():
        raise UserError(f"{run.root} already holds a plan ({run.plan}); "
                        "use a new --run-dir, or remove this one to re-plan")
    claim_run_dir(run)
    if run.shards.exists():
        shutil.rmtree(run.shards)  # left by a plan of ours that did not finish (no plan.json)
    make_dirs(run.shards)

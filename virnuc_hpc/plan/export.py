"""A shard's inputs as a folder of their own, so that its task can run where it sees only that
folder, a folder for its outputs and the model cache (a cloud batch job, a Kubernetes pod, a
workflow engine's work dir: nothing shared with the run dir).

    DEST/plan.json                          the run's plan, this shard only
    DEST/shards/shard-I.manifest.json       its manifest, its slices now whole files
    DEST/shards/rows.bin, ids.txt           its rows and IDs (the run's bytes, its slice)
    DEST/shards/duplicates.bin, representatives.bin     its slices of them (dedup runs)
    DEST/shards/sequences.zst, sequences.index.npy      the zstd frames holding its sequences

The folder is itself a run dir of one shard: `run-task DEST --index I --out TASK` reads it
with the code that reads a run dir, every slice checked against the sha256 the plan wrote, and
writes into TASK what it writes into RUN/tasks/I. `reduce RUN --tasks TASK ...` merges such
folders wherever they were written. `shards.tsv` beside the folders gives each task's
resources (one GPU, its time limit: the plan's estimate plus margin, its memory), for a
workflow engine to request.
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..core.errors import UserError
from ..core.fsio import atomic_write, fsync_dir, make_dirs, sha256_bytes
from ..core.rundir import MARKER, RunDir, index_name
from ..core.tables import TableRow
from .manifest import load_manifest, read_manifest_json, read_slice
from .planfile import Plan, ShardPlan, load_plan
from .seqfile import INDEX_DTYPE
from .shard_reads import frame_index
from .sizing import LIMIT_MARGIN, task_memory_mb

SLICES = ("rows", "ids", "duplicates", "representatives")


@dataclass(frozen=True)
class ShardJob(TableRow):
    """One line of shards.tsv: a shard's inputs folder and what its task asks a scheduler."""

    file_name = "shards.tsv"
    shard: int
    inputs: str           # its folder, relative to shards.tsv's
    sequences: int
    chunks: int
    minutes_est: float    # the plan's estimate: start-up plus its GPU work
    runtime_min: int      # a time limit: the estimate plus margin (plan/sizing.py)
    mem_mb: int
    gpus: int


def export_shards(run_dir: str | os.PathLike, dest: str | os.PathLike,
                  indices: list[int] | None = None) -> list[ShardJob]:
    """Each shard's inputs (every shard, or `indices`) as DEST/<index>/, and DEST/shards.tsv
    listing them; a folder exported before is replaced."""
    run, dest = RunDir(run_dir), Path(dest)
    plan = load_plan(run)
    chosen = range(len(plan.shards)) if indices is None else indices
    for index in chosen:
        if not 0 <= index < len(plan.shards):
            raise UserError(f"shard {index}: the run has shards 0 to {len(plan.shards) - 1}")
    make_dirs(dest)
    jobs = [export_shard(run, index, dest / index_name(index), plan) for index in chosen]
    atomic_write(dest / ShardJob.file_name, ShardJob.header() + "".join(j.line() for j in jobs))
    return jobs


def export_shard(run: RunDir, index: int, dest: Path, plan: Plan | None = None) -> ShardJob:
    """Shard `index`'s inputs as the folder `dest` (written aside, then renamed into place)."""
    plan = plan or load_plan(run)
    load_manifest(run, index)  # every slice checked before it is copied
    _refuse_foreign(dest)
    scratch = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    shutil.rmtree(scratch, ignore_errors=True)
    out = RunDir(scratch)
    make_dirs(out.shards)
    meta = read_manifest_json(run, index)
    for key in SLICES:
        if key in meta:
            data = read_slice(run, index, meta[key])
            (out.shards / meta[key]["file"]).write_bytes(data)
            meta[key] = {**meta[key], "offset": 0}
    manifest = json.dumps(meta, indent=1, sort_keys=True) + "\n"
    atomic_write(out.manifest(index), manifest)
    seqfile = _copy_frames(run, plan, out, meta["first"], meta["sequences"])
    shard = replace(plan.shards[index], manifest_sha256=sha256_bytes(manifest.encode()))
    atomic_write(out.plan, replace(plan, shards=[shard], seqfile=seqfile).to_json())
    atomic_write(out.marker, f"the inputs of shard {index} of {run.root}\n")
    fsync_dir(out.shards)
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(scratch, dest)
    return _job(plan, plan.shards[index], dest)


def _refuse_foreign(dest: Path) -> None:
    """Only an empty folder or an export is replaced: nothing of a user's is deleted."""
    if dest.is_dir() and any(dest.iterdir()) and not (dest / MARKER).is_file():
        raise UserError(f"{dest} holds files that are not a shard's inputs; nothing was "
                        "written: give an empty or new folder")
    if dest.exists() and not dest.is_dir():
        raise UserError(f"{dest} is a file; give a new folder")


def _copy_frames(run: RunDir, plan: Plan, out: RunDir, first: int, count: int) -> dict:
    """The frames of the run's sequence file that hold ordinals first..first+count-1, copied
    byte for byte, with their index re-based; the plan's record of the new file."""
    index = frame_index(run, plan)
    lo = int(np.searchsorted(index["first"], first, side="right")) - 1 if count else 0
    hi = int(np.searchsorted(index["first"], first + count - 1, side="right")) if count else 0
    frames = np.array(index[lo:hi], dtype=INDEX_DTYPE)
    with open(run.seqfile, "rb") as source, open(out.seqfile, "wb") as target:
        if len(frames):
            source.seek(int(frames["offset"][0]))
            end = int(frames["offset"][-1] + frames["size"][-1])
            shutil.copyfileobj(_Limited(source, end - int(frames["offset"][0])), target)
            frames["offset"] -= frames["offset"][0]
        os.fsync(target.fileno())
    buffer = io.BytesIO()
    np.save(buffer, frames, allow_pickle=False)
    atomic_write(out.seqfile_index, buffer.getvalue())
    return {**plan.seqfile, "index_sha256": sha256_bytes(buffer.getvalue()),
            "frames": len(frames), "bytes": out.seqfile.stat().st_size}


class _Limited(io.RawIOBase):
    """The next `size` bytes of a file, for copyfileobj."""

    def __init__(self, handle, size: int):
        self.handle, self.left = handle, size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.handle.read(min(len(buffer), self.left))
        buffer[:len(data)] = data
        self.left -= len(data)
        return len(data)


def _job(plan: Plan, shard: ShardPlan, dest: Path) -> ShardJob:
    minutes = shard.minutes_est
    return ShardJob(shard.index, dest.name, shard.sequences, shard.chunks, round(minutes, 3),
                    math.ceil(minutes / LIMIT_MARGIN), task_memory_mb(plan.profile), 1)


def read_jobs(path: str | os.PathLike) -> list[ShardJob]:
    """shards.tsv back, as written."""
    with open(path, encoding="utf-8") as handle:
        return list(ShardJob.read(handle))

"""A task's records, read from the run's own copy of the sequences (seqfile.py): only the
frames that hold its contiguous range of ordinals, each sequence checked against the digest
the plan computed from the input; duplicates (duplicates.py) are left to their
representatives. The user's files are never opened again."""

from __future__ import annotations

import io
import os
from itertools import islice
from typing import Iterator

import numpy as np

from ..core.errors import IntegrityError
from ..core.fsio import sha256_bytes
from ..core.rundir import RunDir
from ..sequences.reader import Record
from .manifest import Manifest, load_manifest
from .planfile import Plan, load_plan
from .scan import digests
from .seqfile import read_range

CHECK = 4096   # sequences checked against their digests at a time


def iter_shard_records(run_dir: str | os.PathLike, index: int) -> Iterator[Record]:
    """The records of shard `index`, in ordinal order; IntegrityError if the run's copy no
    longer holds the planned bases."""
    run = RunDir(run_dir)
    plan, manifest = load_plan(run), load_manifest(run, index)
    seqs = read_range(run.seqfile, frame_index(run, plan), manifest.first, len(manifest.ids))
    computed = manifest.computed.tolist()
    for start in range(0, len(manifest.ids), CHECK):
        batch = list(islice(seqs, CHECK))
        _check(run, manifest, start, batch)
        yield from (Record(manifest.ids[start + k], seq.decode("ascii"),
                           manifest.first + start + k, 0) for k, seq in enumerate(batch)
                    if computed[start + k])


def frame_index(run: RunDir, plan: Plan) -> np.ndarray:
    """The sequence file's frame index, checked against the plan's sha256 of it."""
    data = run.seqfile_index.read_bytes()
    if sha256_bytes(data) != plan.seqfile.get("index_sha256"):
        raise IntegrityError(f"{run.seqfile_index}: changed since planning; fix: plan the input "
                             "again in a new run dir")
    return np.load(io.BytesIO(data), allow_pickle=False)


def _check(run: RunDir, manifest: Manifest, start: int, batch: list[bytes]) -> None:
    planned = manifest.digests[start:start + CHECK]
    if len(batch) != len(planned):
        raise IntegrityError(f"{run.seqfile}: ends before ordinal {manifest.first + start}; fix: "
                             "plan the input again in a new run dir")
    bad = np.flatnonzero((digests(batch) != planned).any(axis=1))
    if bad.size:
        k = start + int(bad[0])
        raise IntegrityError(f"{run.seqfile}: sequence {manifest.ids[k]!r} (ordinal "
                             f"{manifest.first + k}) has other bases than were planned: the "
                             "run's copy of its input is damaged; fix: plan the input again "
                             "in a new run dir")

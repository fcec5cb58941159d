"""Shard manifests: per shard `shard-NNNNN.npy` (global ordinal, length, chunks, digest and
sample index; input order), `shard-NNNNN.ids` (IDs, one per line) and
`shard-NNNNN.manifest.json` (their sha256); written by `plan`, read back checked by tasks and
reduce."""

from __future__ import annotations

import io
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from ..errors import IntegrityError
from ..fsio import fsync_dir, sha256_bytes, sha256_file
from ..rundir import RunDir, check_record_paths, contained
from ..store import Expectation
from .record import FORMAT, Plan, ShardPlan, check_format

FSYNC_THREADS = 16


def write_manifests(run: RunDir, plan: Plan) -> None:
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
    check_format(run.manifest(index), meta.get("format"))
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

"""Every path of a run directory, in one place.

    RUN/plan.json                                   the plan (written last by `plan`)
    RUN/shards/shard-00000.manifest.json            one manifest per shard, with checksums of:
    RUN/shards/shard-00000.npy                      ordinal, length, chunks of its sequences
    RUN/shards/shard-00000.ids                      their IDs, one per line, input order
    RUN/tasks/00000/part-00000.safetensors          features and scores, K frames per part
    RUN/tasks/00000/part-00000.json                 its sidecar (sha256, rows, ids)
    RUN/tasks/00000/accounting.tsv                  one line per input sequence of the shard
    RUN/tasks/00000/DONE                            written last: part checksums and totals
    RUN/tasks/00000/heartbeat.json, FAILED, task.log
    RUN/tasks/00000/REJECTED                        reduce's verdict on this DONE (why refused)
    RUN/results/prediction_results.txt, prediction_results_highestscore.csv,
               predictions.tsv, features_index.json, summary.json
    RUN/provenance/<stage>.json                     who ran what, with which versions

Every path is derived from the run root and an index, never read from a file. Records that
name files (manifests, plan.json's shards, DONE, sidecars) must name them inside the run dir
(`check_record_paths`), and nothing is read or written through a symlink that leads out of
the run dir or task dir (`contained`, `TaskDir.holds`).
"""

from __future__ import annotations

import json
import os
import platform
import socket
import sys
import time
from pathlib import Path

from . import __version__
from .errors import IntegrityError
from .fsio import atomic_write

INDEX_WIDTH = 5


def index_name(index: int) -> str:
    """The zero-padded form of a shard or part index used in every file name."""
    return f"{index:0{INDEX_WIDTH}d}"


def parse_index(name: str) -> int:
    """Inverse of `index_name` for a bare name or a `<prefix>-<index>.<ext>` file name."""
    return int(name.split(".")[0].rsplit("-", 1)[-1])


PATH_KEYS = frozenset({"file", "path", "sidecar", "accounting", "manifest"})


def _inside(root: str | os.PathLike, path: str | os.PathLike) -> bool:
    real, base = os.path.realpath(path), os.path.realpath(root)
    return real == base or real.startswith(base.rstrip(os.sep) + os.sep)


def contained(root: str | os.PathLike, path: str | os.PathLike) -> Path:
    """`path`, once sure it lies inside `root` with symlinks resolved; else IntegrityError."""
    if not _inside(root, path):
        raise IntegrityError(f"{path}: leads to {os.path.realpath(path)}, outside the run dir "
                             f"{root} (a symlink?); refused: replace it by a real directory or "
                             "file inside the run dir, then rerun")
    return Path(path)


def _escapes(value) -> bool:
    parts = Path(str(value)).parts
    return not isinstance(value, str) or Path(value).is_absolute() or ".." in parts


def check_record_paths(record, where: str | os.PathLike, fix: str) -> None:
    """Refuse a record (JSON) with a file name that is absolute or climbs out (`..`)."""
    items = record.items() if isinstance(record, dict) else enumerate(
        record if isinstance(record, list) else [])
    for key, value in items:
        if key in PATH_KEYS and not isinstance(value, (dict, list)) and _escapes(value):
            raise IntegrityError(f"{where}: names {value!r}, outside the run dir; refused; "
                                 f"fix: {fix}")
        if isinstance(value, (dict, list)):
            check_record_paths(value, where, fix)


class TaskDir:
    """The files of one array task (one shard)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def part(self, k: int) -> Path:
        return self.root / f"part-{index_name(k)}.safetensors"

    def sidecar(self, k: int) -> Path:
        return self.root / f"part-{index_name(k)}.json"

    def part_indices(self) -> list[int]:
        """Indices of the part files present (verified or not), ascending."""
        return sorted(parse_index(p.name) for p in self.root.glob("part-*.safetensors"))

    @property
    def done(self) -> Path:
        return self.root / "DONE"

    @property
    def failed(self) -> Path:
        return self.root / "FAILED"

    @property
    def rejected(self) -> Path:
        return self.root / "REJECTED"

    @property
    def heartbeat(self) -> Path:
        return self.root / "heartbeat.json"

    @property
    def accounting(self) -> Path:
        return self.root / "accounting.tsv"

    @property
    def log(self) -> Path:
        return self.root / "task.log"

    def holds(self, path: str | os.PathLike) -> bool:
        """Whether `path` really is in this task dir (not a symlink leading elsewhere)."""
        return os.path.realpath(os.path.dirname(os.path.realpath(path))) == \
            os.path.realpath(self.root)

    def __fspath__(self) -> str:
        return str(self.root)

    def __repr__(self) -> str:
        return f"TaskDir({str(self.root)!r})"


class RunDir:
    """One run directory: the planner, the tasks, reduce and status all find files here."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    @property
    def plan(self) -> Path:
        return self.root / "plan.json"

    @property
    def shards(self) -> Path:
        return self.root / "shards"

    def manifest(self, index: int) -> Path:
        return self.shards / f"shard-{index_name(index)}.manifest.json"

    def shard_arrays(self, index: int) -> Path:
        return self.shards / f"shard-{index_name(index)}.npy"

    def shard_ids(self, index: int) -> Path:
        return self.shards / f"shard-{index_name(index)}.ids"

    @property
    def tasks(self) -> Path:
        return self.root / "tasks"

    def task(self, index: int) -> TaskDir:
        return TaskDir(self.tasks / index_name(index))

    @property
    def results(self) -> Path:
        return self.root / "results"

    @property
    def prediction_results(self) -> Path:
        return self.results / "prediction_results.txt"

    @property
    def highestscore(self) -> Path:
        return self.results / "prediction_results_highestscore.csv"

    @property
    def predictions(self) -> Path:
        return self.results / "predictions.tsv"

    @property
    def summary(self) -> Path:
        return self.results / "summary.json"

    @property
    def features_index(self) -> Path:
        return self.results / "features_index.json"

    def provenance(self, stage: str) -> Path:
        return self.root / "provenance" / f"{stage}.json"

    def relative(self, path: str | os.PathLike) -> str:
        """`path` relative to the run root, as stored in indexes (the run dir can move)."""
        return Path(path).relative_to(self.root).as_posix()

    def __fspath__(self) -> str:
        return str(self.root)

    def __repr__(self) -> str:
        return f"RunDir({str(self.root)!r})"


def write_provenance(run: RunDir, stage: str, details: dict) -> Path:
    """Record who ran `stage`, when, where and with which versions, plus `details`."""
    record = {
        "stage": stage,
        "time": time.time(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "argv": sys.argv,
        "python": platform.python_version(),
        "virnuc_hpc": __version__,
        **details,
    }
    path = run.provenance(stage)
    atomic_write(path, json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
    return path

"""Every path of a run directory, in one place.

    RUN/plan.json                                   the plan (written last by `plan`)
    RUN/shards/shard-00000.manifest.json            one manifest per shard, with checksums of:
    RUN/shards/shard-00000.npy                      ordinal, length, chunks, digest of its sequences
    RUN/shards/shard-00000.ids                      their IDs, one per line, input order
    RUN/tasks/00000/part-00000.safetensors          scores (features: --features), K frames a part
    RUN/tasks/00000/part-00000.json                 its sidecar (sha256, rows, ids)
    RUN/tasks/00000/accounting.tsv                  one line per input sequence of the shard
    RUN/tasks/00000/DONE                            written last: part checksums and totals
    RUN/tasks/00000/heartbeat.json, FAILED, task.log
    RUN/tasks/00000/REJECTED                        reduce's verdict on this DONE (why refused)
    RUN/results/prediction_results.txt, prediction_results_highestscore.csv,
               predictions.tsv, features_index.json, summary.json
    RUN/results/<sample>/prediction_results.txt ... a run of several samples: each sample's
               three files in its folder (none at the top), and RUN/results/samples.tsv
    RUN/results/report.html, prediction.png         the run report (derived from the above)
    RUN/results/versions.yml                        nf-core's versions.yml (tool, python, torch...)
    RUN/results/virnuc_hpc_*_mqc.json, virnuc_hpc_mqc_versions.yml   MultiQC custom content
    RUN/provenance/<stage>.json                     who ran what, with which versions
    RUN/.virnuc-run                                 marks the folder as a run (claim_run_dir)
    RUN/.driver.lock, RUN/.driver.json              the command driving the run (driver_lock)
    RUN/submit.json (and its lock)                  what was submitted, by which backend
    RUN/logs/<backend>/task-00000.log, reduce.log   a backend's logs of the tasks it ran
    RUN/<backend>/                                  a scheduler's own files (SLURM: submitit's,
                                                    and scheduler.json, its cached states)
    RUN/tasks/00000/.run-task.lock                  one process per shard at a time

A task folder may also lie outside the run dir (`task_dirs`: `run-task --out`, `reduce
--tasks`), and a shard's inputs may be exported as a one-shard run dir of their own
(plan/export.py) for a task that sees nothing else.

A run dir is only ever a folder that did not exist, was empty, or is already a run: nothing of
a user's is overwritten or deleted (`claim_run_dir`). One command at a time drives a run
(`predict`, `run`, `resubmit`, `submit`: `driver_lock`); a second is refused at once, naming
the first (pid, host).

Every path is derived from the run root and an index, never read from a file. Records that
name files (manifests, plan.json's shards, DONE, sidecars) must name them inside the run dir
(`check_record_paths`), and nothing is read or written through a symlink that leads out of
the run dir or task dir (`contained`, `TaskDir.holds`).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping

from filelock import FileLock, Timeout

from .. import __version__
from .errors import IntegrityError, UserError
from .fsio import atomic_write, make_dirs

log = logging.getLogger(__name__)
MARKER = ".virnuc-run"

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
    def lock(self) -> Path:
        """Held by the process running this shard (run-task)."""
        return self.root / ".run-task.lock"

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


class ResultFiles:
    """VirNucPro's two files and predictions.tsv, in RUN/results/ or RUN/results/<sample>/."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    @property
    def prediction_results(self) -> Path:
        return self.root / "prediction_results.txt"

    @property
    def highestscore(self) -> Path:
        return self.root / "prediction_results_highestscore.csv"

    @property
    def predictions(self) -> Path:
        return self.root / "predictions.tsv"

    def __iter__(self) -> Iterator[Path]:
        return iter((self.prediction_results, self.highestscore, self.predictions))


class RunDir:
    """One run directory: the planner, the tasks, reduce and status all find files here.

    `task_dirs` names task folders written elsewhere (a workflow engine's, a copy brought
    back from a machine that shared nothing with the run dir): shard index -> folder. Those
    shards are read and written there; every other shard in RUN/tasks/. A RunDir given as
    `root` keeps its task folders."""

    def __init__(self, root: str | os.PathLike, task_dirs: Mapping[int, str | os.PathLike]
                 | None = None):
        if task_dirs is None and isinstance(root, RunDir):
            task_dirs = root.task_dirs
        self.root = Path(root)
        self.task_dirs = {int(k): Path(v) for k, v in (task_dirs or {}).items()}

    @property
    def plan(self) -> Path:
        return self.root / "plan.json"

    @property
    def shards(self) -> Path:
        return self.root / "shards"

    def manifest(self, index: int) -> Path:
        return self.shards / f"shard-{index_name(index)}.manifest.json"

    @property
    def rows(self) -> Path:
        """Per planned sequence, in ordinal order: length, chunks, bases, digest, ID end."""
        return self.shards / "rows.bin"

    @property
    def ids(self) -> Path:
        """The planned sequences' IDs, one per line, in ordinal order."""
        return self.shards / "ids.txt"

    @property
    def seqfile(self) -> Path:
        """The planned sequences' bases, in zstd frames (plan/seqfile.py)."""
        return self.shards / "sequences.zst"

    @property
    def seqfile_index(self) -> Path:
        return self.shards / "sequences.index.npy"

    @property
    def duplicates(self) -> Path:
        """(ordinal, representative) of every duplicate read (plan/duplicates.py)."""
        return self.shards / "duplicates.bin"

    @property
    def representatives(self) -> Path:
        return self.shards / "representatives.bin"

    @property
    def marker(self) -> Path:
        return self.root / MARKER

    @property
    def driver(self) -> Path:
        return self.root / ".driver.json"

    @property
    def tasks(self) -> Path:
        return self.root / "tasks"

    def task(self, index: int) -> TaskDir:
        if index in self.task_dirs:
            return TaskDir(self.task_dirs[index])
        return TaskDir(self.tasks / index_name(index))

    def checked_task(self, index: int) -> TaskDir:
        """The shard's task folder: one of RUN/tasks/ must really lie inside the run dir (not
        through a symlink out of it); a folder given in `task_dirs` is taken as given."""
        task = self.task(index)
        if index not in self.task_dirs:
            contained(self.root, task.root)
        return task

    @property
    def results(self) -> Path:
        return self.root / "results"

    def outputs(self, sample: str | None = None) -> ResultFiles:
        """The per-row files of the run (`sample` None) or of one of its samples."""
        return ResultFiles(self.results if sample is None else self.results / sample)

    @property
    def prediction_results(self) -> Path:
        return self.outputs().prediction_results

    @property
    def highestscore(self) -> Path:
        return self.outputs().highestscore

    @property
    def predictions(self) -> Path:
        return self.outputs().predictions

    @property
    def samples_table(self) -> Path:
        return self.results / "samples.tsv"

    @property
    def summary(self) -> Path:
        return self.results / "summary.json"

    @property
    def features_index(self) -> Path:
        return self.results / "features_index.json"

    @property
    def report(self) -> Path:
        return self.results / "report.html"

    @property
    def prediction_figure(self) -> Path:
        return self.results / "prediction.png"

    @property
    def versions(self) -> Path:
        return self.results / "versions.yml"

    def multiqc(self, part: str) -> Path:
        """A MultiQC custom-content file (`*_mqc.json`: any MultiQC finds it)."""
        return self.results / f"virnuc_hpc_{part}_mqc.json"

    @property
    def multiqc_versions(self) -> Path:
        """versions.yml again, named for MultiQC's software versions (`*_mqc_versions.yml`)."""
        return self.results / "virnuc_hpc_mqc_versions.yml"

    def provenance(self, stage: str) -> Path:
        return self.root / "provenance" / f"{stage}.json"

    @property
    def submit_record(self) -> Path:
        """What was submitted for the run, by which backend (executors/base.py)."""
        return self.root / "submit.json"

    @property
    def submit_lock(self) -> Path:
        return self.root / ".submit.json.lock"

    def backend_log(self, backend: str, name: str) -> Path:
        """A backend's log of one of its tasks (`task-I.log`) or of reduce."""
        return self.root / "logs" / backend / name

    def backend_files(self, backend: str) -> Path:
        """A scheduler's own folder (SLURM: submitit's job folders, the cached states)."""
        return self.root / backend

    def relative(self, path: str | os.PathLike) -> str:
        """`path` relative to the run root, as stored in indexes (the run dir can move); a
        task folder given in `task_dirs` may lie beside it (`../tasks/00000/...`)."""
        try:
            return Path(path).relative_to(self.root).as_posix()
        except ValueError:
            return Path(os.path.relpath(os.path.abspath(path), os.path.abspath(self.root))
                        ).as_posix()

    def __fspath__(self) -> str:
        return str(self.root)

    def __str__(self) -> str:
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


def is_run(run: RunDir) -> bool:
    """The folder was made by virnuc-hpc (its marker, or a plan from before markers)."""
    return run.marker.is_file() or run.plan.is_file()


def claim_run_dir(run: RunDir) -> None:
    """Make `run` a run dir: create it, or take an empty folder or an existing run. A file, or
    a folder holding anything else, is refused before anything is written."""
    if run.root.exists() and not run.root.is_dir():
        raise UserError(f"{run.root} is a file, not a folder; give a new folder for the run")
    if run.root.is_dir() and not is_run(run) and any(run.root.iterdir()):
        names = ", ".join(sorted(p.name for p in run.root.iterdir())[:3])
        raise UserError(f"{run.root} is not empty and is not a virnuc-hpc run (it holds "
                        f"{names}, ...); nothing was written: give a new folder for the run")
    make_dirs(run.root)
    if not run.marker.exists():
        atomic_write(run.marker, f"virnuc-hpc run dir (virnuc_hpc {__version__})\n")


@contextmanager
def driver_lock(run: RunDir, command: str) -> Iterator[None]:
    """Hold the run's driver lock while `command` drives it; refuse at once if another
    command holds it, naming it. Where file locks do not work, warn and go on."""
    lock = FileLock(str(run.root / ".driver.lock"), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise UserError(_busy_message(run)) from None
    except OSError as exc:
        log.warning("no driver lock on %s (%s): going on without it", run.root, exc)
        yield
        return
    try:
        atomic_write(run.driver, json.dumps({"command": command, "pid": os.getpid(),
                                             "host": socket.gethostname(),
                                             "time": time.time()}) + "\n")
        yield
    finally:
        lock.release()


@contextmanager
def driving(run: RunDir, command: str) -> Iterator[None]:
    """Claim `run` (refusing a folder of the user's), hold its driver lock for `command`; a
    folder this call created is removed again if no plan came of it (bad input, refusal)."""
    created = not run.root.exists()
    claim_run_dir(run)
    try:
        with driver_lock(run, command):
            yield
    except BaseException:
        if created and not run.plan.exists():
            shutil.rmtree(run.root, ignore_errors=True)
        raise


def _busy_message(run: RunDir) -> str:
    try:
        other = json.loads(run.driver.read_text())
        who = f"{other['command']} (pid {other['pid']}, host {other['host']})"
    except (OSError, ValueError, KeyError):
        who = "virnuc-hpc command"
    return (f"another {who} is running on this run dir {run.root}; wait for it "
            f"(virnuc-hpc status {run.root} --watch) or give another folder")

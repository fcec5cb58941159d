"""One array task (`run-task RUN --index I`): its shard through translate, both encoders and
the classifier (frames.py), written in atomic checksummed parts; idempotent and resumable.

Order of work: verified DONE -> nothing to do. Otherwise the models are pre-warmed and loaded
once; the shard's records are streamed from the input and prepared (cheap, so a resumed task
simply re-derives its frames); frames already in complete verified parts are skipped; each
further part of `part_rows` frames is embedded, classified and published; the per-sequence
accounting and then DONE are written last. The encoders never wait for the CPU: while they
run part k, a producer thread reads, prepares and tokenizes part k+1 and a writer thread
publishes part k-1 (`prefetch.py`: bounded queues; the bytes written do not change, and
`VIRNUC_HPC_PREFETCH=0` runs it all in one thread). Any failure writes FAILED with its
reason; an I/O error (a full disk, EIO, a read-only run dir) ends as one line naming the
shard, the file and the command that reruns it (`TaskIOError`, exit 1).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from contextlib import contextmanager
from dataclasses import dataclass, replace
from itertools import islice
from typing import Iterator

import torch
from filelock import FileLock, Timeout

from .. import plan as planning
from ..plan.devices import supports
from ..core.errors import IntegrityError, UserError
from ..core.faults import fault_point
from ..core.fsio import make_dirs
from ..models import LoadedModels, resolve_profile
from .prefetch import Ahead, Behind
from .frames import FramePipeline, TokenizedPart
from .options import TaskOptions, task_options

__all__ = ["TaskOptions", "task_options"]
from .progress import Progress
from ..core.rundir import RunDir, TaskDir
from ..sequences import Frame, Prepared, prepare
from ..parts import (AccountingWriter, PartWriter, mark_failed, read_done, read_rejection,
                    verify_task)

log = logging.getLogger(__name__)

class StopRequested(UserError):
    """SIGTERM or SIGUSR2 (SLURM's time-limit warning): the current part was finished and
    published, then the task stopped; a rerun resumes after it."""

    exit_code = 75  # EX_TEMPFAIL: try again


class TaskIOError(UserError):
    """The file system failed the task (ENOSPC, EIO, read-only...): one line, the rerun."""

    exit_code = 1

    def __init__(self, run: RunDir, index: int, exc: OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        super().__init__(f"shard {index}: {exc.strerror or exc}{where}; fix the file system "
                         f"(space, permissions), then rerun: {_rerun(run, index)}")


def _rerun(run: RunDir, index: int) -> str:
    if index in run.task_dirs:
        return f"`virnuc-hpc run-task {run.root} --index {index} --out {run.task(index).root}`"
    return f"`virnuc-hpc run-task {run.root} --index {index}` (or `virnuc-hpc resubmit " \
        f"{run.root} --indices {index}`)"


@dataclass(frozen=True)
class TaskResult:
    index: int
    status: str  # "done" (now) or "already-done"
    rows: int
    sequences: int


def run_task(run_dir, index: int, options: TaskOptions | None = None,
             out: str | os.PathLike | None = None) -> TaskResult:
    """Shard `index` of the run (or of a shard's exported inputs, plan/export.py) into its
    task folder: RUN/tasks/I, or `out` (a folder anywhere; the run dir is then only read)."""
    run = RunDir(run_dir, None if out is None else {index: out})
    try:
        return _run_task(run, index, options or TaskOptions())
    except OSError as exc:
        raise TaskIOError(run, index, exc) from exc


def _run_task(run: RunDir, index: int, options: TaskOptions) -> TaskResult:
    plan = planning.load_plan(run.root)
    manifest = planning.load_manifest(run.root, index)
    expectation = replace(manifest.expectation(fingerprints=plan.models or None),
                          features=options.features)  # a DONE stored otherwise is redone
    task = run.checked_task(index)  # never written through a symlink out of the run dir
    if _verified_done(task, expectation):
        log.info("shard %d is already done and verified: nothing to do", index)
        _sweep_if_alone(task)
        done = read_done(task.root)
        return TaskResult(index, "already-done", done["rows"], done["sequences"])
    with _exclusive(task, index) as alone:
        try:
            if alone:
                _sweep_temp_files(task)
            check_device(options, index)
            return _compute(run, plan, index, options)
        except BaseException as exc:
            reason = TaskIOError(run, index, exc) if isinstance(exc, OSError) else exc
            _mark_failed(task, f"{type(exc).__name__}: {reason}")
            raise


class DeviceError(UserError):
    """The task's GPU cannot compute at the run's precision."""


def check_device(options: TaskOptions, index: int) -> None:
    """One precision per run: a GPU that cannot run the planned one is refused before any
    model is loaded (a CPU runs every precision)."""
    if options.device != "cuda":
        return
    capability = tuple(torch.cuda.get_device_capability())
    if supports(options.precision, capability):
        return
    name = torch.cuda.get_device_name()
    raise DeviceError(f"shard {index}: this run computes at {options.precision} (settled at "
                      f"plan), which {name} (compute capability {capability[0]}."
                      f"{capability[1]}) cannot run; fix: run the task on a GPU of compute "
                      "capability 8.0 or newer (another --partition, or a --constraint), or "
                      "plan the input again in a new run dir with --precision fp16")


def _mark_failed(task, reason: str) -> None:
    """FAILED, unless the file system refuses that too (then the exit code and log tell)."""
    try:
        mark_failed(task.root, reason)
    except OSError as exc:
        log.warning("could not write %s: %s", task.failed, exc)


def _sweep_temp_files(task) -> None:
    """Remove temp files left by a killed writer (only while holding the task's lock)."""
    for path in task.root.glob(".*.tmp"):
        path.unlink(missing_ok=True)


def _sweep_if_alone(task) -> None:
    """A task killed after DONE (writing its last heartbeat) leaves that temp file: it is
    swept when no other process holds the shard (never a wait, never an error)."""
    lock = FileLock(task.lock, timeout=0)
    try:
        lock.acquire()
    except (Timeout, OSError):
        return
    try:
        _sweep_temp_files(task)
    finally:
        lock.release()


def _verified_done(task, expectation) -> bool:
    """DONE present, verified, and not refused by reduce."""
    try:
        done = read_done(task.root)
    except IntegrityError:
        return False
    return done is not None and read_rejection(task.root) is None and \
        not verify_task(task.root, expectation)


@contextmanager
def _exclusive(task: TaskDir, index: int):
    """One process per shard at a time. This only saves a second process the work: results
    never depend on it (parts are verified by content; on some parallel file systems flock
    excludes nobody, on others it fails, and `VIRNUC_HPC_TASK_LOCK=0` turns it off)."""
    make_dirs(task.root)
    lock = FileLock(task.lock, timeout=0)
    try:
        if os.environ.get("VIRNUC_HPC_TASK_LOCK", "1") != "0":
            lock.acquire()
    except Timeout:
        raise UserError(f"shard {index} is being run by another process right now; wait for it "
                        "(`virnuc-hpc status`) instead of running it twice") from None
    except OSError as exc:
        log.warning("no lock on %s (%s): going on without it", task.root, exc)
    try:
        yield lock.is_locked
    finally:
        lock.release()


def _compute(run: RunDir, plan, index: int, options: TaskOptions) -> TaskResult:
    task = run.task(index)
    with _stop_signals() as stop, \
            Progress(task.root, interval=options.heartbeat_s, device=options.device) as progress:
        total = sum(len(p.frames) for p in _prepared(run, plan, index))  # cheap next to the GPU
        progress.set_phase("loading models", total=total)
        with LoadedModels(resolve_profile(plan.profile, plan.chunk_size),
                          device=options.device, precision=options.precision) as models:
            pipeline = FramePipeline(models, options, on_rows=progress.advance)
            _check_models(plan, models.fingerprints)
            fault_point("models.loaded")
            writer = PartWriter(task.root, widths=pipeline.widths,
                                fingerprints=models.fingerprints, features=options.features)
            log.info("shard %d: %d kept frames, resuming after %d", index, total,
                     writer.rows_done)
            progress.set_phase("embedding", done=writer.rows_done)
            with AccountingWriter(task.root) as accounting:  # published after the last part
                _write_parts(run, plan, index, options, pipeline, writer, accounting, stop)
                fault_point("task.parts_done")
        writer.write_done({"skipped": accounting.skipped}, shard=index, plan=plan.fingerprint,
                          started=progress.started_wall, gpu=progress.gpu,
                          rate=round(progress.rate, 3), embedded=pipeline.embedded)
    return TaskResult(index, "done", writer.rows_done, accounting.sequences)


def _write_parts(run: RunDir, plan, index: int, options: TaskOptions, pipeline: FramePipeline,
                 writer: PartWriter, accounting: AccountingWriter,
                 stop: threading.Event) -> None:
    """Embed, classify and publish every part after the resume point. The encoders run part
    k in this thread while `Ahead` tokenizes part k+1 and `Behind` publishes part k-1, each
    at most `options.prefetch` parts away, so the encoders never wait for the CPU. On
    SIGTERM/SIGUSR2 no further part starts, every computed part is published, then the task
    stops (before the first part when the signal came during start-up)."""
    frames = _frames(_prepared(run, plan, index), accounting)
    parts = _tokenized(_parts(frames, writer.rows_done, options.part_rows), pipeline,
                       writer.next_part)
    publish = lambda computed: writer.write_part(writer.next_part, *computed)
    with Ahead(parts, options.prefetch) as ahead, Behind(publish, options.prefetch) as behind:
        for part in ahead:
            if stop.is_set():
                break
            behind.submit((part.ids, *pipeline.features(part)))
        behind.finish()  # DONE comes after every part, so after this
    _check_stop(stop, run, index, writer)


def _check_stop(stop: threading.Event, run: RunDir, index: int, writer: PartWriter) -> None:
    if stop.is_set():
        after = f"after part {writer.next_part - 1}" if writer.next_part else "before a part"
        raise StopRequested(f"shard {index}: stopped by signal {after}; a rerun resumes from "
                            f"there: {_rerun(run, index)}")


@contextmanager
def _stop_signals():
    """SIGTERM/SIGUSR2 set a flag that the part loop checks, instead of killing mid-part."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {sig: signal.signal(sig, lambda *_: stop.set())
                for sig in (signal.SIGTERM, signal.SIGUSR2)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _check_models(plan, fingerprints: dict[str, str]) -> None:
    if plan.models and plan.models != fingerprints:
        raise IntegrityError(f"the models in the cache ({fingerprints}) are not the ones this run "
                             f"was planned with ({plan.models}); restore them (`virnuc-hpc models "
                             "fetch --repair`) or plan a new run")


def _prepared(run: RunDir, plan, index: int) -> Iterator[Prepared]:
    return prepare(planning.iter_shard_records(run.root, index), plan.chunk_size)


def _frames(prepared: Iterator[Prepared], accounting: AccountingWriter) -> Iterator[Frame]:
    """Every kept frame in order, recording each sequence's accounting as it passes."""
    for item in prepared:
        accounting.add(item.accounting())
        yield from item.frames


def _parts(frames: Iterator[Frame], start: int, size: int) -> Iterator[list[Frame]]:
    """Parts of `size` frames after the first `start` (already in verified parts). Parts
    always start at multiples of `size`, so a resumed task writes the same bytes."""
    rest = islice(frames, start, None)
    while part := list(islice(rest, size)):
        yield part


def _tokenized(parts: Iterator[list[Frame]], pipeline: FramePipeline,
               first: int) -> Iterator["TokenizedPart"]:
    """Each part tokenized for both encoders: the CPU work done ahead of them (in the
    producer thread), numbered from part `first` for the `prefetch.part` fault point."""
    for k, part in enumerate(parts, first):
        tokenized = pipeline.tokenize(part)
        fault_point("prefetch.part", k)
        yield tokenized

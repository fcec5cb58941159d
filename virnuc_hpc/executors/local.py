"""Run array tasks on this machine: K subprocesses at a time, one GPU slot each.

Each index is its own `subprocess.Popen` (own process group, own log file); no multiprocessing
pool or queue crosses a process boundary, so a crashed task cannot wedge the others. A thread in
this process only starts processes and reaps exit codes. Ctrl-C (or SIGTERM) while waiting
terminates every child's process group, then kills what is left after a grace period.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import subprocess
import threading
import time
from collections import deque
from pathlib import Path
from typing import IO, Sequence

from ..core.fsio import make_dirs
from ..core.rundir import RunDir
from ..plan.devices import local_target
from .base import (COMPLETED, FAILED, PENDING, RUNNING, Backend, Monitor, Outcome, Submission,
                   TaskArgv, TaskState, append_record)

log = logging.getLogger(__name__)

HEARTBEAT_ENV = "VIRNUC_HPC_HEARTBEAT_S"
LOCAL_HEARTBEAT_S = 1.0
REFRESH_S = 0.5


def detect_gpus() -> list[str]:
    """GPU ids this process may use: CUDA_VISIBLE_DEVICES if set, else torch's device count."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [g.strip() for g in visible.split(",") if g.strip() and g.strip() != "-1"]
    try:
        import torch
    except ImportError:
        return []
    return [str(i) for i in range(torch.cuda.device_count())]


def describe_exit(code: int | None) -> str:
    if code is None:
        return "not started"
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


class _Child:
    """One running command with its log file and GPU slot."""

    def __init__(self, argv: list[str], log_path: Path, env: dict, slot: int | None,
                 gpu: str = "cpu"):
        make_dirs(log_path.parent)
        self.log: IO[bytes] = open(log_path, "ab")
        self.log.write(f"# {time.strftime('%Y-%m-%dT%H:%M:%S')} {shlex.join(argv)}\n".encode())
        self.log.flush()
        self.slot, self.gpu = slot, gpu
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def poll(self) -> int | None:
        code = self.proc.poll()
        if code is not None:
            self.log.close()
        return code

    def signal(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass


class _Batch(threading.Thread):
    """Starts pending indices as slots free up, records exit codes, then runs reduce."""

    def __init__(self, executor: "LocalExecutor", indices: list[int], task_argv: TaskArgv,
                 reduce_argv: list[str] | None, logs: dict[int, Path], reduce_log: Path):
        super().__init__(daemon=True, name="virnuc-local-executor")
        self.ex, self.task_argv, self.reduce_argv = executor, task_argv, reduce_argv
        self.logs, self.reduce_log = logs, reduce_log
        self.pending = deque(indices)
        self.free_slots = list(range(executor.parallel))
        self.running: dict[int, _Child] = {}
        self.codes: dict[int, int] = {}
        self.reduce_code: int | None = None
        self.reduce_child: _Child | None = None
        self.stopping = threading.Event()
        self.lock = threading.Lock()

    def run(self) -> None:
        try:
            while (self.pending or self.running) and not self.stopping.is_set():
                self._start_free_slots()
                self._reap()
                self.stopping.wait(self.ex.poll_s)
            if self.reduce_argv is not None and not self.stopping.is_set():
                self._run_reduce()
        except Exception:  # noqa: BLE001 - a scheduler bug must not leave children behind
            log.exception("local executor failed; terminating tasks")
            self.terminate()

    def _start_free_slots(self) -> None:
        with self.lock:
            while self.pending and self.free_slots and not self.stopping.is_set():
                index, slot = self.pending.popleft(), self.free_slots.pop(0)
                self.running[index] = _Child(self.task_argv(index), self.logs[index],
                                             self.ex.child_env(slot), slot, self.ex.gpu(slot))

    def _reap(self) -> None:
        with self.lock:
            for index, child in list(self.running.items()):
                code = child.poll()
                if code is not None:
                    self.codes[index] = code
                    self.free_slots.append(child.slot)
                    del self.running[index]
                    log.debug("index %d: %s", index, describe_exit(code))

    def _run_reduce(self) -> None:
        with self.lock:
            self.reduce_child = _Child(self.reduce_argv, self.reduce_log, dict(os.environ), None)
        while (code := self.reduce_child.poll()) is None and not self.stopping.is_set():
            self.stopping.wait(self.ex.poll_s)
        self.reduce_code = code

    def terminate(self) -> None:
        """Stop starting tasks; SIGTERM every child group, SIGKILL what outlives the grace."""
        self.stopping.set()
        with self.lock:
            children = list(self.running.values())
            if self.reduce_child is not None:
                children.append(self.reduce_child)
        for child in children:
            child.signal(signal.SIGTERM)
        deadline = time.monotonic() + self.ex.grace_s
        while time.monotonic() < deadline and any(c.proc.poll() is None for c in children):
            time.sleep(0.05)
        for child in children:
            if child.proc.poll() is None:
                child.signal(signal.SIGKILL)
            child.proc.wait()
            child.poll()


class LocalExecutor:
    """Run tasks as local subprocesses, `parallel` at a time, each on its own GPU slot.

    gpus: GPU ids to hand out (None: detect); slot k gets gpus[k % len(gpus)] so that with
    `parallel == len(gpus)` every running task owns one GPU. Without GPUs CUDA_VISIBLE_DEVICES
    is left as it is.
    """

    name = "local"

    def __init__(self, parallel: int | None = None, gpus: Sequence[str] | None = None,
                 poll_s: float = 0.2, grace_s: float = 10.0, record: bool = True):
        self.gpus = list(detect_gpus() if gpus is None else gpus)
        self.parallel = parallel or max(1, len(self.gpus))
        if self.parallel < 1:
            raise ValueError(f"parallel must be >= 1, got {parallel}")
        self.poll_s, self.grace_s, self.record = poll_s, grace_s, record

    def gpu(self, slot: int) -> str:
        """The GPU id slot `slot` hands out, or `cpu`."""
        return self.gpus[slot % len(self.gpus)] if self.gpus else "cpu"

    def child_env(self, slot: int) -> dict:
        env = dict(os.environ)
        env.setdefault(HEARTBEAT_ENV, str(LOCAL_HEARTBEAT_S))  # live bars want fresh beats
        if self.gpus:
            env["CUDA_VISIBLE_DEVICES"] = self.gpu(slot)
        return env

    def submit(self, run_dir: str | Path, indices: list[int], task_argv: TaskArgv,
               reduce_argv: list[str] | None = None) -> Submission:
        run_dir = Path(run_dir).resolve()
        run = RunDir(run_dir)
        logs = {i: run.backend_log(self.name, f"task-{i}.log") for i in indices}
        reduce_log = run.backend_log(self.name, "reduce.log")
        batch = _Batch(self, list(indices), task_argv, reduce_argv, logs, reduce_log)
        sub = Submission(self.name, str(run_dir), {i: f"local-{i}" for i in indices},
                         {i: str(p) for i, p in logs.items()},
                         reduce_job="local-reduce" if reduce_argv is not None else None,
                         reduce_log=str(reduce_log) if reduce_argv is not None else None,
                         handle=batch)
        if self.record:
            append_record(run_dir, sub, {"executor": "local", "parallel": self.parallel,
                                         "gpus": self.gpus})
        batch.start()
        return sub

    def query(self, submission: Submission) -> Outcome:
        batch: _Batch = submission.handle
        with batch.lock:
            tasks = {i: self._state(batch, i, submission.logs[i]) for i in submission.jobs}
        reduce = None
        if submission.reduce_job is not None:
            reduce = _state_from_code(None, batch.reduce_code, batch.reduce_child is not None,
                                      submission.reduce_log, submission.reduce_job)
        return Outcome(tasks, reduce)

    @staticmethod
    def _state(batch: _Batch, index: int, log_path: str) -> TaskState:
        return _state_from_code(index, batch.codes.get(index), index in batch.running, log_path,
                                f"local-{index}")

    def wait(self, submission: Submission, timeout: float | None = None,
             monitor: Monitor | None = None) -> Outcome:
        """Block until every task (and reduce) ended, telling `monitor` as they go.
        Ctrl-C/SIGTERM terminate the children."""
        batch: _Batch = submission.handle
        deadline = None if timeout is None else time.monotonic() + timeout
        with _interrupts() as interrupts:
            try:
                while batch.is_alive() and interrupts.received is None and \
                        (deadline is None or time.monotonic() < deadline):
                    _tell(monitor, batch)
                    batch.join(REFRESH_S)
                interrupts.check()
                _tell(monitor, batch)
            except BaseException:
                batch.terminate()
                batch.join()
                raise
            finally:
                if monitor is not None:
                    monitor.close()
        if batch.is_alive():
            raise TimeoutError(f"tasks still running after {timeout} s")
        return self.query(submission)

    def run(self, run_dir: str | Path, indices: list[int], task_argv: TaskArgv,
            reduce_argv: list[str] | None = None, monitor: Monitor | None = None) -> Outcome:
        return self.wait(self.submit(run_dir, indices, task_argv, reduce_argv), monitor=monitor)


def _tell(monitor: Monitor | None, batch: _Batch) -> None:
    if monitor is None:
        return
    with batch.lock:
        running = {i: child.gpu for i, child in batch.running.items()}
        ended = dict(batch.codes)
    monitor.update(running, ended)


def _state_from_code(index, code, started, log_path, job_id) -> TaskState:
    if code is not None:
        state = COMPLETED if code == 0 else FAILED
        return TaskState(index, state, job_id, log_path, code, describe_exit(code))
    return TaskState(index, RUNNING if started else PENDING, job_id, log_path)


class _interrupts:
    """While waiting in the main thread, Ctrl-C (SIGINT) and SIGTERM are only noted; the wait
    loop then raises KeyboardInterrupt at a point of its own. Raised by the signal at any
    bytecode, it could strike inside a lock or a join and leave the cleanup waiting forever."""

    def __enter__(self):
        self.received, self.previous = None, {}
        if threading.current_thread() is threading.main_thread():
            self.previous = {sig: signal.signal(sig, self._note)
                             for sig in (signal.SIGINT, signal.SIGTERM)}
        return self

    def _note(self, signum, frame) -> None:
        self.received = signum

    def check(self) -> None:
        if self.received is not None:
            raise KeyboardInterrupt(f"received {signal.Signals(self.received).name}")

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        return False


class LocalBackend(Backend):
    """This machine: tasks as local processes, K at a time, one GPU each, in the foreground."""

    name = "local"
    profile_keys = ("parallel", "gpus")
    foreground = True

    def executor(self, profile, **options) -> LocalExecutor:
        return LocalExecutor(parallel=profile.parallel, gpus=profile.gpus, **options)

    def target(self, profile, task_minutes: float | None = None):
        return local_target(profile.parallel, task_minutes)

    def dry_run(self, executor: LocalExecutor, run_dir, indices: list[int], task_argv: TaskArgv,
                reduce_argv: list[str]) -> str:
        lines = [f"# local executor: {executor.parallel} at a time, GPUs "
                 f"{executor.gpus or 'none'}"]
        lines += [shlex.join(task_argv(i)) for i in indices] + [shlex.join(reduce_argv)]
        return "\n".join(lines) + "\n"

    def describe(self, submission: Submission, run_dir) -> str:
        return f"{len(submission.jobs)} shard(s) ran locally; reduce log: {submission.reduce_log}"


BACKEND = LocalBackend()

"""What every executor shares: the `Backend` interface, the Executor protocol, submission
records and task states.

A backend is one scheduler (this machine, SLURM, ... : registry.py). It says where its tasks
run (`target`), checks a request before anything is written (`check`), builds the executor
that launches tasks (`executor`), tells which shards are queued or running (`busy`), adds the
scheduler's word to `status` (`view`), requeues shards (`resubmit`) and describes what it
would send or sent (`dry_run`, `describe`). Nothing outside executors/ names a scheduler: the
pipeline and the views ask the backend of a profile, or of a run (its submit.json).

Executors run argv commands, one per shard index (`virnuc-hpc run-task RUN --index I`), and
optionally a reduce command once every task has ended (whatever its outcome: reduce verifies
and reports). A `Submission` is what was launched; it is recorded in `RUN/submit.json` so that
`status` and `resubmit` work from disk in a later process.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol

from filelock import FileLock

from ..core.errors import UserError
from ..core.fsio import atomic_write, make_dirs
from ..core.rundir import RunDir

TaskArgv = Callable[[int], "list[str]"]

# Scheduler-level states, coarser than SLURM's. "completed" means the command exited 0; whether
# the shard's outputs are valid is for `status`/`reduce` to decide from disk.
PENDING, RUNNING, COMPLETED = "pending", "running", "completed"
FAILED, UNKNOWN = "failed", "unknown"
FINISHED = (COMPLETED, FAILED)


@dataclass(frozen=True)
class TaskState:
    index: int | None          # shard index; None for the reduce job
    state: str                 # one of PENDING, RUNNING, COMPLETED, FAILED, UNKNOWN
    job_id: str | None = None
    log: str | None = None
    exit_code: int | None = None
    detail: str = ""           # the scheduler's own word (CANCELLED, TIMEOUT, ...) or signal
    reason: str = ""           # SLURM's reason word (Resources, PartitionConfig, ...), if any
    note: str = ""             # a pending job's reason in plain words (slurm_reasons.note)


@dataclass
class Submission:
    """One launch: shard index -> job id and log; the reduce job if any."""

    executor: str
    run_dir: str
    jobs: dict[int, str]
    logs: dict[int, str]
    arrays: list[dict] = field(default_factory=list)   # slurm: [{"job_id": A, "indices": [...]}]
    reduce_job: str | None = None
    reduce_log: str | None = None
    submitted_at: float = field(default_factory=time.time)
    handle: Any = field(default=None, repr=False, compare=False)   # live objects, not persisted

    @property
    def indices(self) -> list[int]:
        return list(self.jobs)

    def to_json(self) -> dict:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "handle"}
        data["jobs"] = {str(i): j for i, j in self.jobs.items()}
        data["logs"] = {str(i): p for i, p in self.logs.items()}
        return data

    @classmethod
    def from_json(cls, data: dict) -> "Submission":
        data = dict(data)
        data["jobs"] = {int(i): j for i, j in data["jobs"].items()}
        data["logs"] = {int(i): p for i, p in data["logs"].items()}
        return cls(**data)


@dataclass
class Outcome:
    """States of a submission's tasks (and reduce job) at one moment."""

    tasks: dict[int, TaskState]
    reduce: TaskState | None = None

    @property
    def failed(self) -> list[int]:
        return sorted(i for i, t in self.tasks.items() if t.state == FAILED)

    @property
    def finished(self) -> bool:
        states = [t.state for t in self.tasks.values()]
        if self.reduce is not None:
            states.append(self.reduce.state)
        return all(s in FINISHED for s in states)

    def check(self, run_dir: str | Path) -> None:
        """Raise TasksFailed naming the failed indices, their exit codes and logs."""
        if self.failed:
            raise TasksFailed(run_dir, [self.tasks[i] for i in self.failed])


class TasksFailed(UserError):
    """Some array tasks failed; the message names them and the command that reruns them."""

    exit_code = 1

    def __init__(self, run_dir: str | Path, failed: list[TaskState]):
        self.indices = [t.index for t in failed]
        lines = [f"{len(failed)} task(s) failed: indices {','.join(map(str, self.indices))}"]
        for t in failed:
            lines.append(f"  index {t.index}: {t.detail or t.state} (log: {t.log})")
        indices = ",".join(map(str, self.indices))
        lines.append("rerun them: " + shlex.join(
            ["virnuc-hpc", "resubmit", str(run_dir), "--indices", indices]))
        super().__init__("\n".join(lines))


class Monitor(Protocol):
    """Told, while `wait` waits, which indices run on which GPU and how ended ones exited."""

    def update(self, running: Mapping[int, str], ended: Mapping[int, int]) -> None: ...

    def close(self) -> None: ...


class Executor(Protocol):
    name: str

    def submit(self, run_dir: Path, indices: list[int], task_argv: TaskArgv,
               reduce_argv: list[str] | None = None) -> Submission: ...

    def wait(self, submission: Submission, timeout: float | None = None) -> Outcome: ...

    def query(self, submission: Submission) -> Outcome: ...


class Fit(Protocol):
    """A request check's outcome (`ok`, `warning` or `refused`) and its one line."""

    outcome: str
    line: str

    def require(self) -> None: ...


class Backend:
    """One scheduler, as submit, status and resubmit use it. Subclasses set `name` and
    `profile_keys` and override what their scheduler does; the defaults are those of a
    scheduler that runs the tasks in the foreground and keeps no queue."""

    name: str = ""
    profile_keys: tuple[str, ...] = ()   # the profile keys it reads (besides image, cache)
    foreground: bool = False   # submit waits for the tasks, showing them (this machine)
    time_limited: bool = False  # tasks have a time limit (the profile's `time`)

    def executor(self, profile, **options) -> Executor:
        """What launches this profile's tasks."""
        raise NotImplementedError

    def target(self, profile, task_minutes: float | None = None):
        """Where this profile's tasks run (plan.devices.Target): its GPUs settle the
        precision and the shards' size."""
        raise NotImplementedError

    def check(self, profile) -> Fit | None:
        """The request checked against the scheduler before anything is written (None: no
        check to make)."""
        return None

    def busy(self, run_dir: str | Path) -> set[int]:
        """Shard indices queued or running now (never submitted twice)."""
        return set()

    def view(self, run_dir: str | Path, shards: list[dict]) -> list[dict]:
        """`status`'s shard records with the scheduler's word added (job, state, reason)."""
        return shards

    def resubmit(self, run_dir: str | Path, indices: list[int]) -> list[int]:
        """Queue `indices` again with the profile the run was submitted with; the indices
        queued (a foreground backend's shards are rerun by the pipeline instead)."""
        raise NotImplementedError

    def latest(self, run_dir: str | Path) -> Submission | None:
        """The run's latest submission that may still be running (for `submit --wait`)."""
        return None

    def dry_run(self, executor: Executor, run_dir: str | Path, indices: list[int],
                task_argv: TaskArgv, reduce_argv: list[str]) -> str:
        """What `submit` would send, as text; sends nothing."""
        lines = [f"# {self.name} executor: {len(indices)} task(s)"]
        lines += [shlex.join(task_argv(i)) for i in indices] + [shlex.join(reduce_argv)]
        return "\n".join(lines) + "\n"

    def describe(self, submission: Submission, run_dir: str | Path) -> str:
        """What was submitted, for the user."""
        return f"{len(submission.jobs)} shard(s) submitted to {self.name}"


def default_task_argv(run_dir: str | Path) -> TaskArgv:
    """`virnuc-hpc run-task RUN --index I` through this interpreter (no PATH lookup needed)."""
    run = str(Path(run_dir).resolve())
    return lambda index: [sys.executable, "-m", "virnuc_hpc", "run-task", run, "--index",
                          str(index)]


def default_reduce_argv(run_dir: str | Path) -> list[str]:
    return [sys.executable, "-m", "virnuc_hpc", "reduce", str(Path(run_dir).resolve())]


def read_record(run_dir: str | Path) -> dict | None:
    """RUN/submit.json, or None when nothing was ever submitted for RUN."""
    path = RunDir(run_dir).submit_record
    if not path.exists():
        return None
    return json.loads(path.read_text())


def append_record(run_dir: str | Path, submission: Submission, profile: dict | None) -> None:
    """Add `submission` to RUN/submit.json (rewritten atomically, under a lock)."""
    make_dirs(run_dir)
    with FileLock(str(RunDir(run_dir).submit_lock)):
        record = read_record(run_dir) or {"version": 1, "submissions": []}
        record["executor"] = submission.executor
        if profile is not None:
            record["profile"] = profile
        record["submissions"].append(submission.to_json())
        text = json.dumps(record, indent=1, sort_keys=True) + "\n"
        atomic_write(RunDir(run_dir).submit_record, text)


def submissions(record: dict | None) -> list[Submission]:
    return [Submission.from_json(s) for s in (record or {}).get("submissions", [])]


def latest_jobs(record: dict | None, executor: str | None = None) -> dict[int, tuple[str, str]]:
    """Shard index -> (job id, log) of its most recent submission (by `executor` if given)."""
    latest: dict[int, tuple[str, str]] = {}
    for sub in submissions(record):
        if executor is None or sub.executor == executor:
            latest.update({i: (sub.jobs[i], sub.logs.get(i, "")) for i in sub.jobs})
    return latest

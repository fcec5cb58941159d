"""What every executor shares: the Executor protocol, submission records and task states.

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
from typing import Any, Callable, Protocol

from filelock import FileLock

from ..core.errors import UserError
from ..core.fsio import atomic_write, make_dirs

TaskArgv = Callable[[int], "list[str]"]
RECORD = "submit.json"

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


class Executor(Protocol):
    name: str

    def submit(self, run_dir: Path, indices: list[int], task_argv: TaskArgv,
               reduce_argv: list[str] | None = None) -> Submission: ...

    def wait(self, submission: Submission, timeout: float | None = None) -> Outcome: ...

    def query(self, submission: Submission) -> Outcome: ...


def default_task_argv(run_dir: str | Path) -> TaskArgv:
    """`virnuc-hpc run-task RUN --index I` through this interpreter (no PATH lookup needed)."""
    run = str(Path(run_dir).resolve())
    return lambda index: [sys.executable, "-m", "virnuc_hpc", "run-task", run, "--index",
                          str(index)]


def default_reduce_argv(run_dir: str | Path) -> list[str]:
    return [sys.executable, "-m", "virnuc_hpc", "reduce", str(Path(run_dir).resolve())]


def read_record(run_dir: str | Path) -> dict | None:
    """RUN/submit.json, or None when nothing was ever submitted for RUN."""
    path = Path(run_dir) / RECORD
    if not path.exists():
        return None
    return json.loads(path.read_text())


def append_record(run_dir: str | Path, submission: Submission, profile: dict | None) -> None:
    """Add `submission` to RUN/submit.json (rewritten atomically, under a lock)."""
    make_dirs(run_dir)
    with FileLock(str(Path(run_dir) / f".{RECORD}.lock")):
        record = read_record(run_dir) or {"version": 1, "submissions": []}
        record["executor"] = submission.executor
        if profile is not None:
            record["profile"] = profile
        record["submissions"].append(submission.to_json())
        text = json.dumps(record, indent=1, sort_keys=True) + "\n"
        atomic_write(Path(run_dir) / RECORD, text)


def submissions(record: dict | None) -> list[Submission]:
    return [Submission.from_json(s) for s in (record or {}).get("submissions", [])]


def latest_jobs(record: dict | None, executor: str | None = None) -> dict[int, tuple[str, str]]:
    """Shard index -> (job id, log) of its most recent submission (by `executor` if given)."""
    latest: dict[int, tuple[str, str]] = {}
    for sub in submissions(record):
        if executor is None or sub.executor == executor:
            latest.update({i: (sub.jobs[i], sub.logs.get(i, "")) for i in sub.jobs})
    return latest

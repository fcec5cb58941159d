"""Where array tasks run: a backend per scheduler (registry.py: this machine, SLURM, or one a
user registers), each behind base.Backend; its executor runs argv commands, one per shard
index, and records what it launched in RUN/submit.json:

    profile = load_profile("slurm", partition="gpu")
    executor = make_executor(profile)
    sub = executor.submit(run, [0, 1, 2], task_argv_for(profile, run),
                          reduce_argv_for(profile, run))
    executor.wait(sub).check(run)       # raises TasksFailed naming the failed indices
"""

from __future__ import annotations

from pathlib import Path

from ..core.errors import UserError
from .profiles import Profile, load_profile, profile_from_dict
from .base import (COMPLETED, FAILED, PENDING, RUNNING, UNKNOWN, Backend, Executor, Monitor,
                   Outcome, Submission, TaskArgv, TasksFailed, TaskState, default_reduce_argv,
                   default_task_argv, latest_jobs, read_record, submissions)
from .local import LocalExecutor, detect_gpus
from .registry import backend, backend_of_run, names, register, unregister

__all__ = [
    "COMPLETED", "FAILED", "PENDING", "RUNNING", "UNKNOWN", "Backend", "Executor",
    "LocalExecutor", "Monitor", "backend", "backend_of_run", "names", "register", "unregister",
    "Outcome", "Submission", "TaskArgv", "TaskState", "TasksFailed", "default_reduce_argv",
    "default_task_argv", "detect_gpus", "executor_for_run", "latest_jobs", "make_executor",
    "read_record", "recorded_profile", "reduce_argv_for", "submissions", "task_argv_for",
]


def make_executor(profile: Profile, **kwargs) -> Executor:
    """The executor of the backend a profile names (kwargs: that executor's options)."""
    return backend(profile.executor).executor(profile, **kwargs)


def task_argv_for(profile: Profile, run_dir: str | Path) -> TaskArgv:
    """`run-task RUN --index I`: this interpreter, or `virnuc-hpc` inside the profile's image."""
    run = str(Path(run_dir).resolve())
    if profile.image is None:
        return default_task_argv(run)
    return lambda i: profile.wrap(run, ["virnuc-hpc", "run-task", run, "--index", str(i)])


def reduce_argv_for(profile: Profile, run_dir: str | Path) -> list[str]:
    run = str(Path(run_dir).resolve())
    if profile.image is None:
        return default_reduce_argv(run)
    return profile.wrap(run, ["virnuc-hpc", "reduce", run])


def executor_for_run(run_dir: str | Path, **kwargs) -> tuple[Profile, Executor]:
    """The profile and executor RUN was last submitted with (for `resubmit`, `status`)."""
    record = read_record(run_dir)
    if not record or "profile" not in record:
        raise UserError(f"{run_dir}: nothing was submitted for this run (no submit.json); "
                        f"use `virnuc-hpc submit` or `virnuc-hpc run`")
    profile = recorded_profile(record)
    return profile, make_executor(profile, **kwargs)


def recorded_profile(record: dict) -> Profile:
    """The profile stored in RUN/submit.json (`record`, which has one)."""
    data = dict(record["profile"])
    name, source = data.pop("name", "recorded"), data.pop("source", "")
    defaults = Profile(name=name)
    data = {k: v for k, v in data.items() if v is not None and v != getattr(defaults, k, None)}
    return profile_from_dict({"executor": record["executor"], **data}, name, source)


__all__ += ["load_profile", "Profile"]

"""The SLURM backend: shards as job arrays through submitit, one GPU per task, a reduce job
after them (executor.py); the request checked against the partition's nodes before anything
is written (check.py); pending reasons in plain words (reasons.py).

submitit is imported only when a SLURM executor or the scheduler's view is needed."""

from __future__ import annotations

from pathlib import Path

from ...plan.devices import Target, partition_gpus
from ..base import Backend, Submission, read_record, submissions

SLURM_KEYS = ("partition", "account", "qos", "time", "gpus_per_task", "cpus_per_task", "mem",
              "array_parallelism", "signal_delay_s", "max_requeues")


class SlurmBackend(Backend):
    name = "slurm"
    profile_keys = SLURM_KEYS
    time_limited = True

    def executor(self, profile, **options):
        from .executor import SlurmExecutor

        return SlurmExecutor(profile, **options)

    def target(self, profile, task_minutes: float | None = None) -> Target:
        """The profile's partition: its GPU types (asked of scontrol; unknown when it cannot
        be asked), the profile's time limit and array parallelism."""
        from .check import partition_gres

        where = f"partition {profile.partition or '(default)'}"
        gpus = partition_gpus(partition_gres(profile.partition)) if profile.gpus_per_task else ()
        return Target(where, gpus, bool(profile.gpus_per_task), profile.time,
                      profile.array_parallelism, task_minutes)

    def check(self, profile):
        from .check import check_profile

        return check_profile(profile)

    def busy(self, run_dir: str | Path) -> set[int]:
        from .executor import active_indices

        return active_indices(run_dir)

    def view(self, run_dir: str | Path, shards: list[dict]) -> list[dict]:
        from .executor import merge_view, scheduler_view

        return merge_view(shards, scheduler_view(run_dir))  # SLURM's word on ended jobs

    def resubmit(self, run_dir: str | Path, indices: list[int]) -> list[int]:
        from .executor import resubmit_run

        submission = resubmit_run(run_dir, indices)  # leaves out what SLURM still runs
        return submission.indices if submission is not None else []

    def latest(self, run_dir: str | Path) -> Submission | None:
        mine = [s for s in submissions(read_record(run_dir)) if s.executor == self.name]
        return mine[-1] if mine else None

    def dry_run(self, executor, run_dir, indices, task_argv, reduce_argv) -> str:
        return executor.dry_run(run_dir, indices, task_argv, reduce_argv)

    def describe(self, submission: Submission, run_dir) -> str:
        lines = []
        for array in submission.arrays:
            idx = array["indices"]
            lines.append(f"array job {array['job_id']}: {len(idx)} task(s), shard indices "
                         f"{idx[0]}..{idx[-1]} (array task a runs the a-th of them)")
        lines.append(f"reduce job {submission.reduce_job} (after the array(s), whatever their "
                     "outcome)")
        lines.append(f"logs: {submission.logs[submission.indices[0]]} (one per array task)")
        return "\n".join(lines)


BACKEND = SlurmBackend()

"""The backend interface is enough for a scheduler of one's own: this test registers a fake
queue (no project code names it) and runs plan, submit, status, resubmit and reduce through
it, ending with the same results as a local `predict`."""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import REPO
from virnuc_hpc.executors import (Backend, Outcome, Submission, TaskState, register,
                                  unregister)
from virnuc_hpc.executors.base import COMPLETED, FAILED, PENDING, append_record
from virnuc_hpc.executors.profiles import profile_from_dict
from virnuc_hpc.core.rundir import RunDir
from virnuc_hpc.pipeline.planning import PlanRequest, plan_for
from virnuc_hpc.pipeline.predict import predict
from virnuc_hpc.pipeline.results import reduce_and_report
from virnuc_hpc.pipeline.run import resubmit
from virnuc_hpc.pipeline.submit import submit
from virnuc_hpc.plan.devices import Target
from virnuc_hpc.plan.samples import study_from_files
from virnuc_hpc.views.status import run_status

EXAMPLE = REPO / "examples" / "reads.fa"
FILES = ("prediction_results.txt", "prediction_results_highestscore.csv", "predictions.tsv")


@dataclass(frozen=True)
class Fits:
    outcome: str = "ok"
    line: str = "every task fits the fake queue"

    def require(self) -> None:
        pass


class QueueExecutor:
    """Queues commands; nothing runs until the test drains the queue."""

    def __init__(self, backend: "FakeQueue", profile):
        self.backend, self.profile, self.name = backend, profile, backend.name

    def submit(self, run_dir, indices, task_argv, reduce_argv=None) -> Submission:
        jobs = {}
        for index in indices:
            job = f"q{len(self.backend.jobs)}"
            self.backend.jobs[job] = [str(run_dir), index, task_argv(index), PENDING]
            jobs[index] = job
        submission = Submission(self.name, str(run_dir), jobs, {i: "" for i in indices})
        append_record(run_dir, submission, self.profile.to_json())
        return submission

    def query(self, submission: Submission) -> Outcome:
        return Outcome({i: TaskState(i, self.backend.jobs[j][3], j)
                        for i, j in submission.jobs.items()})

    def wait(self, submission: Submission, timeout=None) -> Outcome:
        return self.query(submission)


class FakeQueue(Backend):
    name = "fake-queue"
    profile_keys = ("parallel",)

    def __init__(self):
        self.jobs: dict[str, list] = {}   # job id -> [run dir, index, argv, state]

    def executor(self, profile, **options) -> QueueExecutor:
        return QueueExecutor(self, profile)

    def target(self, profile, task_minutes=None) -> Target:
        return Target("the fake queue", (), False, None, 2, task_minutes)

    def check(self, profile) -> Fits:
        return Fits()

    def queued(self, run_dir) -> dict[int, str]:
        return {i: job for job, (run, i, _, state) in self.jobs.items()
                if run == str(run_dir) and state == PENDING}

    def busy(self, run_dir) -> set[int]:
        return set(self.queued(run_dir))

    def view(self, run_dir, shards: list[dict]) -> list[dict]:
        queued = self.queued(run_dir)
        return [dict(s, job_id=queued[s["index"]], scheduler_state="QUEUED")
                if s["index"] in queued else s for s in shards]

    def resubmit(self, run_dir, indices: list[int]) -> list[int]:
        from virnuc_hpc.executors import recorded_profile, task_argv_for
        from virnuc_hpc.executors.base import read_record

        profile = recorded_profile(read_record(run_dir))
        todo = sorted(set(indices) - self.busy(run_dir))
        self.executor(profile).submit(run_dir, todo, task_argv_for(profile, run_dir))
        return todo

    def describe(self, submission: Submission, run_dir) -> str:
        return f"{len(submission.jobs)} shard(s) queued in the fake queue"

    def drain(self, fail: set[int] = frozenset()) -> None:
        """Run every queued task (`fail`: these indices' jobs are lost instead)."""
        for job, (_, index, argv, state) in self.jobs.items():
            if state != PENDING:
                continue
            if index in fail:
                self.jobs[job][3] = FAILED
                continue
            done = subprocess.run(argv, capture_output=True, text=True)
            assert done.returncode == 0, f"{shlex.join(argv)}: {done.stderr[-2000:]}"
            self.jobs[job][3] = COMPLETED


@pytest.fixture()
def queue():
    yield register(FakeQueue())
    unregister(FakeQueue.name)


def results(run_dir: Path) -> dict[str, bytes]:
    root = RunDir(run_dir).results
    return {p.name: p.read_bytes() for p in root.iterdir() if p.name in FILES}


def test_a_scheduler_of_ones_own_runs_a_whole_run(queue, tiny_cache, tmp_path):
    request = PlanRequest(study_from_files([EXAMPLE]), models="tiny", shards=3)
    profile = profile_from_dict({"executor": "fake-queue"}, name="mine")
    run = tmp_path / "run"

    planned = plan_for(request, run, profile, dry_run=True)      # plan, for its target
    assert len(planned.shards) == 3 and not run.exists()
    said: list[str] = []
    assert submit(request, run, profile, say=said.append) == 0   # plan, then queue
    assert said[-2] == "3 shard(s) queued in the fake queue"
    status = run_status(run)
    assert [s["scheduler_state"] for s in status["shards"]] == ["QUEUED"] * 3
    assert submit(request, run, profile, say=said.append) == 0   # all busy: nothing again
    assert said[-1].startswith("nothing to submit") and len(queue.jobs) == 3

    queue.drain(fail={1})                                        # shard 1's job is lost
    states = {s["index"]: s["state"] for s in run_status(run)["shards"]}
    assert states[0] == states[2] == "done" and states[1] != "done"
    assert reduce_and_report(run, report=False) == 1             # refuses partial output

    assert resubmit(run) == [1] and len(queue.jobs) == 4         # requeued by the backend
    assert run_status(run)["shards"][1]["scheduler_state"] == "QUEUED"
    queue.drain()
    assert all(s["state"] == "done" for s in run_status(run)["shards"])
    assert reduce_and_report(run, report=False) == 0

    local = tmp_path / "local"
    assert predict(request, local, progress="quiet", report=False) == 0
    assert results(run) == results(local) and len(results(run)) == 3

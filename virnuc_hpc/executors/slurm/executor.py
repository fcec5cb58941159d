"""SLURM executor on submitit: shard indices as job arrays, one GPU per task, a reduce job after.

- Each array task runs one argv (`virnuc-hpc run-task RUN --index I`) in a `TaskCommand`, a
  submitit Checkpointable: at SLURM's signal (USR2, `signal_delay_s` before the time limit, or a
  preemption) it SIGTERMs the command (which writes its current part and exits) and submitit
  requeues the same argv; run-task resumes from its last complete part.
- Array task a of array job A runs shard `indices[a]`; arrays longer than the cluster's
  MaxArraySize are split. The mapping, job ids and log paths go to RUN/submit.json.
- The reduce job depends on every array with `afterany`: it runs whatever the tasks' outcome
  and reports (and refuses) missing or failed shards.
- States and pending reasons come from one `squeue` call (jobs slurmctld still remembers), then
  `sacct` (when accounting is on); `scheduler_view` caches them per run for 30 s, with the
  request check (slurm_check) when a reason says the tasks may never start.
- `submit` runs that check before anything is written (see slurm_check).
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import submitit
from submitit.helpers import Checkpointable, DelayedSubmission
from submitit.slurm.slurm import _make_sbatch_string

from ...core.errors import UserError
from ...core.fsio import atomic_write
from ...core.rundir import RunDir
from ..profiles import Profile
from . import reasons as slurm_reasons
from ..base import (COMPLETED, FAILED, PENDING, RUNNING, UNKNOWN, Outcome, Submission, TaskArgv,
                   TaskState, append_record, latest_jobs, read_record, submissions)

log = logging.getLogger(__name__)

BACKEND = "slurm"                   # RUN/slurm/<job id>/: submitit pickles and logs
DEFAULT_MAX_ARRAY_SIZE = 1001       # SLURM's default MaxArraySize
STATES = {
    PENDING: ("PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING", "RESIZING",
              "SUSPENDED", "RESV_DEL_HOLD", "STOPPED"),
    RUNNING: ("RUNNING", "COMPLETING", "SIGNALING", "STAGE_OUT"),
    COMPLETED: ("COMPLETED",),
    FAILED: ("FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL",
             "DEADLINE", "PREEMPTED", "REVOKED", "SPECIAL_EXIT"),
}
STATE_OF = {word: state for state, words in STATES.items() for word in words}
Raw = dict[str, tuple[str, str]]    # job id -> (SLURM state word, squeue's reason or "")


class TaskCommand(Checkpointable):
    """Run one argv as a child process; on SLURM's timeout/preemption signal stop it, requeue.

    (submitit's CommandFunction buffers all output in memory and keeps no process handle, so it
    cannot forward the signal; this streams output to the task's log instead.)
    """

    def __init__(self, argv: list[str], grace_s: float = 60.0):
        self.argv, self.grace_s = list(argv), grace_s
        self._proc: subprocess.Popen | None = None

    def __call__(self) -> int:
        print(f"virnuc-hpc task: {shlex.join(self.argv)}", flush=True)
        self._proc = subprocess.Popen(self.argv, start_new_session=True)
        while (code := self._proc.poll()) is None:
            time.sleep(0.5)
        if code != 0:
            raise subprocess.CalledProcessError(code, self.argv)
        return code

    def checkpoint(self, *args, **kwargs) -> DelayedSubmission:
        """SIGTERM the command's process group, give it `grace_s` to write its part, requeue."""
        self._stop_child()
        return DelayedSubmission(TaskCommand(self.argv, self.grace_s))

    def _stop_child(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            return
        _signal_group(self._proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.grace_s
        while self._proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        if self._proc.poll() is None:
            _signal_group(self._proc.pid, signal.SIGKILL)
            self._proc.wait()

    def __getstate__(self) -> dict:
        return {"argv": self.argv, "grace_s": self.grace_s, "_proc": None}


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


class SlurmExecutor:
    """Submit shard indices as SLURM arrays (through submitit) plus an `afterany` reduce job."""

    name = "slurm"

    def __init__(self, profile: Profile, poll_s: float = 30.0):
        self.profile, self.poll_s = profile, poll_s
        # after USR2 the command has this long to write its part (requeue needs the rest)
        self.grace_s = float(max(5, profile.signal_delay_s - 15))

    # -- parameters and scripts -----------------------------------------------------------

    def parameters(self, run_dir: Path, reduce: bool = False) -> dict:
        """submitit SlurmExecutor parameters (its names, sbatch's meanings)."""
        p = self.profile
        params = {"job_name": f"virnuc-{run_dir.name}" + ("-reduce" if reduce else ""),
                  "partition": p.partition, "account": p.account, "qos": p.qos, "time": p.time,
                  "cpus_per_task": p.cpus_per_task, "mem": p.mem, "ntasks_per_node": 1,
                  "signal_delay_s": p.signal_delay_s, "array_parallelism": p.array_parallelism}
        if p.gpus_per_task and not reduce:
            params["gpus_per_task"] = p.gpus_per_task
        return {k: v for k, v in params.items() if v is not None}

    def _submitit(self, run_dir: Path, params: dict) -> submitit.SlurmExecutor:
        ex = submitit.SlurmExecutor(folder=_jobs(run_dir),
                                    max_num_timeout=self.profile.max_requeues)
        ex.update_parameters(**params)
        return ex

    def dry_run(self, run_dir: str | Path, indices: list[int], task_argv: TaskArgv,
                reduce_argv: list[str] | None = None) -> str:
        """The sbatch scripts `submit` would send, and each array task's command; sends nothing."""
        run_dir = Path(run_dir).resolve()
        folder, command = _jobs(run_dir), _submitit_command(run_dir)
        out, chunks = [], split_arrays(indices, self._max_array_size())
        for n, chunk in enumerate(chunks):
            array = {"map_count": len(chunk)} if len(chunk) > 1 else {}   # as submitit does
            script = _make_sbatch_string(command=command, folder=folder, **array,
                                         **self.parameters(run_dir))
            out += [f"# --- array {n + 1}/{len(chunks)}: sbatch script ---", script,
                    "# array task -> shard index: command"]
            out += [f"#   {a} -> {i}: {shlex.join(task_argv(i))}" for a, i in enumerate(chunk)]
        if reduce_argv is not None:
            deps = ":".join(f"<array {n + 1} job id>" for n in range(len(chunks)))
            params = dict(self.parameters(run_dir, reduce=True), dependency=f"afterany:{deps}")
            out += ["# --- reduce job: sbatch script ---",
                    _make_sbatch_string(command=command, folder=folder, **params),
                    f"#   command: {shlex.join(reduce_argv)}"]
        return "\n".join(out) + "\n"

    def _max_array_size(self) -> int:
        try:
            text = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True,
                                  timeout=60).stdout
        except (OSError, subprocess.TimeoutExpired):
            return DEFAULT_MAX_ARRAY_SIZE
        for line in text.splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "MaxArraySize" and value.strip().isdigit():
                return int(value.strip())
        return DEFAULT_MAX_ARRAY_SIZE

    # -- submit ---------------------------------------------------------------------------

    def submit(self, run_dir: str | Path, indices: list[int], task_argv: TaskArgv,
               reduce_argv: list[str] | None = None) -> Submission:
        run_dir = Path(run_dir).resolve()
        jobs, logs, arrays = {}, {}, []
        ex = self._submitit(run_dir, self.parameters(run_dir))
        for chunk in split_arrays(indices, self._max_array_size()):
            submitted = ex.submit_array([TaskCommand(task_argv(i), self.grace_s) for i in chunk])
            arrays.append({"job_id": submitted[0].job_id.split("_")[0], "indices": chunk})
            jobs.update({i: job.job_id for i, job in zip(chunk, submitted)})
            logs.update({i: str(job.paths.stdout) for i, job in zip(chunk, submitted)})
            log.info("submitted array %s: indices %s", arrays[-1]["job_id"], _ranges(chunk))
        sub = Submission(self.name, str(run_dir), jobs, logs, arrays)
        if reduce_argv is not None:
            deps = ":".join(a["job_id"] for a in arrays)
            params = dict(self.parameters(run_dir, reduce=True), dependency=f"afterany:{deps}")
            job = self._submitit(run_dir, params).submit(TaskCommand(reduce_argv, self.grace_s))
            sub.reduce_job, sub.reduce_log = job.job_id, str(job.paths.stdout)
        append_record(run_dir, sub, self.profile.to_json())
        return sub

    def resubmit(self, run_dir: str | Path, indices: list[int], task_argv: TaskArgv,
                 reduce_argv: list[str] | None = None) -> Submission:
        """Submit only `indices` as a new array (and a new reduce job)."""
        return self.submit(run_dir, sorted(set(indices)), task_argv, reduce_argv)

    # -- states ---------------------------------------------------------------------------

    def query(self, submission: Submission) -> Outcome:
        ids = list(submission.jobs.values())
        if submission.reduce_job:
            ids.append(submission.reduce_job)
        raw = scheduler_states(ids)
        tasks = {i: _task_state(i, j, submission.logs.get(i), raw) for i, j in
                 submission.jobs.items()}
        reduce = None
        if submission.reduce_job:
            reduce = _task_state(None, submission.reduce_job, submission.reduce_log, raw)
        return Outcome(tasks, reduce)

    def wait(self, submission: Submission, timeout: float | None = None,
             poll_s: float | None = None) -> Outcome:
        """Poll the scheduler until every task and the reduce job ended (or `timeout`)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not (outcome := self.query(submission)).finished:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"SLURM jobs not finished after {timeout} s: "
                                   f"{_summary(outcome)}")
            time.sleep(self.poll_s if poll_s is None else poll_s)
        return outcome


def _jobs(run_dir: Path) -> Path:
    """submitit's job folders (RunDir owns the run's paths)."""
    return RunDir(run_dir).backend_files(BACKEND) / "%j"


def _submitit_command(run_dir: Path) -> str:
    return f"{shlex.quote(sys.executable)} -u -m submitit.core._submit " \
           f"{shlex.quote(str(_jobs(run_dir)))}"


def split_arrays(indices: list[int], max_array_size: int) -> list[list[int]]:
    """Chunks of at most `max_array_size` indices (array task ids run 0..n-1)."""
    size = max(1, max_array_size)
    return [list(indices[k:k + size]) for k in range(0, len(indices), size)]


def _ranges(indices: list[int]) -> str:
    return f"{indices[0]}..{indices[-1]} ({len(indices)})" if indices else "none"


def _task_state(index, job_id, log_path, raw: Raw, misfit: str = "") -> TaskState:
    if job_id not in raw:
        return TaskState(index, UNKNOWN, job_id, log_path)
    word, reason = raw[job_id]
    state = STATE_OF.get(word, UNKNOWN)
    note = slurm_reasons.note(reason, job_id, misfit) if state == PENDING else ""
    return TaskState(index, state, job_id, log_path, detail=word,
                     reason=slurm_reasons.word(reason), note=note)


def _summary(outcome: Outcome) -> str:
    counts: dict[str, int] = {}
    for t in outcome.tasks.values():
        counts[t.state] = counts.get(t.state, 0) + 1
    return ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))


def scheduler_states(job_ids: list[str]) -> Raw:
    """Job id (`A_a` or `J`) -> (SLURM state word, reason), from squeue, then sacct for the
    rest (jobs slurmctld forgot: ended, no reason)."""
    wanted = set(job_ids)
    parents = sorted({j.split("_")[0] for j in wanted})
    if not parents:
        return {}
    found = _parse_states(_squeue(parents), wanted)
    missing = sorted({j.split("_")[0] for j in wanted - set(found)})
    if missing:
        sacct = _run(["sacct", "-X", "-n", "-P", "-o", "JobID,State", "-j", ",".join(missing)])[1]
        found.update({k: v for k, v in _parse_states(sacct, wanted).items() if k not in found})
    return found


def _squeue(job_ids: list[str]) -> str:
    """squeue refuses the whole list when one id is forgotten: then ask one by one."""
    argv = ["squeue", "-h", "-r", "-t", "all", "-o", "%i|%T|%r", "-j"]
    code, out = _run(argv + [",".join(job_ids)])
    if code != 0 and len(job_ids) > 1:
        out = "".join(_run(argv + [j])[1] for j in job_ids)
    return out


def _run(argv: list[str]) -> tuple[int, str]:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.debug("%s failed: %s", argv[0], exc)
        return -1, ""
    if done.returncode != 0:
        log.debug("%s exited %d: %s", argv[0], done.returncode, done.stderr.strip())
    return done.returncode, done.stdout


def _parse_states(text: str, wanted: set[str]) -> Raw:
    """Lines `JOBID|STATE[|REASON]`; keeps the wanted ids (array ranges are not expanded here).
    squeue says `None` for no reason; a reason may go on (`ReqNodeNotAvail, UnavailableNodes:`)."""
    out = {}
    for line in text.splitlines():
        job_id, _, rest = line.strip().partition("|")
        state, _, reason = rest.partition("|")
        if job_id in wanted and state.strip():
            reason = "" if reason.strip() == "None" else reason.strip()
            out[job_id] = (state.split()[0].rstrip("+"), reason)
    return out


# -- `status` support: the scheduler's view of a run, polled at most every 30 s ---------------

CACHE = "scheduler.json"


def scheduler_view(run_dir: str | Path, max_age_s: float = 30.0) -> dict[int, TaskState]:
    """Shard index -> the scheduler's state of its latest job, from RUN/submit.json.

    squeue/sacct are asked at most once per `max_age_s` per run (the answer is cached in
    RUN/slurm/scheduler.json); empty when the run was never submitted to SLURM.
    """
    run_dir = Path(run_dir)
    record = read_record(run_dir)
    if not record or record.get("executor") != "slurm":
        return {}
    latest = latest_jobs(record, executor="slurm")
    raw, misfit = _cached_states(run_dir, record, [j for j, _ in latest.values()], max_age_s)
    return {i: _task_state(i, j, log_path, raw, misfit) for i, (j, log_path) in latest.items()}


def reduce_jobs(run_dir: str | Path) -> list[str]:
    return [s.reduce_job for s in submissions(read_record(run_dir)) if s.reduce_job]


def _cached_states(run_dir: Path, record: dict, ids: list[str],
                   max_age_s: float) -> tuple[Raw, str]:
    """(job id -> (state, reason), the request check's refusal or ""), at most `max_age_s` old."""
    path = RunDir(run_dir).backend_files(BACKEND) / CACHE
    try:
        cached = json.loads(path.read_text())
        misfit = cached["misfit"]           # absent: written before reasons were kept
        if time.time() - cached["time"] < max_age_s and set(ids) <= set(cached["asked"]):
            return {j: (state, reason) for j, (state, reason) in cached["states"].items()}, misfit
    except (OSError, ValueError, KeyError, TypeError):
        pass
    states = scheduler_states(ids)
    misfit = _misfit(record, states)
    atomic_write(path, json.dumps({"time": time.time(), "asked": ids, "states": states,
                                   "misfit": misfit}))
    return states, misfit


def _misfit(record: dict, states: Raw) -> str:
    """The request check's refusal line, asked only when a pending reason may mean a misfit."""
    from .. import recorded_profile
    from .check import REFUSED, check_profile

    if "profile" not in record or not any(
            STATE_OF.get(word) == PENDING and slurm_reasons.worth_checking(reason)
            for word, reason in states.values()):
        return ""
    try:
        fit = check_profile(recorded_profile(record))
    except UserError as exc:           # a record this version cannot read: say only the reason
        log.debug("no request check for status: %s", exc)
        return ""
    return fit.line if fit.outcome == REFUSED else ""


def active_indices(run_dir: str | Path) -> set[int]:
    """Indices whose latest SLURM job is still pending or running (not to be submitted twice)."""
    return {i for i, t in scheduler_view(run_dir, max_age_s=0).items()
            if t.state in (PENDING, RUNNING)}


def resubmit_run(run_dir: str | Path, indices: list[int], **executor_options) -> Submission | None:
    """`resubmit` under SLURM: one new array of exactly `indices` (minus those still queued or
    running) and a new reduce job, with the profile RUN was submitted with."""
    from .. import executor_for_run, reduce_argv_for, task_argv_for

    profile, ex = executor_for_run(run_dir, **executor_options)
    busy = active_indices(run_dir)
    todo = sorted(set(indices) - busy)
    if busy & set(indices):
        log.warning("not resubmitting %s: still queued or running", sorted(busy & set(indices)))
    if not todo:
        return None
    return ex.resubmit(run_dir, todo, task_argv_for(profile, run_dir),
                       reduce_argv_for(profile, run_dir))


def merge_view(shards: list[dict], view: dict[int, TaskState]) -> list[dict]:
    """Add the scheduler's view to `status` records (from disk): job id, SLURM state and
    reason word, log; a pending shard's reason says why SLURM has not started it.

    Disk wins where it knows (done, corrupt); a shard the disk calls pending or running is
    `failed` once SLURM says its job ended without a DONE (cancelled, timed out, exit 0 with
    no DONE), and `running` once SLURM started it (before its first heartbeat).
    """
    merged = []
    for shard in shards:
        task = view.get(shard["index"])
        shard = dict(shard)
        if task is not None:
            shard.update(job_id=task.job_id, scheduler_state=task.detail or task.state,
                         scheduler_reason=task.reason or None, scheduler_log=task.log)
            shard.update(_merged_state(shard, task))
        merged.append(shard)
    return merged


def _merged_state(shard: dict, task: TaskState) -> dict:
    if shard["state"] not in ("pending", "running"):
        return {}
    if task.state in (COMPLETED, FAILED):
        return {"state": "failed",
                "reason": f"SLURM job {task.job_id} ended {task.detail} without DONE"}
    if task.state == RUNNING and shard["state"] == "pending":
        return {"state": "running", "reason": f"SLURM job {task.job_id} started"}
    if task.state == PENDING and not shard.get("reason"):
        return {"reason": task.note or f"queued as SLURM job {task.job_id}"}
    return {}

"""Fault trials on a small run, driven by the real CLI (forked from the zygote).

A `Bench` plans a small input (2 shards, parts of 3 frames, so a kill often lands mid-write;
`--features none` unless told otherwise, so its parts hold the scores only) and runs it clean
once. Each trial copies that run without the trial shard's (SHARD) task dir (or with it, for
reduce trials), runs the command under a fault, judges what it left, applies the documented
fix (rerun `run-task`, then `reduce`), and compares the results with the clean run's, byte
for byte. Outcomes (tally.py):

- recovered: after the fault and the fix, the results equal the clean run's;
- detected: the fault was reported as one line naming the shard or file and the `virnuc-hpc`
  command that fixes it, and nothing wrong was published (the trial stops there);
- lost: anything else - a traceback, a hang, a death by another signal, an error without a
  shard/file or a fix, a DONE that does not verify, a result file that differs, a shard that
  status calls running with no process, temp files left after the fix.
"""

from __future__ import annotations

import re
import shutil
import signal
import time
from pathlib import Path
from typing import Callable

from tests.reliability import tally
from tests.reliability.zygote import Command, Ran
from virnuc_hpc.sequences import synthetic
from virnuc_hpc.plan import load_manifest
from virnuc_hpc.core.rundir import RunDir
from virnuc_hpc.views.status import shard_state
from virnuc_hpc.parts import read_done, verify_task

TIMEOUT_S = 300          # a command still running after this is a hang (lost)
PART_ROWS = 3            # many small parts: kills land mid-write
SHARD = 1                # the shard every task trial computes (the one with more parts)
RESULT_FILES = ("prediction_results.txt", "prediction_results_highestscore.csv",
                "predictions.tsv", "features_index.json", "samples.tsv")


def records():
    yield from synthetic.reads(14, 200, 1300, seed=7)
    yield "tooshort", "AC"


def study(folder: Path) -> Path:
    """Two samples rich in duplicate reads: within each sample, across them, and (in 2
    shards) across shards; a duplicate of a skipped read too. Its sheet."""
    reads = list(records())
    first = reads[:8] + [(f"again{k}", reads[k][1]) for k in (0, 1, 2, 14)]
    second = [(f"b{k}", seq) for k, (_, seq) in enumerate(reads[4:12])] + \
        [(f"twice{n}", reads[k][1]) for n, k in enumerate((0, 3, 9, 9))] + reads[12:]
    for name, rows in (("s1", first), ("s2", second)):
        synthetic.write_fasta(folder / f"{name}.fa", rows)
    sheet = folder / "samples.csv"
    sheet.write_text("sample,fasta\nS1,s1.fa\nS2,s2.fa\n")
    return sheet


class Bench:
    """The clean run, fresh copies of it, and the CLI in forked children."""

    def __init__(self, root: Path, cache: Path, features: str = "none", dups: bool = False):
        self.root, self.cache, self.serial = Path(root), Path(cache), 0
        self.features = features
        inputs = ["--samplesheet", study(self.root)] if dups else \
            [synthetic.write_fasta(self.root / "input.fa", records())]
        self.input = inputs[-1]
        self.config = self.root / "run.yaml"
        self.config.write_text(f"part_rows: {PART_ROWS}\nfeatures: {features}\n")
        self.clean = self.root / "clean"
        self._check(self.cli(["plan", *inputs, "--run-dir", self.clean, "--models", "tiny",
                              "--shards", "2", "--config", self.config]))
        started = time.monotonic()
        self._check(self.cli(["run-task", self.clean, "--index", SHARD]))
        self.task_s = time.monotonic() - started
        self._check(self.cli(["run-task", self.clean, "--index", 1 - SHARD]))
        self._check(self.cli(["reduce", self.clean]))
        self.results = result_bytes(self.clean)
        self.parts = len(read_done(RunDir(self.clean).task(SHARD).root)["parts"])

    @staticmethod
    def _check(ran: Ran) -> None:
        assert ran.code == 0, f"clean run failed: {ran.argv}\n{ran.log[-3000:]}"

    # -- commands -------------------------------------------------------------------------

    def env(self, faults: str | None = None, **extra) -> dict:
        return {"VIRNUC_HPC_CACHE": str(self.cache), "VIRNUC_HPC_FAULTS": faults,
                "VIRNUC_HPC_HEARTBEAT_S": "0.2", **extra}

    def start(self, argv: list, faults: str | None = None, **env) -> Command:
        self.serial += 1
        log = self.root / "logs" / f"{self.serial:05d}-{argv[0]}.log"
        log.parent.mkdir(exist_ok=True)
        return Command(argv, self.env(faults, **env), log)

    def cli(self, argv: list, faults: str | None = None, **env) -> Ran:
        return self.start(argv, faults, **env).wait(TIMEOUT_S)

    def fresh(self, name: str, keep_shard: bool = False) -> Path:
        """A copy of the clean run without its results (and without the trial shard's task dir)."""
        def ignore(directory, names):
            skip = {"results", "logs"} if Path(directory) == self.clean else set()
            if Path(directory) == self.clean / "tasks" and not keep_shard:
                skip.add(f"{SHARD:05d}")
            return skip & set(names)

        self.serial += 1
        dest = self.root / "trials" / f"{self.serial:05d}-{re.sub(r'[^A-Za-z0-9.-]+', '_', name)}"
        shutil.copytree(self.clean, dest, ignore=ignore, symlinks=True)
        return dest

    # -- judging --------------------------------------------------------------------------

    def problems(self, run: Path, ran: Ran, command: str) -> str | None:
        """What is wrong with how `ran` ended and what it left; None when all is as it may be."""
        return judge_exit(ran, command) or self.published_problem(run)

    def published_problem(self, run: Path) -> str | None:
        task = RunDir(run).task(SHARD)
        try:
            done = read_done(task.root)
        except Exception as exc:  # noqa: BLE001 - any failure to read is a finding
            return f"DONE unreadable: {exc}"
        if done is not None:
            problems = verify_task(task.root, load_manifest(run, SHARD).expectation())
            if problems:
                return f"a DONE that does not verify was published: {problems}"
        for name, data in result_bytes(run).items():
            if data and data != self.results.get(name):
                return f"results/{name} was published and differs from the clean run's"
        state = shard_state(run, SHARD)["state"]
        if state == "running":
            return "status calls the shard running, but no process runs it"
        if state == "done" and done is None:
            return "status calls the shard done without a DONE"
        return None

    def recover(self, run: Path) -> str | None:
        """The documented fix: rerun the task, then reduce. None when the results equal the
        clean run's; else why not."""
        for argv, command in ((["run-task", run, "--index", SHARD], "run-task"),
                              (["reduce", run, "--no-report"], "reduce")):
            ran = self.cli(argv)
            if ran.code != 0:
                return f"the fix `{command}` failed: exit {ran.code}: {tail(ran.log)}"
        if result_bytes(run) != self.results:
            return "results after the fix differ from the clean run's"
        leftovers = [p for p in run.rglob("*") if p.name.endswith(".tmp") or
                     p.name.startswith(".reduce-")]
        if leftovers:
            return f"temp files left after the fix: {[str(p) for p in leftovers]}"
        return None

    def outcome(self, name: str, problem: str | None, recovered: bool = True,
                kill: bool = False) -> str:
        """Count one trial: lost when `problem`, else recovered (or detected)."""
        if problem:
            return tally.record(name, "lost", problem, kill)
        return tally.record(name, "recovered" if recovered else "detected", kill=kill)

    # -- trials ---------------------------------------------------------------------------

    def task_trial(self, name: str, faults: str | None, expect: tuple[int, ...],
                   attempts: int = 1, kill_after: Callable[[], float] | None = None,
                   until_done: bool = False) -> list[str]:
        """Run the trial shard under `faults` (or SIGKILL it `kill_after()` s after its start)
        `attempts` times on one run dir (or until one completes, with `until_done`), then fix
        and compare; one trial per faulted attempt. A faulted attempt must end with a code in
        `expect` (a fault that never fires is a broken test, not a count)."""
        run, problem, faulted = self.fresh(name), None, 0
        for attempt in range(attempts):
            command = self.start(["run-task", run, "--index", SHARD], faults)
            ran = command.kill_after(kill_after()) if kill_after else command.wait(TIMEOUT_S)
            if (kill_after and not ran.killed) or (until_done and ran.code == 0):
                break                      # ended before the fault: not a fault trial
            faulted += 1
            assert ran.code in expect or ran.hung or "Traceback" in ran.log, \
                f"{name} attempt {attempt}: exit {ran.code}, expected {expect}: {tail(ran.log)}"
            problem = self.problems(run, ran, "run-task")
            if problem:
                break
        else:
            assert not until_done, f"{name}: still not complete after {attempts} attempts"
        if faulted:
            problem = problem or self.recover(run)
        kill = -signal.SIGKILL in expect
        return [self.outcome(f"{name}#{k}", problem, kill=kill) for k in range(faulted)]

    def reduce_trial(self, name: str, faults: str | None, expect: tuple[int, ...],
                     kill_after: float | None = None) -> str | None:
        run = self.fresh(name, keep_shard=True)
        command = self.start(["reduce", run], faults)
        ran = command.kill_after(kill_after) if kill_after else command.wait(TIMEOUT_S)
        if kill_after and not ran.killed:
            return None
        assert ran.code in expect or ran.hung or "Traceback" in ran.log, \
            f"{name}: exit {ran.code}, expected {expect}: {tail(ran.log)}"
        return self.outcome(name, self.problems(run, ran, "reduce") or self.recover(run),
                            kill=-signal.SIGKILL in expect)


def result_bytes(run: Path) -> dict[str, bytes]:
    """Every results file the trials compare, by its path under results/ (a study's sample
    folders included)."""
    results = RunDir(run).results
    found = {str(p.relative_to(results)): p.read_bytes() for p in sorted(results.rglob("*"))
             if p.name in RESULT_FILES and ".reduce-" not in str(p)}
    return found


def tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.splitlines()[-lines:])


def judge_exit(ran: Ran, command: str) -> str | None:
    """None when `ran` ended as a fault may end it: exit 0, SIGKILL (ours or the hook's), or
    exactly one error line naming a shard or file and the `virnuc-hpc` command that fixes
    it; else what is wrong."""
    if ran.hung:
        return f"hung for {TIMEOUT_S} s: {tail(ran.log)}"
    if "Traceback" in ran.log:
        return f"a traceback: {tail(ran.log)}"
    if ran.code in (0, -signal.SIGKILL):
        return None
    if ran.code < 0:
        return f"died of {signal.Signals(-ran.code).name}: {tail(ran.log)}"
    prefix = f"virnuc-hpc {command}: "
    errors = [line for line in ran.log.splitlines() if line.startswith(prefix)]
    if len(errors) != 1:
        return f"exit {ran.code} without one error line: {tail(ran.log)}"
    message = errors[0][len(prefix):]
    if not re.search(r"shard \d+|/", message):
        return f"the error names no shard or file: {errors[0]}"
    if "virnuc-hpc " not in message:
        return f"the error names no fixing command: {errors[0]}"
    return None

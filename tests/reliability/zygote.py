"""A zygote for fault trials: the real CLI in a forked child, without interpreter start-up.

multiprocessing's forkserver is the zygote: a parent started once that imports virnuc_hpc
and torch (PRELOAD) and computes nothing, then forks one child per command. The child sends
its output to a log file, takes the trial's environment (VIRNUC_HPC_FAULTS among it), and
calls `virnuc_hpc.cli.main(argv)`: the same code path as `virnuc-hpc ARGV` minus the ~2-3 s
of imports. Children are killed by PID (Process.kill) and reaped by the forkserver.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

PRELOAD = ["torch", "virnuc_hpc.cli", "virnuc_hpc.task.run", "virnuc_hpc.task.frames",
           "virnuc_hpc.reduce.merge", "virnuc_hpc.models.loaded", "virnuc_hpc.cli.run_task_cmd",
           "virnuc_hpc.cli.reduce_cmd", "virnuc_hpc.cli.status_cmd", "virnuc_hpc.views.report",
           "virnuc_hpc.pipeline.results",
           "virnuc_hpc.views.figures", "tests.reliability.zygote"]
_context = None


def context():
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(PRELOAD)
    return _context


def _child(argv: list[str], env: dict, log_path: str) -> None:
    """In the forked child: output to `log_path`, the trial's environment, then the CLI."""
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    for key, value in env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    import torch

    from virnuc_hpc.cli import main

    torch.set_num_threads(1)   # one core per trial on a loaded 2-core machine
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # a traceback is a finding: print it like the interpreter would
        import traceback

        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


@dataclass
class Ran:
    """How a command ended: its exit code (negative: the signal), whether we killed it."""

    argv: list[str]
    code: int
    log: str
    killed: bool = False
    hung: bool = False

    @property
    def stderr(self) -> str:
        return self.log


class Command:
    """One CLI command in a forked child."""

    def __init__(self, argv: list, env: dict, log_path: Path):
        self.argv, self.log_path = [str(a) for a in argv], Path(log_path)
        self.log_path.write_text("")
        self.process = context().Process(target=_child, args=(self.argv, env, str(log_path)))
        self.process.start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait(self, timeout: float | None = None) -> Ran:
        """Wait for the end; kill it (and say it hung) after `timeout` seconds."""
        self.process.join(timeout)
        hung = self.process.is_alive()
        if hung:
            self.process.kill()
            self.process.join()
        return Ran(self.argv, self.process.exitcode, self.log_path.read_text(), hung=hung)

    def kill_after(self, seconds: float) -> Ran:
        """SIGKILL at `seconds` after the start unless it ended first."""
        self.process.join(seconds)
        if self.process.is_alive():
            self.process.kill()
        self.process.join()
        killed = self.process.exitcode == -signal.SIGKILL  # it may have ended just before
        return Ran(self.argv, self.process.exitcode, self.log_path.read_text(), killed=killed)

    def wait_stopped(self, timeout: float = 120.0) -> bool:
        """True once the child stopped itself (the `stop` fault action)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.is_alive():
            try:
                state = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                return False
            if state == "T":
                return True
            time.sleep(0.02)
        return False

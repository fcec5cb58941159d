"""Stand-in for `virnuc-hpc run-task` / `reduce` in executor tests.

    fake_task.py OUT INDEX      run one "task": append an attempt record, act per OUT/mode/INDEX
    fake_task.py OUT reduce     "reduce": exit 0 only if every planned index has a DONE file

Modes (file OUT/mode/INDEX, default `ok`):
    ok            sleep OUT/sleep seconds (default 0), write OUT/tasks/INDEX/DONE
    fail          exit 3 without DONE
    suicide       kill itself with SIGKILL
    hang          run until SIGTERM/SIGUSR2, then exit 143 (no DONE)
    stubborn      ignore SIGTERM/SIGUSR2 and sleep until killed (a task stuck in a call)
    resume        first attempt: run until SIGTERM/SIGUSR2, write a part, exit 3;
                  a later attempt finds the part and writes DONE (like run-task's resume)
    slot          hold OUT/slots/<CUDA_VISIBLE_DEVICES> exclusively while sleeping
    barrier:J     wait (up to 30 s) until index J has started, else exit 4
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path


def record(out: Path, index: str, **extra) -> None:
    env = os.environ
    entry = {"index": int(index), "pid": os.getpid(), "time": time.time(),
             "cuda": env.get("CUDA_VISIBLE_DEVICES"), "array_job": env.get("SLURM_ARRAY_JOB_ID"),
             "array_task": env.get("SLURM_ARRAY_TASK_ID"), "job": env.get("SLURM_JOB_ID"),
             "restarts": env.get("SLURM_RESTART_COUNT", "0"), "argv0": env.get("FAKE_WRAPPED"),
             **extra}
    with open(out / "attempts.jsonl", "a") as handle:
        handle.write(json.dumps(entry) + "\n")


def done(out: Path, index: str) -> int:
    path = out / "tasks" / index
    path.mkdir(parents=True, exist_ok=True)
    (path / "DONE").write_text("ok\n")
    print(f"index {index} done", flush=True)
    return 0


def wait_for_signal(on_signal) -> None:
    for sig in (signal.SIGTERM, signal.SIGUSR2):
        signal.signal(sig, on_signal)
    while True:
        time.sleep(0.1)


def run_task(out: Path, index: str) -> int:
    mode_file = out / "mode" / index
    mode = mode_file.read_text().strip() if mode_file.exists() else "ok"
    record(out, index, mode=mode)
    (out / "started").mkdir(exist_ok=True)
    (out / "started" / index).touch()
    print(f"index {index} mode {mode} cuda {os.environ.get('CUDA_VISIBLE_DEVICES')}", flush=True)
    print(f"index {index} stderr line", file=sys.stderr, flush=True)
    sleep_file = out / "sleep"
    sleep_s = float(sleep_file.read_text()) if sleep_file.exists() else 0.0
    if mode == "fail":
        return 3
    if mode == "suicide":
        os.kill(os.getpid(), signal.SIGKILL)
    if mode == "hang":
        wait_for_signal(lambda s, f: sys.exit(143))
    if mode == "stubborn":
        wait_for_signal(lambda s, f: None)
    if mode == "resume":
        part = out / "tasks" / index / "part-0"
        if part.exists():
            return done(out, index)

        def write_part(signum, frame):
            part.parent.mkdir(parents=True, exist_ok=True)
            part.write_text(f"stopped by {signal.Signals(signum).name}\n")
            sys.exit(3)
        wait_for_signal(write_part)
    if mode == "slot":
        return hold_slot(out, index, sleep_s)
    if mode.startswith("barrier:"):
        peer = out / "started" / mode.split(":")[1]
        deadline = time.monotonic() + 30
        while not peer.exists():
            if time.monotonic() > deadline:
                return 4
            time.sleep(0.05)
    time.sleep(sleep_s)
    return done(out, index)


def hold_slot(out: Path, index: str, sleep_s: float) -> int:
    """Fail (exit 5) if another running task holds the same GPU id."""
    slots = out / "slots"
    slots.mkdir(exist_ok=True)
    slot = slots / str(os.environ.get("CUDA_VISIBLE_DEVICES"))
    try:
        fd = os.open(slot, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        print(f"GPU {slot.name} already in use", flush=True)
        return 5
    time.sleep(sleep_s)
    os.close(fd)
    os.unlink(slot)
    return done(out, index)


def reduce(out: Path) -> int:
    planned = int((out / "planned").read_text())
    missing = [i for i in range(planned) if not (out / "tasks" / str(i) / "DONE").exists()]
    with open(out / "reduce.jsonl", "a") as handle:
        handle.write(json.dumps({"missing": missing, "time": time.time()}) + "\n")
    if missing:
        print(f"refusing partial output: missing indices {missing}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    out_dir, what = Path(sys.argv[1]), sys.argv[2]
    sys.exit(reduce(out_dir) if what == "reduce" else run_task(out_dir, what))

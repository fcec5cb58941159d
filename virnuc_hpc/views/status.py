"""State of every array task of a run, from the files the tasks leave (no scheduler query).

States: `done` (DONE present and its parts intact), `corrupt` (DONE present but refused by
`reduce` (its REJECTED verdict), or a listed part or the accounting is missing or has another
size; with `deep=True` the full `verify_task`),
`running` (fresh heartbeat, no DONE), `failed` (a FAILED marker newer than the heartbeat, a
heartbeat gone stale without DONE, a last heartbeat (`ended`) without DONE, or - on the
heartbeat's own host - its process gone without DONE), `pending` (nothing yet).

Per sample (`by_sample`): shards fail, not samples, so a sample's progress is derived from
the states of the shards that hold its sequences, weighted by how many of its chunks each
holds (plan.json records that per shard): its share done, and a state (done when all those
shards are, failed or corrupt when one is, running when one runs, else pending).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections import Counter
from contextlib import contextmanager
from typing import Callable, Iterable

from ..core.errors import ConfigError, IntegrityError
from ..executors import backend_of_run
from ..plan import Plan, load_manifest, load_plan
from ..core.rundir import RunDir, TaskDir
from ..parts import read_done, read_failed, read_heartbeat, read_rejection, verify_task

STALE_AFTER_S = 300.0
STATES = ("pending", "running", "done", "failed", "corrupt")
RESUBMIT_STATES = frozenset({"pending", "failed", "corrupt"})
ENDED_STATES = frozenset({"done", "failed", "corrupt"})


def _done_problem(run: RunDir, index: int, done: dict, deep: bool) -> str | None:
    task = run.task(index)
    rejection = read_rejection(task)
    if rejection is not None:
        return "reduce refused it: " + "; ".join(rejection.get("problems") or ["(no reason)"])
    if deep:
        problems = verify_task(task, load_manifest(run, index).expectation())
        return "; ".join(problems) or None
    if not task.accounting.is_file():
        return "accounting.tsv missing"
    for entry in done.get("parts", []):
        path = task.part(entry["index"])
        if not path.is_file() or path.stat().st_size != entry.get("bytes"):
            return f"part {entry['index']} missing or truncated"
    return None


def _done_or_refusal(task: TaskDir) -> tuple[dict | None, str]:
    """The DONE record, or why it is refused (a symlink out, a path outside the run)."""
    try:
        return read_done(task), ""
    except IntegrityError as exc:
        return None, str(exc)


def process_gone(heartbeat: dict) -> bool:
    """True when the heartbeat's writer ran on this host and that process no longer exists
    (another host's processes cannot be checked: there only staleness tells)."""
    pid = heartbeat.get("pid")
    if heartbeat.get("host") != socket.gethostname() or not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _live_state(task: TaskDir, heartbeat: dict | None, now: float,
                stale_after: float) -> tuple[str, str]:
    failed = read_failed(task)
    beat = heartbeat.get("time", 0.0) if heartbeat else None
    if failed is not None and (beat is None or failed.get("time", 0.0) >= beat):
        return "failed", str(failed.get("reason", "FAILED marker"))
    if beat is None:
        return "pending", ""
    if heartbeat.get("ended"):
        return "failed", "the task ended without DONE"
    if process_gone(heartbeat):
        return "failed", f"task process {heartbeat['pid']} ended without DONE"
    if now - beat <= stale_after:
        return "running", ""
    return "failed", f"heartbeat stale for {now - beat:.0f} s without DONE (task killed?)"


def shard_state(run_dir: str | os.PathLike, index: int, plan: Plan | None = None,
                now: float | None = None, stale_after: float = STALE_AFTER_S,
                deep: bool = False) -> dict:
    """One shard's state record (see module doc)."""
    run = RunDir(run_dir)
    plan = plan or load_plan(run)
    now, task, shard = time.time() if now is None else now, run.task(index), plan.shards[index]
    heartbeat, (done, refused) = read_heartbeat(task), _done_or_refusal(task)
    if refused:
        state, reason = "corrupt", refused
    elif done is not None:
        problem = _done_problem(run, index, done, deep)
        state, reason = ("corrupt", problem) if problem else ("done", "")
    else:
        state, reason = _live_state(task, heartbeat, now, stale_after)
    heartbeat = heartbeat or {}
    rows_done, rows_total = heartbeat.get("rows_done"), heartbeat.get("rows_total")
    if state == "done":
        rows_done = rows_total = rows_total if rows_total is not None else done.get("rows")
    return {"index": index, "state": state, "reason": reason, "sequences": shard.sequences,
            "chunks": shard.chunks, "rows_done": rows_done, "rows_total": rows_total,
            "rate": heartbeat.get("rate") if state == "running" else None,
            "heartbeat_age_s": round(now - heartbeat["time"], 1) if "time" in heartbeat else None,
            "host": heartbeat.get("host"), "pid": heartbeat.get("pid"), "log": str(task.log)}


def task_states(run_dir: str | os.PathLike, now: float | None = None,
                stale_after: float = STALE_AFTER_S, deep: bool = False) -> list[dict]:
    """The state record of every shard of the plan, by index."""
    plan = load_plan(run_dir)
    now = time.time() if now is None else now
    shards = [shard_state(run_dir, s.index, plan, now, stale_after, deep) for s in plan.shards]
    return backend_of_run(run_dir).view(run_dir, shards)  # the scheduler's word, if it has one


def _fraction(shard: dict) -> float:
    if shard["state"] == "done":
        return 1.0
    if shard["state"] == "running" and shard["rows_total"]:
        return min(1.0, (shard["rows_done"] or 0) / shard["rows_total"])
    return 0.0


def totals(shards: list[dict]) -> dict:
    """Counts per state, progress in chunks, aggregate rate and an ETA (running tasks' rates,
    converted to chunks/s, over the chunks left; None when nothing runs)."""
    left = sum(s["chunks"] * (1 - _fraction(s)) for s in shards)
    chunk_rate = sum(s["rate"] * s["chunks"] / s["rows_total"] for s in shards
                     if s["state"] == "running" and s["rate"] and s["rows_total"])
    states = {state: sum(s["state"] == state for s in shards) for state in STATES}
    return {"shards": len(shards), **states,
            "sequences": sum(s["sequences"] for s in shards),
            "chunks": sum(s["chunks"] for s in shards),
            "chunks_done": round(sum(s["chunks"] * _fraction(s) for s in shards), 1),
            "rate_chunks_per_s": round(chunk_rate, 2) if chunk_rate else None,
            "eta_s": round(left / chunk_rate, 1) if chunk_rate else (0.0 if not left else None)}


def sample_progress(plan: Plan, shards: list[dict]) -> list[dict]:
    """Per sample of the plan: its sequences and chunks, the shards it depends on (those that
    compute its sequences, and the representatives of its duplicate reads), the share done
    (by sequences) and a state (see the module doc), from the shards' state records."""
    rows = [{"sample": s.name, "sequences": s.sequences, "chunks": s.chunks,
             "duplicates": s.duplicates, "shards": 0, "done_fraction": 0.0,
             "shard_states": Counter()} for s in plan.samples]
    for state, shard in zip(shards, plan.shards):
        needed = [(sample, n) for sample, n, _ in shard.samples] + \
            [(sample, n) for sample, n in shard.feeds]
        for sample in {sample for sample, _ in needed}:
            rows[sample]["shards"] += 1
            rows[sample]["shard_states"][state["state"]] += 1
        for sample, n in needed:
            rows[sample]["done_fraction"] += _fraction(state) * n / \
                max(plan.samples[sample].sequences, 1)
    for row in rows:
        row["done_fraction"] = round(min(1.0, row["done_fraction"]), 4)
        row["state"], row["shard_states"] = _sample_state(row["shard_states"]), \
            dict(sorted(row["shard_states"].items()))
    return rows


def _sample_state(states: Counter) -> str:
    if set(states) == {"done"}:
        return "done"
    for state in ("corrupt", "failed", "running"):
        if states[state]:
            return state
    return "pending"


def run_status(run_dir: str | os.PathLike, now: float | None = None,
               stale_after: float = STALE_AFTER_S, deep: bool = False,
               by_sample: bool = False) -> dict:
    """`{"shards": [{"index": 0, "state": "done", ...}], "totals": {...}}` (status --json),
    and `"samples": [...]` (`sample_progress`) with `by_sample`."""
    shards, plan = task_states(run_dir, now, stale_after, deep), load_plan(run_dir)
    report = {"shards": shards, "totals": totals(shards), "precision": plan.precision,
              "invariant": plan.config.invariant, "duplicates": plan.duplicate_count}
    if by_sample:
        report["samples"] = sample_progress(plan, shards)
    return report


def pending_indices(run_dir: str | os.PathLike, states: Iterable[str] = RESUBMIT_STATES,
                    deep: bool = False, now: float | None = None,
                    stale_after: float = STALE_AFTER_S) -> list[int]:
    """Indices whose state is in `states` (by default what `resubmit` reruns)."""
    wanted = set(states)
    unknown = wanted - set(STATES)
    if unknown:
        raise ValueError(f"unknown states {sorted(unknown)}; valid: {', '.join(STATES)}")
    states = task_states(run_dir, now, stale_after, deep)
    return [s["index"] for s in states if s["state"] in wanted]


def results_published(run_dir: str | os.PathLike) -> bool:
    """Whether RUN/results/ is what reduce published from the shards now on disk: summary.json
    (removed first, written last) is there and newer than every shard's DONE."""
    run, plan = RunDir(run_dir), load_plan(run_dir)
    if not run.summary.is_file():
        return False
    written = run.summary.stat().st_mtime_ns
    dones = [run.task(shard.index).done for shard in plan.shards]
    return all(done.is_file() and done.stat().st_mtime_ns <= written for done in dones)


def format_table(status: dict) -> str:
    """Plain-text status: one line per shard (per sample, when the status has samples), then
    the totals."""
    if "samples" in status:
        return "\n".join([*_sample_lines(status["samples"]), _total_line(status)])
    lines = [f"{'index':>6} {'state':<8} {'rows':>17} {'rate/s':>9} {'beat_age':>9}  log / reason"]
    for s in status["shards"]:
        rows = f"{s['rows_done'] if s['rows_done'] is not None else '-'}/" \
               f"{s['rows_total'] if s['rows_total'] is not None else '-'}"
        rate = f"{s['rate']:.1f}" if s["rate"] else "-"
        age = f"{s['heartbeat_age_s']:.0f}s" if s["heartbeat_age_s"] is not None else "-"
        lines.append(f"{s['index']:>6} {s['state']:<8} {rows:>17} {rate:>9} {age:>9}  "
                     f"{s['reason'] or s['log']}")
    return "\n".join([*lines, _total_line(status)])


def _total_line(status: dict) -> str:
    t = status["totals"]
    eta = "-" if t["eta_s"] is None else f"{t['eta_s']:.0f} s"
    precision = f"; precision {status['precision']}" if "precision" in status else ""
    if status.get("invariant") is False:
        precision += "; length-sorted batches (--no-invariant)"
    dups = f"; {status['duplicates']:,} duplicate reads computed once" \
        if status.get("duplicates") else ""
    return (f"total: {t['shards']} shards, " + ", ".join(f"{t[k]} {k}" for k in STATES)
            + f"; {t['chunks_done']:.0f}/{t['chunks']} chunks; ETA {eta}{precision}{dups}")


def _sample_lines(samples: list[dict]) -> list[str]:
    width = max([6, *(len(s["sample"]) for s in samples)])
    lines = [f"{'sample':<{width}} {'sequences':>11} {'shards':>7} {'done':>7}  state "
             "(shards by state)"]
    for s in samples:
        spread = ", ".join(f"{n} {state}" for state, n in s["shard_states"].items())
        lines.append(f"{s['sample']:<{width}} {s['sequences']:>11,} {s['shards']:>7} "
                     f"{100 * s['done_fraction']:>6.1f}%  {s['state']} ({spread})")
    return lines


def finished(status: dict) -> bool:
    """Every shard done, failed or corrupt: nothing is left to wait for."""
    return all(shard["state"] in ENDED_STATES for shard in status["shards"])


def watch(run_dir: str | os.PathLike, every: float, show: Callable[[dict], None],
          deep: bool = False, sleep: Callable[[float], None] = time.sleep,
          by_sample: bool = False) -> dict:
    """Call `show(run_status(...))` every `every` seconds until `finished`; the last status."""
    while True:
        status = run_status(run_dir, deep=deep, by_sample=by_sample)
        show(status)
        if finished(status):
            return status
        sleep(every)


def show(run_dir: str | os.PathLike, as_json: bool = False, by_sample: bool = False,
         deep: bool = False, every: float | None = None) -> int:
    """`status`: the table (or JSON) once; with `every`, redrawn every so many seconds until
    the run ends (0 when every shard is done, else 1)."""
    if every is None:
        report = run_status(run_dir, deep=deep, by_sample=by_sample)
        print(json.dumps(report, indent=1) if as_json else format_table(report))
        return 0
    if every <= 0:
        raise ConfigError(f"--watch must be a positive number of seconds, got {every}")
    with _display(run_dir, every, as_json) as display:
        final = watch(run_dir, every, display, deep=deep, by_sample=by_sample)
    return 0 if all(s["state"] == "done" for s in final["shards"]) else 1


@contextmanager
def _display(run_dir, every: float, as_json: bool):
    """JSON lines with --json; on a terminal one table redrawn in place; elsewhere a
    timestamped table each time."""
    def text(report: dict) -> str:
        return (f"{run_dir} at {time.strftime('%H:%M:%S')}, every {every:g} s "
                f"(Ctrl-C stops watching; the run goes on)\n{format_table(report)}")

    if as_json:
        yield lambda report: print(json.dumps(report), flush=True)
    elif not sys.stdout.isatty():
        yield lambda report: print(text(report) + "\n", flush=True)
    else:
        from rich.live import Live
        from rich.text import Text

        with Live(auto_refresh=False) as live:
            yield lambda report: live.update(Text(text(report)), refresh=True)

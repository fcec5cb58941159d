"""Fault injection at named points: a testing hook, not a user feature.

Code calls `fault_point(name, target)` where a crash or an I/O error matters (see POINTS). When
the environment variable VIRNUC_HPC_FAULTS is unset or empty, a call is one dictionary lookup
and does nothing else. When it is set, it holds comma-separated rules

    PATTERN=ACTION[@N]

and a rule fires on the N-th call (default 1, counted per rule and per process) whose
`name:target` matches PATTERN (fnmatch; a rule without `:` matches the name alone, whatever
the target). Targets are file paths (for the fsio points) or short labels. Actions:

    kill     SIGKILL this process (a node dies, the OOM killer strikes)
    term     SIGTERM this process; usr2: SIGUSR2 (the scheduler's warnings); stop: SIGSTOP
             (a test changes something, then sends SIGCONT)
    enospc   raise OSError(ENOSPC); eio: OSError(EIO); erofs: OSError(EROFS)
    hang     sleep for an hour (a stuck file system); slow: sleep half a second (a slow
             node: a test that must catch a task while it runs)

`@N+` fires on the N-th call and every later one (an error that persists, a full disk).

Points (name: target):

    create: path      fsio, before the temp file beside `path` is created
    write: path       fsio, the temp file written, before its fsync
    rename: path      fsio, fsynced, before the rename over `path`
    part.writing: path store, a part serialized, before its file is written (in the task's
                      writer thread, while the encoders run the next part)
    part.written: path store, a part published, before its sidecar
    models.load: kind  models, verified, before the loader reads the files
    models.loaded: -  task, every model loaded, before the first part
    embed.batch: model embed, after each batch
    prefetch.part: k   task, part k tokenized, before the producer thread hands it over
    task.parts_done: -  task, after the last part, before the accounting and DONE
    reduce.shard: index reduce, after each shard's extraction, before the merge
    reduce.merged: -   reduce, results merged, before the highest-score table

This module never imports torch.
"""

from __future__ import annotations

import errno
import os
import signal
import threading
import time
from fnmatch import fnmatchcase

ENV = "VIRNUC_HPC_FAULTS"
POINTS = ("create", "write", "rename", "part.writing", "part.written", "models.load",
          "models.loaded", "embed.batch", "prefetch.part", "task.parts_done", "reduce.shard",
          "reduce.merged")
SIGNALS = {"kill": signal.SIGKILL, "term": signal.SIGTERM, "usr2": signal.SIGUSR2,
           "stop": signal.SIGSTOP}
ERRNOS = {"enospc": errno.ENOSPC, "eio": errno.EIO, "erofs": errno.EROFS}
ACTIONS = (*SIGNALS, *ERRNOS, "hang", "slow")

_state: dict = {"spec": None, "rules": [], "hits": []}
_lock = threading.Lock()  # a task's threads (producer, writer, heartbeat) count as one


class FaultSpecError(ValueError):
    """VIRNUC_HPC_FAULTS is malformed."""


def parse(spec: str) -> list[tuple[str, str, int, bool]]:
    """Rules (pattern, action, n, repeat) of a VIRNUC_HPC_FAULTS value."""
    rules = []
    for item in filter(None, (part.strip() for part in spec.split(","))):
        pattern, _, action = item.rpartition("=")
        action, _, count = action.partition("@")
        repeat = count.endswith("+")
        count = count.rstrip("+") or "1"
        if not pattern or action not in ACTIONS or not count.isdigit() or int(count) < 1:
            raise FaultSpecError(f"{ENV}: bad rule {item!r}; expected PATTERN=ACTION[@N[+]] "
                                 f"with ACTION one of {', '.join(ACTIONS)}")
        rules.append((pattern, action, int(count), repeat))
    return rules


def fault_point(name: str, target: object = "") -> None:
    """Fire the matching rule of VIRNUC_HPC_FAULTS, if any (see the module doc)."""
    spec = os.environ.get(ENV)
    if spec:
        _fire(spec, name, str(target))


def _rules(spec: str) -> list[tuple[str, str, int, bool]]:
    if _state["spec"] != spec:  # a new value (a forked test child sets its own) restarts counts
        rules = parse(spec)
        _state.update(spec=spec, rules=rules, hits=[0] * len(rules))
    return _state["rules"]


def _fire(spec: str, name: str, target: str) -> None:
    with _lock:
        actions = [action for k, (pattern, action, n, repeat) in enumerate(_rules(spec))
                   if _counted(k, f"{name}:{target}" if ":" in pattern else name, pattern, n,
                               repeat)]
    for action in actions:
        _act(action, name, target)


def _counted(k: int, subject: str, pattern: str, n: int, repeat: bool) -> bool:
    """Count a call that matches rule `k`; True when the rule fires on it."""
    if not fnmatchcase(subject, pattern):
        return False
    _state["hits"][k] += 1
    return _state["hits"][k] == n or (repeat and _state["hits"][k] > n)


def _act(action: str, name: str, target: str) -> None:
    if action in SIGNALS:
        os.kill(os.getpid(), SIGNALS[action])
    elif action in ERRNOS:
        code = ERRNOS[action]
        raise OSError(code, f"{os.strerror(code)} (injected at {name})", target or None)
    else:
        time.sleep(3600 if action == "hang" else 0.5)

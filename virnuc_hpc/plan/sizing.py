"""How many shards: by GPU time (the default), or as the user asked (`--shards`, `--sequences-
per-shard`).

A shard is one array task. Its estimated time is a fixed start-up (`TASK_OVERHEAD_S`: the
process, imports, the model load, reading its shard) plus its ESM-2 3B work at the run's
precision (throughput.esm_rate: a `bench` measurement when one was recorded, else the goal).
By default `plan` cuts the work into tasks of `task_minutes` (45), never more than 80 % of the
target's time limit, and, when there is enough work, into at least as many tasks as the
target runs at once (`array_parallelism`, the local `--parallel`) so that no GPU idles; each
such task keeps at least `MIN_TASK_S` of work, so a small input gets one or a few shards.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .devices import Target
from ..core.errors import ConfigError

DEFAULT_TASK_MINUTES = 45.0
TASK_OVERHEAD_S = 60.0   # start-up, imports, model load, the shard's first read
LIMIT_MARGIN = 0.8       # a task plans for at most 80 % of its time limit
MIN_TASK_S = 300.0       # below this much work per task, more tasks only add start-ups
FRAMES_PER_CHUNK = {300: 1.27, 500: 0.78}  # docs/workload.md, bacterial reads (upper figure)


@dataclass(frozen=True)
class Work:
    """What the run must compute: ESM tokens and GPU seconds, for `chunks` chunks covering
    `bases` bases at `residues_per_s`."""

    tokens: int
    seconds: float

    @classmethod
    def of(cls, chunks: int, bases: int, chunk_size: int, residues_per_s: float) -> "Work":
        tokens = round(FRAMES_PER_CHUNK[chunk_size] * (bases / 3 + 2 * chunks))
        return cls(tokens, tokens / residues_per_s)

    @property
    def hours(self) -> float:
        return self.seconds / 3600


def task_minutes(work_seconds: float) -> float:
    """A task's estimated wall minutes: start-up plus its work."""
    return (TASK_OVERHEAD_S + work_seconds) / 60


def work_budget_s(target: Target) -> float:
    """The work one task may hold: its target minutes, within the margin of the time limit."""
    minutes = target.task_minutes if target.task_minutes is not None else DEFAULT_TASK_MINUTES
    if minutes <= 0:
        raise ConfigError(f"--task-minutes must be positive, got {minutes}")
    if target.time_limit_min is not None:
        minutes = min(minutes, target.time_limit_min * LIMIT_MARGIN)
    return max(minutes * 60 - TASK_OVERHEAD_S, 60.0)


def shards_by_time(work: Work, sequences: int, target: Target) -> int:
    """Tasks of at most the work budget; at least `parallelism` of them when each keeps
    `MIN_TASK_S` of work; never more than there are sequences."""
    by_time = math.ceil(work.seconds / work_budget_s(target))
    busy = min(target.parallelism, int(work.seconds // MIN_TASK_S))
    return max(1, min(max(by_time, busy), sequences))


@dataclass(frozen=True)
class Sizing:
    """How to size the shards: for `target`, unless `shards` or `per_shard` is given."""

    target: Target
    shards: int | None = None
    per_shard: int | None = None

    @property
    def explicit(self) -> bool:
        return self.shards is not None or self.per_shard is not None


def shard_count(sequences: int, work: Work, sizing: Sizing) -> int:
    """Explicit `--shards` / `--sequences-per-shard` win; otherwise by GPU time."""
    shards, per_shard = sizing.shards, sizing.per_shard
    if shards is not None and per_shard is not None:
        raise ConfigError("give either --shards or --sequences-per-shard, not both")
    for name, value in (("--shards", shards), ("--sequences-per-shard", per_shard)):
        if value is not None and value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value}")
    if not sizing.explicit:
        return shards_by_time(work, max(sequences, 1), sizing.target)
    wanted = shards if shards is not None else math.ceil(sequences / per_shard)
    return max(1, min(wanted, sequences))


def describe(sizing: Sizing) -> str:
    """How the shards were sized, for the plan's table."""
    target = sizing.target
    if sizing.explicit:
        return "as asked (--shards / --sequences-per-shard)"
    limit = (f", within {LIMIT_MARGIN:.0%} of the {target.time_limit_min}-minute time limit"
             if target.time_limit_min is not None else "")
    minutes = target.task_minutes if target.task_minutes is not None else DEFAULT_TASK_MINUTES
    return (f"by GPU time: tasks of at most {minutes:g} minutes ({TASK_OVERHEAD_S:.0f} s of "
            f"start-up included){limit}; at least {target.parallelism} task(s) at once on "
            f"{target.where} when each keeps {MIN_TASK_S / 60:.0f} minutes of work")


def over_limit(minutes: list[float], limit_min: int | None) -> list[int]:
    """Indices of the shards whose estimate exceeds `limit_min`."""
    if limit_min is None:
        return []
    return [i for i, m in enumerate(minutes) if m > limit_min]


TASK_MEM_MB = {"real": 64_000, "tiny": 4_000}  # host memory a task asks for: ESM-2 3B's load
#                                                (jobs/slurm.yaml's 64G), or the tiny models


def task_memory_mb(profile: str) -> int:
    """The host memory (MB) one task of a run of `profile` asks a scheduler for."""
    return TASK_MEM_MB.get(profile, TASK_MEM_MB["real"])

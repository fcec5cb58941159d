"""How a task computes: the run's options as planned (core.config.RunConfig, read from
plan.json once) and this process's own (its device, heartbeat and prefetch)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..core.config import RunConfig
from ..core.errors import ConfigError
from ..core.shapes import Shapes
from ..plan import load_plan

PREFETCH_ENV = "VIRNUC_HPC_PREFETCH"
HEARTBEAT_ENV = "VIRNUC_HPC_HEARTBEAT_S"


@dataclass(frozen=True)
class TaskOptions:
    """The run's options (`config`) and this process's: the device, the heartbeat interval
    and how many parts are prepared ahead of (and published behind) the encoders."""

    config: RunConfig = field(default_factory=RunConfig)
    device: str = "cpu"
    heartbeat_s: float = 5.0
    prefetch: int = 1  # parts queued ahead of (and behind) the encoders; 0: one thread

    @property
    def precision(self) -> str:
        return self.config.precision

    @property
    def shapes(self) -> Shapes | None:
        return self.config.shapes

    def __getattr__(self, name: str):
        """The run's other options read as the task's (`options.part_rows`, ...)."""
        if name.startswith("_") or name == "config":
            raise AttributeError(name)
        return getattr(self.config, name)


def task_options(run_dir, device: str = "auto") -> TaskOptions:
    """This run's options, from its plan; `auto` takes the GPU this process was given."""
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    heartbeat = float(os.environ.get(HEARTBEAT_ENV, TaskOptions.heartbeat_s))
    return TaskOptions(load_plan(run_dir).config, device, heartbeat, prefetch_depth())


def prefetch_depth() -> int:
    """`VIRNUC_HPC_PREFETCH`: parts queued ahead of and behind the encoders (default 1);
    0 runs every step in the main thread, the sequential reference (the same bytes)."""
    value = os.environ.get(PREFETCH_ENV, "").strip() or str(TaskOptions.prefetch)
    if not value.isdigit():
        raise ConfigError(f"{PREFETCH_ENV}={value!r}: expected a number of parts >= 0 "
                          "(0: no overlap)")
    return int(value)

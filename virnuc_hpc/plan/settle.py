"""Settling a run's options for where its tasks run: the options of a config file and the
command's flags, then what was left to `auto` (the precision) or to the target (the fixed
shapes), decided for a `devices.Target`; a planned run keeps what it settled."""

from __future__ import annotations

from pathlib import Path

from ..core.config import PRECISION_CHOICES, RunConfig, read_options
from ..core.errors import ConfigError
from ..core.shapes import CPU_SHAPES, GPU_SHAPES, Shapes
from .devices import Settled, Target, settle_precision


def load_config(path: str | Path | None = None, target: Target | None = None,
                **overrides) -> RunConfig:
    """Options from a YAML file, with non-None keyword overrides (the CLI's flags) winning;
    `precision: auto` (or none given) settles for `target` (None: this machine, a CPU)."""
    return settle_config(path, target, **overrides)[0]


def settle_config(path: str | Path | None = None, target: Target | None = None,
                  recorded: RunConfig | None = None, **overrides) -> tuple[RunConfig, Settled]:
    """(RunConfig, Settled): the options, and the precision with why it was chosen. What was
    not given is settled for `target`: the precision and the fixed shapes; `recorded` (a
    planned run's options) keeps what that run settled."""
    data = read_options(path)
    data.update({k: v for k, v in overrides.items() if v is not None})
    requested = data.pop("precision", None)
    if requested not in (None, *PRECISION_CHOICES):
        raise ConfigError(f"precision {requested!r} is not one of {', '.join(PRECISION_CHOICES)}"
                          " (--precision or `precision:` in the config)")
    target = target or Target("this machine")
    if requested in (None, "auto") and recorded is not None:
        settled = Settled(recorded.precision, "as planned")
    else:
        settled = settle_precision(requested, target)
    shapes = settle_shapes(target, recorded)
    for name in ("chunk_tokens", "group_tokens"):
        data.setdefault(name, getattr(shapes, name))
    return RunConfig.from_dict({**data, "precision": settled.precision}), settled


def settle_shapes(target: Target, recorded: RunConfig | None = None) -> Shapes:
    """The fixed shapes for where the tasks run (GPU or CPU), or those a planned run kept."""
    if recorded is not None:
        return Shapes(recorded.chunk_tokens, recorded.group_tokens)
    return GPU_SHAPES if target.uses_gpus else CPU_SHAPES

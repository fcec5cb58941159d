"""The backends by name: the built-in ones (`local`, `slurm`) and any a user registers.

    register(MyBackend())               # a scheduler of one's own (see base.Backend)
    backend("slurm").check(profile)     # a profile's backend
    backend_of_run(run_dir).busy(run)   # the backend a run was submitted with (submit.json)

The built-ins are imported when first asked for (SLURM's needs submitit only then)."""

from __future__ import annotations

import importlib
from pathlib import Path

from ..core.errors import ConfigError
from .base import Backend, read_record

BUILT_IN = {"local": ".local", "slurm": ".slurm"}
_backends: dict[str, Backend] = {}


def register(backend: Backend) -> Backend:
    """Make `backend` available under its name (profiles' `executor:`), replacing any."""
    if not backend.name:
        raise ConfigError("a backend needs a name")
    _backends[backend.name] = backend
    return backend


def unregister(name: str) -> None:
    """Forget a backend registered with `register` (a built-in comes back when asked for)."""
    _backends.pop(name, None)


def names() -> list[str]:
    """Every backend a profile may name."""
    return sorted({*BUILT_IN, *_backends})


def backend(name: str) -> Backend:
    if name not in _backends and name in BUILT_IN:
        register(importlib.import_module(BUILT_IN[name], __package__).BACKEND)
    if name not in _backends:
        raise ConfigError(f"executor {name!r} is not one of {', '.join(names())}")
    return _backends[name]


def backend_of_run(run_dir: str | Path) -> Backend:
    """The backend RUN was last submitted with; `local` for a run never submitted."""
    return backend((read_record(run_dir) or {}).get("executor", "local"))

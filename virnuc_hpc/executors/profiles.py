"""Submit profiles: `jobs/<name>.yaml` (slurm, apptainer, local) validated once, CLI overrides win.

A profile says where array tasks run (`executor:`, a backend's name: registry.py), what each
asks the scheduler for (the keys its backend reads), and optionally a container (`image`,
`cache`) that wraps every task command:
`apptainer exec --nv -B CACHE:/models:ro -B RUN IMAGE virnuc-hpc run-task RUN --index I`.
The container command itself comes from $VIRNUC_CONTAINER_CMD (default `apptainer`).
"""

from __future__ import annotations

import math
import os
import re
import shlex
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import yaml

from ..core.errors import ConfigError
from .registry import backend, names

CONTAINER_KEYS = ("image", "cache")
INT_KEYS = ("gpus_per_task", "cpus_per_task", "array_parallelism", "signal_delay_s",
            "max_requeues", "parallel")
CONTAINER_MODELS = "/models"
REPO_JOBS = Path(__file__).resolve().parents[2] / "jobs"


@dataclass(frozen=True)
class Profile:
    name: str
    executor: str = "slurm"
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    time: int = 240                      # minutes (parsed from SLURM's time formats)
    gpus_per_task: int = 1
    cpus_per_task: int | None = None
    mem: str | None = None
    array_parallelism: int = 64
    signal_delay_s: int = 120            # USR2 this long before the time limit: finish the part
    max_requeues: int = 3                # timeouts survived by requeueing
    parallel: int | None = None          # local: tasks at once (None: one per GPU)
    gpus: tuple[str, ...] | None = None  # local: GPU ids (None: detect)
    image: str | None = None             # container image (.sif); None: no container
    cache: str | None = None             # model cache bound read-only at /models
    source: str = field(default="", compare=False)

    def to_json(self) -> dict:
        data = asdict(self)
        data["gpus"] = list(self.gpus) if self.gpus is not None else None
        return data

    def with_overrides(self, **overrides) -> "Profile":
        """CLI values win; None means "not given"."""
        given = {k: v for k, v in overrides.items() if v is not None}
        valid = valid_keys(self.executor)
        unknown = sorted(set(given) - set(valid))
        if unknown:
            raise ConfigError(f"option(s) {', '.join(unknown)} do not apply to the {self.name} "
                              f"profile (executor {self.executor}); valid: "
                              f"{', '.join(valid[1:])}")
        return _validated(replace(self, **_parse_values(given, self.source or "command line")))

    def wrap(self, run_dir: str | Path, inner: list[str]) -> list[str]:
        """The container command around `inner` (`virnuc-hpc ...` inside the image). Only the
        run dir and the model cache are bound: tasks read the run's own copy of the
        sequences, never the inputs."""
        if self.image is None:
            return inner
        cache = Path(self.cache or _default_cache()).expanduser().resolve()
        wrapper = shlex.split(os.environ.get("VIRNUC_CONTAINER_CMD", "apptainer"))
        binds = ["-B", f"{cache}:{CONTAINER_MODELS}:ro", "-B", str(Path(run_dir).resolve())]
        return [*wrapper, "exec", "--nv", *binds, "--env",
                f"VIRNUC_HPC_CACHE={CONTAINER_MODELS}", self.image, *inner]


def _default_cache() -> str:
    return os.environ.get("VIRNUC_HPC_CACHE", "~/.cache/virnuc_hpc")


def available_profiles() -> list[str]:
    names = {p.stem for d in _search_dirs() if d.is_dir() for p in d.glob("*.yaml")}
    return sorted(names)


def _search_dirs() -> list[Path]:
    return [Path.cwd() / "jobs", REPO_JOBS]


def find_profile(name: str) -> Path:
    """A path to a YAML file, or a name looked up as jobs/<name>.yaml (cwd, then the package's)."""
    direct = Path(name).expanduser()
    if direct.suffix in (".yaml", ".yml") or direct.is_file():
        if not direct.is_file():
            raise ConfigError(f"profile file {direct} does not exist")
        return direct
    for folder in _search_dirs():
        if (folder / f"{name}.yaml").is_file():
            return folder / f"{name}.yaml"
    raise ConfigError(f"unknown profile {name!r}; valid profiles: "
                      f"{', '.join(available_profiles()) or '(none found)'} "
                      f"(or give a path to a YAML file)")


def load_profile(name: str, **overrides) -> Profile:
    """Read and validate a profile, then apply the CLI overrides (None = not given)."""
    path = find_profile(name)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc}); fix the file") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a profile is a mapping of keys to values")
    return profile_from_dict(data, name=path.stem, source=str(path)).with_overrides(**overrides)


def valid_keys(executor: str) -> tuple[str, ...]:
    """The keys a profile of `executor` may set: its backend's, and the container's."""
    return ("executor", *backend(executor).profile_keys, *CONTAINER_KEYS)


def profile_from_dict(data: dict, name: str = "custom", source: str = "") -> Profile:
    executor = data.get("executor", "slurm")
    if executor not in names():
        raise ConfigError(f"{source or name}: executor {executor!r} is not one of "
                          f"{', '.join(names())}")
    valid = valid_keys(executor)
    unknown = sorted(set(data) - set(valid))
    if unknown:
        raise ConfigError(f"{source or name}: unknown key(s) {', '.join(unknown)} for executor "
                          f"{executor}; valid keys: {', '.join(valid)}")
    values = _parse_values({k: v for k, v in data.items() if v is not None}, source or name)
    return _validated(Profile(name=name, source=source, **values))


def _parse_values(data: dict, where: str) -> dict:
    out = dict(data)
    for key in INT_KEYS:
        if key in out:
            out[key] = _as_int(out[key], key, where)
    if "time" in out:
        out["time"] = parse_time_minutes(out["time"], where)
    if "gpus" in out:
        gpus = out["gpus"]
        gpus = gpus.split(",") if isinstance(gpus, str) else gpus
        out["gpus"] = tuple(str(g).strip() for g in gpus if str(g).strip())
    for key in ("partition", "account", "qos", "mem", "image", "cache"):
        if key in out:
            out[key] = str(out[key])
    return out


def _as_int(value, key: str, where: str) -> int:
    if isinstance(value, bool) or not re.fullmatch(r"\d+", str(value).strip()):
        raise ConfigError(f"{where}: {key} must be a whole number >= 0, got {value!r}")
    return int(value)


def _validated(p: Profile) -> Profile:
    where = p.source or p.name
    positive = {"array_parallelism": p.array_parallelism, "time": p.time,
                "cpus_per_task": p.cpus_per_task, "parallel": p.parallel}
    for key, value in positive.items():
        if value is not None and value < 1:
            raise ConfigError(f"{where}: {key} must be at least 1, got {value}")
    if p.mem is not None and not re.fullmatch(r"\d+[KMGT]?B?", p.mem, re.IGNORECASE):
        raise ConfigError(f"{where}: mem {p.mem!r} is not a SLURM size; use e.g. 32G or 16000M")
    if p.cache is not None and p.image is None:
        raise ConfigError(f"{where}: cache is only used with image (the container); set image "
                          f"or remove cache")
    return p


TIME_FORMATS = "MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS"


def parse_time_minutes(value, where: str = "time") -> int:
    """SLURM's time formats -> whole minutes (rounded up)."""
    text = str(value).strip()
    match = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text)
    if match is None or isinstance(value, bool):
        raise ConfigError(f"{where}: time {value!r} is not a SLURM time; use {TIME_FORMATS}")
    days, a, b, c = (int(x) if x is not None else None for x in match.groups())
    if days is not None:            # D-HH[:MM[:SS]]
        seconds = days * 86400 + a * 3600 + (b or 0) * 60 + (c or 0)
    elif c is not None:             # HH:MM:SS
        seconds = a * 3600 + b * 60 + c
    elif b is not None:             # MM:SS
        seconds = a * 60 + b
    else:                           # MM
        seconds = a * 60
    return math.ceil(seconds / 60)

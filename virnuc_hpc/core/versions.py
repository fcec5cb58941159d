"""The versions that matter, in nf-core's `versions.yml` convention, read without importing.

`virnuc-hpc --version` prints `versions_yaml()`, and `reduce` writes the same text to
RUN/results/versions.yml (the versions of the environment that ran reduce: the interpreter or
image that ran the tasks). Versions come from the installed distributions' metadata
(`importlib.metadata`), so neither torch nor transformers nor esm is imported.
"""

from __future__ import annotations

import platform
from functools import lru_cache
from importlib import metadata

GROUP = "virnuc_hpc"
PACKAGES = ("virnuc-hpc", "torch", "transformers", "fair-esm")


def package_version(name: str) -> str:
    """The installed version of distribution `name`, or "not installed"."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


@lru_cache(maxsize=1)
def _installed() -> tuple[tuple[str, str], ...]:
    return tuple((name, package_version(name)) for name in PACKAGES)


def tool_versions() -> dict[str, str]:
    """virnuc-hpc, python, torch, transformers, fair-esm -> version, in that order (read once
    per process: what is installed does not change under a running process)."""
    found = dict(_installed())
    return {"virnuc-hpc": found.pop("virnuc-hpc"), "python": platform.python_version(), **found}


def versions_yaml(group: str = GROUP) -> str:
    """`group:` then one `    tool: version` line per tool (nf-core's versions.yml; an nf-core
    module puts `"${task.process}":` in place of the first line)."""
    return f"{group}:\n" + "".join(f"    {k}: {v}\n" for k, v in tool_versions().items())

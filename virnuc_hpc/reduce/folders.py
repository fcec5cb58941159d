"""Task folders written outside the run dir (`reduce RUN --tasks PATH ...`): each found by
the shard its DONE names, and refused when DONE belongs to another run."""

from __future__ import annotations

import os
from pathlib import Path

from ..core.errors import IntegrityError, UserError
from ..core.rundir import TaskDir
from ..parts import read_done
from ..plan import Plan


def task_folders(paths: list[str | os.PathLike], plan: Plan) -> dict[int, Path]:
    """Shard index -> folder, for every PATH that is a finished task's folder (it holds DONE)
    or a folder of them (RUN/tasks/, a workflow's tasks/). A subfolder without DONE is left
    out, so reduce names its shard as not done."""
    found: dict[int, Path] = {}
    for path in map(Path, paths):
        if not path.is_dir():
            raise UserError(f"--tasks {path}: no such folder")
        folders = [path] if TaskDir(path).done.exists() else \
            sorted(p for p in path.iterdir() if TaskDir(p).done.exists())
        if not folders:
            raise UserError(f"--tasks {path}: no finished task in it (no DONE); run its "
                            "shards first (`virnuc-hpc run-task INPUTS --index I --out DIR`)")
        for folder in folders:
            index = _shard_of(folder, plan)
            if index in found and found[index].resolve() != folder.resolve():
                raise UserError(f"shard {index}: two task folders, {found[index]} and {folder}; "
                                "give one")
            found[index] = folder
    return found


def _shard_of(folder: Path, plan: Plan) -> int:
    """The shard whose task wrote `folder`, checked against the run's plan."""
    try:
        done = read_done(folder) or {}
    except IntegrityError as exc:
        raise UserError(f"--tasks {folder}: {exc}") from None
    index, planned = done.get("shard"), done.get("plan")
    if not isinstance(index, int) or planned is None:
        raise UserError(f"--tasks {folder}: its DONE names no shard (written by an older "
                        "virnuc-hpc); rerun that shard")
    if planned != plan.fingerprint:
        raise UserError(f"--tasks {folder}: the task of shard {index} of another run (plan "
                        f"{str(planned)[:12]}, this run's is {plan.fingerprint[:12]}); give "
                        "this run's task folders")
    if not 0 <= index < len(plan.shards):
        raise UserError(f"--tasks {folder}: the task of shard {index}, and this run has "
                        f"shards 0 to {len(plan.shards) - 1} (the study planned otherwise); "
                        "give this run's task folders")
    return index

"""What a task's files hold and how they are named: the part format (tensors, dtypes, widths),
frame IDs, JSON records (DONE, sidecars) read safely. Shared by the writer, the markers and the
verification; what `reduce` and `status` rely on."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from ..core.errors import IntegrityError
from ..core.fsio import sha256_bytes
from ..core.rundir import TaskDir, check_record_paths, parse_index

FORMAT = 1
TENSORS = ("dnabert", "esm", "scores")
LEGACY_FEATURES = "fp32"  # what parts and DONEs written before the choice existed kept
FEATURE_DTYPES = {"fp32": np.dtype(np.float32), "fp16": np.dtype(np.float16)}
SCORES_DTYPE = np.dtype(np.float32)
PartHook = Callable[[int, Sequence[str], Mapping[str, np.ndarray]], None]
FRAME_SUFFIX = re.compile(r"_chunk_([1-9][0-9]*)[FR][123]\Z")
def ids_digest(ids: Iterable[str]) -> str:
    """sha256 of the IDs, one per line: the same digest wherever IDs are compared."""
    return sha256_bytes("".join(f"{i}\n" for i in ids).encode())


def json_bytes(obj) -> bytes:
    return (json.dumps(obj, sort_keys=True, indent=1) + "\n").encode()


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None


def stored_tensors(features: str) -> tuple[str, ...]:
    """The tensors a part holds: the scores always, the two feature tensors unless `none`."""
    return ("scores",) if features == "none" else TENSORS


def tensor_dtype(name: str, features: str) -> np.dtype:
    """Scores stay float32 whatever is kept of the features (every results file comes from
    them, so it is the same for every choice)."""
    return SCORES_DTYPE if name == "scores" else FEATURE_DTYPES[features]


def stored_features(record: Mapping) -> str:
    """A sidecar's or DONE's feature storage (fp32 for those written before the choice)."""
    return record.get("features", LEGACY_FEATURES)


def part_layout(features: str, widths: Mapping[str, int]) -> dict:
    """What every part of a run holds (features_index.json): the choice, each tensor's dtype
    and width, and the bytes of tensor data per frame (the parts' few hundred header bytes
    and the sidecars' frame IDs come on top)."""
    full = full_widths(widths)
    tensors = {name: {"dtype": tensor_dtype(name, features).name, "width": full[name]}
               for name in stored_tensors(features)}
    per_frame = sum(tensor_dtype(name, features).itemsize * full[name] for name in tensors)
    dtype = FEATURE_DTYPES[features].name if features in FEATURE_DTYPES else None
    return {"stored": features, "dtype": dtype, "tensors": tensors, "bytes_per_frame": per_frame}


def full_widths(widths: Mapping[str, int]) -> dict[str, int]:
    """Widths of the three stored tensors from the encoders' widths."""
    return {"dnabert": int(widths["dnabert"]), "esm": int(widths["esm"]), "scores": 2}


def rerun_hint(task: TaskDir) -> str:
    """The command that reruns this task's shard."""
    try:
        index = parse_index(task.root.name)
    except ValueError:
        return "rerun its task"
    return f"`virnuc-hpc resubmit {task.root.parent.parent} --indices {index}`"


def read_record(task: TaskDir, path: Path) -> dict | None:
    """A JSON record of the task (DONE, a sidecar): None when absent or unreadable;
    IntegrityError when it is a symlink out of the task dir or names a path outside the run."""
    if os.path.lexists(path) and not task.holds(path):
        raise IntegrityError(f"{path}: a symlink out of its task dir; refused; fix: remove it, "
                             f"then {rerun_hint(task)}")
    record = read_json(path)
    if isinstance(record, dict):
        check_record_paths(record, path, f"remove it, then {rerun_hint(task)}")
    return record


def frame_key(frame_id: str, sequence_id: str) -> tuple[int, str] | None:
    """(chunk number, frame name) of `<sequence_id>_chunk_<n><F|R><1-3>`, else None."""
    match = FRAME_SUFFIX.search(frame_id)
    if not match or frame_id[:match.start()] != sequence_id:
        return None
    return int(match[1]), frame_id[-2:]

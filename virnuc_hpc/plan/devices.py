"""Where a run's tasks will run, and what that settles before the first task starts.

`plan` (and `predict`, `submit`) settle two things from a `Target`: the precision of a run
whose precision was not given (`--precision auto`, the default), and how shards are sized
(plan.sizing). A target is this machine (`plan`, `predict`, a local profile) or what a
scheduler's backend says of its nodes (`submit`, `plan --profile P`: executors/). GPUs are
seen without importing torch: `nvidia-smi` on this machine; on SLURM, the Gres types of the
partition's nodes (`partition_gpus`).

The precision rule, one precision per run:
- no GPU: fp32, the reference path (the original tool's numbers within 1e-5);
- GPUs that all run bf16 (compute capability 8.0 and newer): bf16, the fused fast path;
- any GPU older than that: fp16 for every task, so that a partition that mixes GPU
  generations never gives shards computed at different precisions;
- GPUs of types not known here (an untyped `gpu:4` Gres): bf16; a task that lands on a GPU
  without bf16 refuses before loading a model (task.check_device), naming the fix.

A precision given by flag or config file always wins.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass

BF16_CAPABILITY = (8, 0)
FP16_CAPABILITY = (5, 3)
# Compute capability of GPU types as sites name them in Gres (`gpu:a100:4`), longest first
GPU_TYPES = {
    "gh200": (9, 0), "h200": (9, 0), "h100": (9, 0), "b200": (10, 0), "b100": (10, 0),
    "l40s": (8, 9), "l40": (8, 9), "l4": (8, 9), "4090": (8, 9), "6000ada": (8, 9),
    "a100": (8, 0), "a30": (8, 0), "a40": (8, 6), "a10": (8, 6), "a16": (8, 6), "a6000": (8, 6),
    "a5000": (8, 6), "a4000": (8, 6), "3090": (8, 6), "3080": (8, 6), "a2": (8, 6),
    "v100": (7, 0), "titanv": (7, 0), "t4": (7, 5), "2080": (7, 5), "titanrtx": (7, 5),
    "rtx6000": (7, 5), "rtx8000": (7, 5), "p100": (6, 0), "p40": (6, 1), "p4": (6, 1),
    "1080": (6, 1), "k80": (3, 7), "k40": (3, 5),
}
NVIDIA_SMI_TIMEOUT_S = 10


@dataclass(frozen=True)
class Gpu:
    name: str
    capability: tuple[int, int] | None  # None: a type not known here

    def describe(self) -> str:
        if self.capability is None:
            return f"{self.name} (type not known here)"
        return f"{self.name} (compute capability {self.capability[0]}.{self.capability[1]})"


@dataclass(frozen=True)
class Target:
    """Where the tasks will run: `gpus` they may get (empty: CPU tasks), the time limit of one
    task (None: no limit) and how many tasks run at once."""

    where: str
    gpus: tuple[Gpu, ...] = ()
    uses_gpus: bool = False
    time_limit_min: int | None = None
    parallelism: int = 1
    task_minutes: float | None = None  # None: plan.sizing's default


@dataclass(frozen=True)
class Settled:
    precision: str
    why: str


def settle_precision(requested: str | None, target: Target) -> Settled:
    """A given precision wins; `auto` (or None) takes the rule of the module docstring."""
    if requested not in (None, "auto"):
        return Settled(requested, "given (--precision or the config file)")
    if not target.uses_gpus:
        return Settled("fp32", f"auto: no GPU on {target.where}: the fp32 reference path")
    old = [g for g in target.gpus if g.capability is not None and g.capability < BF16_CAPABILITY]
    if old:
        return Settled("fp16", f"auto: {old[0].describe()} on {target.where} has no bf16: fp16 "
                               "for every task (one precision per run)")
    if target.gpus and all(g.capability is not None for g in target.gpus):
        return Settled("bf16", f"auto: every GPU on {target.where} runs bf16 "
                               f"({_names(target.gpus)})")
    return Settled("bf16", f"auto: GPUs on {target.where} of types not known here: bf16; a task "
                           "on a GPU without bf16 refuses (plan with --precision fp16 for such "
                           "GPUs)")


def _names(gpus: tuple[Gpu, ...]) -> str:
    return ", ".join(sorted({g.name for g in gpus}))


def capability_of(name: str) -> tuple[int, int] | None:
    """The compute capability of a GPU type named as in Gres or nvidia-smi, if known."""
    key = re.sub(r"[^a-z0-9]", "", name.lower())
    return next((cap for kind, cap in GPU_TYPES.items() if kind in key), None)


def supports(precision: str, capability: tuple[int, int] | None) -> bool:
    """Whether a CUDA device of `capability` runs `precision` (None: a CPU, which runs all)."""
    if capability is None or precision == "fp32":
        return True
    return capability >= (BF16_CAPABILITY if precision == "bf16" else FP16_CAPABILITY)


# -- this machine -------------------------------------------------------------------------------

def local_gpus() -> tuple[Gpu, ...]:
    """The GPUs this process may use, from nvidia-smi and CUDA_VISIBLE_DEVICES (no torch)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1", "none", "NoDevFiles"):
        return ()
    rows = _nvidia_smi()
    if visible is not None:
        wanted = [v.strip() for v in visible.split(",") if v.strip()]
        rows = [r for r in rows if r[0] in wanted or r[1] in wanted]
    return tuple(Gpu(name, _capability(cap) or capability_of(name)) for _, _, name, cap in rows)


def _nvidia_smi() -> list[tuple[str, str, str, str]]:
    """(index, uuid, name, compute_cap) per GPU; [] without a driver."""
    query = ["nvidia-smi", "--query-gpu=index,uuid,name,compute_cap", "--format=csv,noheader"]
    try:
        done = subprocess.run(query, capture_output=True, text=True,
                              timeout=NVIDIA_SMI_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return []
    if done.returncode != 0:
        return []
    rows = [[f.strip() for f in line.split(",")] for line in done.stdout.splitlines()]
    return [tuple(r) for r in rows if len(r) == 4]


def _capability(text: str) -> tuple[int, int] | None:
    match = re.fullmatch(r"(\d+)\.(\d+)", text.strip())
    return (int(match[1]), int(match[2])) if match else None


def local_target(parallel: int | None = None, task_minutes: float | None = None) -> Target:
    """This machine: its visible GPUs, no time limit, `parallel` tasks (default one per GPU)."""
    gpus = local_gpus()
    return Target("this machine", gpus, bool(gpus), None, parallel or max(1, len(gpus)),
                  task_minutes)


# -- a scheduler's nodes (its backend asks them: executors/) -----------------------------------

def gres_types(gres: str) -> list[tuple[str | None, int]]:
    """(type, count) per GPU entry of a node's Gres: `gpu:a100:4(S:0-1),gpu:2` ->
    [('a100', 4), (None, 2)]."""
    out = []
    for entry in re.split(r",(?![^(]*\))", gres):
        parts = re.sub(r"\(.*\)$", "", entry.strip()).split(":")
        if parts[0] == "gpu" and len(parts) > 1 and parts[-1].isdigit():
            out.append((parts[1] if len(parts) > 2 else None, int(parts[-1])))
    return out


def partition_gpus(gres_of_nodes: list[str]) -> tuple[Gpu, ...]:
    """One Gpu per GPU type found on the partition's nodes (`gpu` when untyped)."""
    kinds = {kind for gres in gres_of_nodes for kind, count in gres_types(gres) if count}
    return tuple(Gpu(kind or "gpu", capability_of(kind) if kind else None)
                 for kind in sorted(kinds, key=str))

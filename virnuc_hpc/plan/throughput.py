"""The ESM-2 3B throughput behind `plan`'s GPU-hour estimate: the figure `virnuc-hpc bench`
measured on this installation's GPUs when it recorded one for the run's precision, else a
goal (docs/gpu-ceilings.md), and the estimate's note says which.

`bench --model esm2-3b` on a GPU records its result in the model cache
(`$VIRNUC_HPC_CACHE/measured/esm2-3b-<precision>.json`), where every later `plan` finds it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from ..core.fsio import atomic_write
from ..models.cache import ModelCache

# residues/s per H100: bf16 is the goal of docs/gpu-ceilings.md; fp32 is fair-esm's own
# forward as measured there (§2, row 3), the path fp32 runs take
GOALS = {"bf16": 95_000, "fp16": 95_000, "fp32": 6_700}
MODEL = "esm2-3b"


@dataclass(frozen=True)
class Rate:
    residues_per_s: float
    measured: bool
    source: str    # where the figure comes from, in words

    def describe(self) -> str:
        kind = "measured" if self.measured else "goal, not a measurement"
        return f"ESM-2 3B at {self.residues_per_s:,.0f} residues/s per GPU ({kind}: {self.source})"


def measurement_path(precision: str, cache_root=None) -> Path:
    return ModelCache(cache_root).root / "measured" / f"{MODEL}-{precision}.json"


def record_measurement(result: dict, cache_root=None) -> Path:
    """Keep a `bench` result of ESM-2 3B on a GPU for later plans (atomic; newest wins)."""
    path = measurement_path(result["precision"], cache_root)
    atomic_write(path, json.dumps({**result, "recorded": time.time()}, indent=1) + "\n")
    return path


def esm_rate(precision: str, cache_root=None) -> Rate:
    """The measured figure for `precision` if one was recorded, else the goal."""
    try:
        measured = json.loads(measurement_path(precision, cache_root).read_text())
        when = time.strftime("%Y-%m-%d", time.localtime(measured["recorded"]))
        tool = measured.get("tool", "`virnuc-hpc bench`")
        return Rate(float(measured["residues_per_s"]), True,
                    f"{tool} on {measured['device']}, {when}")
    except (OSError, ValueError, KeyError, TypeError):
        hint = "measure yours: virnuc-hpc bench --model esm2-3b --random-weights on a GPU node"
        return Rate(GOALS[precision], False, f"one H100, {precision}, docs/gpu-ceilings.md; "
                                             f"{hint}")

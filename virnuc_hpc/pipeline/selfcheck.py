"""`virnuc-hpc models check-install`: predict VirNucPro's own reference input (bundled in
virnuc_hpc/data/, with what the original tool wrote for it, 500-bp model) and compare.

With the real profile this checks a whole installation against the original: the cached
weights, both encoders, the classifier and the output formats. A mismatch names the frames."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..reduce.outputs import format_score, read_prediction_results
from ..core.rundir import RunDir

DATA = Path(__file__).parents[1] / "data"
REFERENCE = DATA / "virnucpro_test_with_orfs.fa"
EXPECTED = DATA / "virnucpro_test_with_orfs_prediction_results.txt"
EXPECTED_HIGHEST = DATA / "virnucpro_test_with_orfs_prediction_results_highestscore.csv"
CHUNK_SIZE = 500
TOLERANCE = 1e-4  # scores; fp32 embeddings differ from the original's by <= 6e-6 (spec)


@dataclass(frozen=True)
class Comparison:
    rows: list[tuple[str, str, str, float]]  # frame, original "call score2", ours, |diff|
    problems: list[str] = field(default_factory=list)
    max_diff: float = 0.0
    tolerance: float = TOLERANCE

    @property
    def ok(self) -> bool:
        return not self.problems and self.max_diff <= self.tolerance


def compare_predictions(ours: os.PathLike, expected: os.PathLike = EXPECTED,
                        tolerance: float = TOLERANCE) -> Comparison:
    """Same frames in the same order with the same calls, scores within `tolerance`."""
    got = {frame: (call, s1, s2) for frame, call, s1, s2 in read_prediction_results(ours)}
    want = list(read_prediction_results(expected))
    rows, problems, worst = [], [], 0.0
    for frame, call, s1, s2 in want:
        if frame not in got:
            problems.append(f"{frame}: missing")
            continue
        our_call, o1, o2 = got.pop(frame)
        diff = float(max(abs(o1 - s1), abs(o2 - s2)))
        worst = max(worst, diff)
        rows.append((frame, f"{call} {format_score(s2)}", f"{our_call} {format_score(o2)}",
                     diff))
        if our_call != call:
            problems.append(f"{frame}: called {our_call}, the original called {call}")
    problems += [f"{frame}: not in the original's output" for frame in got]
    return Comparison(rows, problems, worst, tolerance)


def check_install(run_dir: os.PathLike, profile: str = "real") -> tuple[Comparison, bool]:
    """Predict the reference input in `run_dir` with `profile`; (comparison, whether the
    highest-score file is byte-equal to the original's)."""
    from ..plan import plan_input
    from ..reduce.merge import reduce_run
    from .run import run_local
    from ..models.cache import profile_fingerprints

    plan_input(REFERENCE, run_dir, shards=1, chunk_size=CHUNK_SIZE, profile=profile,
               model_identities=profile_fingerprints(profile, CHUNK_SIZE))
    run_local(run_dir)
    reduce_run(run_dir)
    run = RunDir(run_dir)
    same_highest = run.highestscore.read_bytes() == EXPECTED_HIGHEST.read_bytes()
    return compare_predictions(run.prediction_results), same_highest

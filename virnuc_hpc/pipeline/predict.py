"""`predict`: plan (or resume), run every shard on this machine, reduce and report."""

from __future__ import annotations

import os

from ..core.rundir import RunDir, driving
from .planning import PlanRequest, plan_or_resume, target_for
from .results import reduce_and_report
from .run import run_local


def predict(request: PlanRequest, out: str | os.PathLike, parallel: int = 1,
            progress: str = "auto", interval: float = 30.0, report: bool = True) -> int:
    """The one-machine path: results in OUT/results/ (OUT/results/<sample>/ for several
    samples). A second call with the same arguments resumes OUT; other ones are refused."""
    with driving(RunDir(out), "predict"):
        plan_or_resume(request, out, target_for(request, parallel=parallel), flag="-o/--out",
                       again="resume it")
        run_local(out, parallel=parallel, progress=progress, interval=interval)
        return reduce_and_report(out, report=report)

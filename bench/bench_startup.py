"""Start-up time of the commands that run no model: `--help`, `status`, `translate`, `plan`,
`reduce` (goal: well under 0.5 s each), against a bare interpreter and `import torch`.

    python bench/bench_startup.py [--repeats 7]

Each figure is the median wall time of whole processes (`python -m virnuc_hpc ...`) on the
bundled example (44 sequences, tiny model profile): what a user waits for at the prompt.
Loading torch is reported too: it is what each of these commands paid before it was made lazy.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "reads.fa"
sys.path.insert(0, str(REPO))


def timed(argv: list[str], repeats: int, fresh=None) -> float:
    """Median seconds of `argv` as a new process; `fresh()` gives per-run extra args."""
    seconds = []
    for _ in range(repeats):
        extra = fresh() if fresh else []
        start = time.perf_counter()
        done = subprocess.run(argv + extra, capture_output=True, text=True, cwd=REPO)
        seconds.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise SystemExit(f"{argv + extra} failed: {done.stderr}")
    return statistics.median(seconds)


def reduced_run(scratch: Path) -> Path:
    """A run of the example, reduced once (its shards computed in this process)."""
    from tests.helpers_run import planned_run

    run_dir = scratch / "run"
    planned_run(EXAMPLE, run_dir, shards=2)
    return run_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    repeats = parser.parse_args().repeats
    scratch = Path(tempfile.mkdtemp(prefix="virnuc-startup-"))
    os.environ.setdefault("VIRNUC_HPC_CACHE", str(scratch / "cache"))
    run_dir, cli = reduced_run(scratch), [sys.executable, "-m", "virnuc_hpc"]
    counter = iter(range(10**6))
    rows = [
        ("python -c pass", timed([sys.executable, "-c", "pass"], repeats)),
        ("python -c 'import torch'", timed([sys.executable, "-c", "import torch"], repeats)),
        ("virnuc-hpc --help", timed(cli + ["--help"], repeats)),
        ("virnuc-hpc status RUN", timed(cli + ["status", str(run_dir)], repeats)),
        ("virnuc-hpc translate (44 seqs)",
         timed(cli + ["translate", str(EXAMPLE), "--nucleotide-out", str(scratch / "n.fa"),
                      "--protein-out", str(scratch / "p.faa")], repeats)),
        ("virnuc-hpc plan (44 seqs)",
         timed(cli + ["plan", str(EXAMPLE), "--models", "tiny"], repeats,
               lambda: ["--run-dir", str(scratch / f"plan-{next(counter)}")])),
        ("virnuc-hpc reduce RUN --no-report",
         timed(cli + ["reduce", str(run_dir), "--no-report"], repeats)),
        ("virnuc-hpc reduce RUN (+ report)", timed(cli + ["reduce", str(run_dir)], repeats)),
    ]
    print(f"median of {repeats} processes each, {os.cpu_count()} CPUs")
    for name, seconds in rows:
        print(f"{name:<34} {seconds:6.3f} s")


if __name__ == "__main__":
    main()

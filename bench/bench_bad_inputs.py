"""The two huge inputs of the bad-input corpus at full size: time and peak RSS of `translate`
and `plan`, each a fresh `python -m virnuc_hpc` process (peak RSS from wait4).

    .venv/bin/python bench/bench_bad_inputs.py [--kind genome|reads|both] [--keep DIR]

genome: one 100 Mb sequence, 60 bases per line; reads: a million 10-bp FASTQ reads (the tests
run translate on 50,000 of them). Needs the tiny model profile in the cache for `plan`
(`virnuc-hpc models fetch --profile tiny`, or any test run). Figures go in docs/reliability.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.reliability.bad_inputs import HUGE_BASES, HUGE_READS, huge_sequence, many_reads  # noqa: E402

KINDS = {"genome": (huge_sequence, HUGE_BASES), "reads": (many_reads, HUGE_READS)}


def measure(*args) -> tuple[float, float]:
    """Seconds and peak RSS (MiB) of one CLI process; exits if it fails."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "virnuc_hpc", *map(str, args)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{args[0]} failed: {err.decode()[-2000:]}")
    return time.perf_counter() - start, usage.ru_maxrss / 1024


def bench(kind: str, workdir: Path) -> None:
    make, size = KINDS[kind]
    start = time.perf_counter()
    source = make(workdir, size)
    made = time.perf_counter() - start
    print(f"{kind}: {source.stat().st_size / 2**20:,.0f} MiB input (generated in {made:.0f} s)")
    seconds, rss = measure("translate", source, "--nucleotide-out", workdir / "n.fa",
                           "--protein-out", workdir / "p.faa", "--accounting-out",
                           workdir / "acc.tsv")
    print(f"  translate: {seconds:6.1f} s, peak RSS {rss:6.0f} MiB")
    seconds, rss = measure("plan", source, "--run-dir", workdir / f"run-{kind}", "--models",
                           "tiny")
    print(f"  plan:      {seconds:6.1f} s, peak RSS {rss:6.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=("genome", "reads", "both"), default="both")
    parser.add_argument("--keep", type=Path, help="work in this directory and keep it")
    args = parser.parse_args()
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="bench-bad-inputs-"))
    try:
        for kind in KINDS if args.kind == "both" else (args.kind,):
            (workdir / kind).mkdir(parents=True, exist_ok=True)
            bench(kind, workdir / kind)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

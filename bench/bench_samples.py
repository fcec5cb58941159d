"""A study at scale: `plan` of many samples, and `reduce` of a million frames (time, peak RSS).

    .venv/bin/python bench/bench_samples.py plan   [--samples 1000] [--reads 10000] [--shards 1000]
    .venv/bin/python bench/bench_samples.py reduce [--frames 1000000] [--samples 100] [--shards 100]
    .venv/bin/python bench/bench_samples.py both   (the defaults above; --keep DIR keeps the runs)

plan: writes SAMPLES FASTA files of READS random 150-bp reads each (IDs repeat across
samples) and their sample sheet, then plans the study in a child process (`plan_input`, no
model) and prints the wall and CPU time and the child's peak RSS (getrusage).

reduce: a study of SAMPLES samples of 150-bp reads (one 500-bp chunk each, so a read keeps a
frame with probability 0.2 per frame: 1.2 frames per read on average), as many reads as
FRAMES needs, planned in SHARDS shards; each shard's parts are written without any model
(bench_report.py's `write_shard`: random scores, no features, parts of 4,096 frames),
then `reduce_run` runs in a child process: wall and CPU time and peak RSS. The goal (issue
13) is under 1 GB of RSS for both, whatever the size. Figures go in docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_plan import write_reads  # noqa: E402

FRAMES_PER_READ = 6 * 0.2  # bench_report.py keeps each frame of a chunk with probability 0.2


def write_study(folder: Path, samples: int, reads: int) -> Path:
    """SAMPLES files of READS fixed 150-bp reads and `samples.csv`, written by two child
    processes so that this process stays small."""
    folder.mkdir(parents=True, exist_ok=True)
    half = -(-samples // 2)
    writers = [subprocess.Popen([sys.executable, __file__, "write", str(folder), str(first),
                                 str(min(half, samples - first)), str(reads)])
               for first in (0, half) if first < samples]
    if any(w.wait() for w in writers):
        raise SystemExit("writing the samples failed")
    sheet = folder / "samples.csv"
    sheet.write_text("sample,fasta\n" + "".join(f"S{k:05d},s{k:05d}.fa\n"
                                                 for k in range(samples)))
    return sheet


def write_samples(folder: str, first: str, count: str, reads: str) -> None:
    for k in range(int(first), int(first) + int(count)):
        write_reads(Path(folder) / f"s{k:05d}.fa", "fixed", int(reads), seed=k)


def child(argv: list[str]) -> tuple[float, float, float]:
    """Run `argv` (a run-plan or run-reduce of this script); (wall seconds, CPU seconds, peak
    RSS MiB) of that child alone, as it reports them on its last line."""
    started = time.perf_counter()
    done = subprocess.run(argv, check=True, stdout=subprocess.PIPE, text=True)
    wall = time.perf_counter() - started
    cpu, rss = map(float, done.stdout.split()[-2:])
    return wall, cpu, rss


def report_usage() -> None:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


def bench_plan(workdir: Path, samples: int, reads: int, shards: int) -> None:
    started = time.perf_counter()
    sheet = write_study(workdir / "plan-inputs", samples, reads)
    size = sum(p.stat().st_size for p in sheet.parent.glob("*.fa"))
    print(f"plan: {samples:,} samples x {reads:,} reads of 150 bp = {samples * reads:,} reads, "
          f"{size / 2**30:.2f} GiB of FASTA (written in {time.perf_counter() - started:.0f} s)")
    run_dir = workdir / "plan-run"
    wall, cpu, rss = child([sys.executable, __file__, "run-plan", str(sheet), str(run_dir),
                            str(shards)])
    plan = json.loads((run_dir / "plan.json").read_text())
    print(f"      plan_input: {wall:.1f} s ({cpu:.1f} s CPU, {samples * reads / wall:,.0f} "
          f"reads/s), {len(plan['shards']):,} shards, imbalance {plan['imbalance']:.4f}, "
          f"peak RSS {rss:.0f} MiB")
    shutil.rmtree(sheet.parent, ignore_errors=True)


def bench_reduce(workdir: Path, frames: int, samples: int, shards: int) -> None:
    from bench_report import write_shard

    from virnuc_hpc.plan import plan_input
    from virnuc_hpc.core.rundir import RunDir
    from virnuc_hpc.plan.samples import read_samplesheet

    import numpy as np

    reads = -(-int(frames / FRAMES_PER_READ) // samples)
    started = time.perf_counter()
    sheet = write_study(workdir / "reduce-inputs", samples, reads)
    run_dir = workdir / "reduce-run"
    plan = plan_input(read_samplesheet(sheet), run_dir, shards=shards)
    rng = np.random.default_rng(1)
    for shard in plan.shards:
        write_shard(RunDir(run_dir), shard.index, rng)
    built = time.perf_counter() - started
    wall, cpu, rss = child([sys.executable, __file__, "run-reduce", str(run_dir)])
    summary = json.loads(RunDir(run_dir).summary.read_text())
    print(f"reduce: {samples:,} samples, {summary['input_sequences']:,} reads, "
          f"{summary['kept_frames']:,} kept frames, {shards} shards (built in {built:.0f} s)")
    print(f"      reduce_run: {wall:.1f} s ({cpu:.1f} s CPU, "
          f"{summary['kept_frames'] / wall:,.0f} frames/s), peak RSS {rss:.0f} MiB")


def run_plan(sheet: str, run_dir: str, shards: str) -> None:
    from virnuc_hpc.plan import plan_input
    from virnuc_hpc.plan.samples import read_samplesheet

    plan_input(read_samplesheet(sheet), run_dir, shards=int(shards))


def run_reduce(run_dir: str) -> None:
    from virnuc_hpc.reduce.merge import reduce_run

    result = reduce_run(run_dir)
    if not result.ok:
        raise SystemExit(result.report())


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] in ("write", "run-plan", "run-reduce"):
        command, *rest = sys.argv[1:]
        if command == "write":
            write_samples(*rest)
        else:
            (run_plan if command == "run-plan" else run_reduce)(*rest)
            report_usage()
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("plan", "reduce", "both"), nargs="?", default="both")
    parser.add_argument("--samples", type=int, help="plan: 1000; reduce: 100")
    parser.add_argument("--reads", type=int, default=10_000, help="plan: reads per sample")
    parser.add_argument("--frames", type=int, default=1_000_000, help="reduce: kept frames")
    parser.add_argument("--shards", type=int, help="plan: 1000; reduce: 100")
    parser.add_argument("--keep", type=Path, help="work in this directory and keep the runs")
    args = parser.parse_args()
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="bench-samples-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        if args.what in ("plan", "both"):
            bench_plan(workdir, args.samples or 1000, args.reads, args.shards or 1000)
        if args.what in ("reduce", "both"):
            bench_reduce(workdir, args.frames, args.samples or 100, args.shards or 100)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

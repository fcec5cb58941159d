"""The run report at scale: time, page size, figure size and peak RSS of `virnuc-hpc report`.

    .venv/bin/python bench/bench_report.py [N] [--shards S] [--top K] [--keep DIR]

Builds a reduced run of N sequences without running any model: random reads with log-normal
lengths (bench_plan.py's `variable` kind: median ~250 bp, 50..20,000 bp), planned with
`plan_input`; each shard's kept frames are drawn at random (each frame of each chunk kept
with probability 0.2), written with `store.PartWriter` (random scores; the features not kept,
as by default),
`write_accounting` and `write_done` (hosts and GPUs made up), then `reduce_run`. It then runs
`virnuc-hpc report RUN --top K` in a child process and prints its wall and CPU time, the
sizes of report.html and prediction.png, and the child's peak RSS (getrusage). Goal (issue
11): under 30 s and 5 MB for N = 100,000. Figures go in docs/performance.md.
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

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_plan import write_reads  # noqa: E402

from virnuc_hpc.plan import load_manifest, plan_input  # noqa: E402
from virnuc_hpc.reduce.merge import reduce_run  # noqa: E402
from virnuc_hpc.core.rundir import RunDir  # noqa: E402
from virnuc_hpc.parts import PartWriter, write_accounting  # noqa: E402

FRAMES = ("F1", "F2", "F3", "R1", "R2", "R3")
WIDTHS = {"dnabert": 4, "esm": 4}
PRINTS = {"dnabert": "bench-dnabert", "esm": "bench-esm", "classifier": "bench-classifier"}
KEEP_PROBABILITY = 0.2
PART_ROWS = 4096


def shard_frames(ids: list[str], chunks: np.ndarray, rng: np.random.Generator,
                 ) -> tuple[list[str], np.ndarray]:
    """Frame IDs (in chunk and frame order) and kept frames per sequence of one shard."""
    kept = rng.random((int(chunks.sum()), len(FRAMES))) < KEEP_PROBABILITY
    owner = np.repeat(np.arange(len(ids)), chunks)
    number = np.arange(len(owner)) - np.repeat(np.cumsum(chunks) - chunks, chunks) + 1
    rows, cols = np.nonzero(kept)
    frame_ids = [f"{ids[owner[r]]}_chunk_{number[r]}{FRAMES[c]}"
                 for r, c in zip(rows.tolist(), cols.tolist())]
    return frame_ids, np.bincount(owner[rows], minlength=len(ids))


def write_shard(run: RunDir, index: int, rng: np.random.Generator) -> None:
    started = time.time()
    manifest = load_manifest(run.root, index)
    frame_ids, per_sequence = shard_frames(manifest.ids, manifest.chunks, rng)
    task = run.task(index)
    writer = PartWriter(task.root, WIDTHS, PRINTS)
    for start in range(0, len(frame_ids), PART_ROWS):
        ids = frame_ids[start:start + PART_ROWS]
        virus = rng.beta(0.6, 0.6, len(ids)).astype(np.float32)
        scores = np.stack([1 - virus, virus], axis=1)
        features = np.zeros((len(ids), WIDTHS["dnabert"]), np.float32)
        writer.write_part(writer.next_part, ids, features, features, scores)
    write_accounting(task.root, [
        {"id": i, "length": n, "chunks": c, "kept_frames": k,
         "skip_reason": "" if k else "all_frames_have_stop"}
        for i, n, c, k in zip(manifest.ids, manifest.lengths.tolist(), manifest.chunks.tolist(),
                              per_sequence.tolist())])
    elapsed = max(time.time() - started, 1e-6)
    writer.write_done(started=started, gpu=str(index % 4), host=f"gpu-node{index % 3:02d}",
                      rate=round(len(frame_ids) / elapsed, 3))


def build_run(workdir: Path, n: int, shards: int) -> Path:
    fasta, run_dir = workdir / "reads.fa", workdir / "run"
    write_reads(fasta, "variable", n)
    plan = plan_input(fasta, run_dir, shards=shards)
    rng = np.random.default_rng(1)
    for shard in plan.shards:
        write_shard(RunDir(run_dir), shard.index, rng)
    result = reduce_run(run_dir)
    if not result.ok:
        raise SystemExit(result.report())
    return run_dir


def bench(run_dir: Path, top: int) -> None:
    command = [sys.executable, "-m", "virnuc_hpc", "report", str(run_dir), "--top", str(top)]
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    rss, cpu = usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime
    page, figure = RunDir(run_dir).report.stat().st_size, \
        RunDir(run_dir).prediction_figure.stat().st_size
    print(f"report --top {top}: {seconds:.1f} s ({cpu:.1f} s CPU), report.html "
          f"{page / 2**20:.2f} MiB, "
          f"prediction.png {figure / 2**10:.0f} KiB, peak RSS {rss:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=100_000)
    parser.add_argument("--shards", type=int, default=10)
    parser.add_argument("--top", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="work in this directory and keep the run")
    args = parser.parse_args()
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="bench-report-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        started = time.perf_counter()
        run_dir = workdir / "run" if (workdir / "run/results/summary.json").is_file() else \
            build_run(workdir, args.n, args.shards)
        summary = json.loads(RunDir(run_dir).summary.read_text())
        print(f"run: {summary['input_sequences']:,} sequences ({summary['skipped']:,} skipped), "
              f"{summary['kept_frames']:,} kept frames, {summary['shards']} shards; built in "
              f"{time.perf_counter() - started:.0f} s")
        bench(run_dir, args.top)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

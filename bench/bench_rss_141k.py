"""RSS over a 141k-sequence tiny-profile run of the real commands: does memory stay flat?

    .venv/bin/python bench/bench_rss_141k.py [--sequences 141000] [--coding 0.08] [--dir DIR]

Writes a 141k-read input (250-300 bp; a `--coding` fraction carries open reading frames, the
rest is random DNA, most of which has a stop in every frame and is skipped, so that CPU time
goes to the per-sequence work and a few thousand frames rather than to 100k tiny-model
forwards), plans it as one shard with 300-bp chunks, then runs `run-task`, `reduce` and
`embed` (tiny-esm2 on the translated kept frames) as subprocesses, reading each one's RSS
from /proc every 0.25 s (samples saved beside each log). Working memory rises and falls with
every part and batch, so it compares windows of the command's life: right after warm-up
(20-40 %) and the end (80-100 %), their peaks and means; growth is their ratio (target < 5 %).
For `embed`, it also prints the size of the output it holds by design (N x D float32, written
once at the end). Uses VIRNUC_HPC_CACHE.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

from virnuc_hpc.sequences import synthetic

WARMUP = 0.2
PERIOD_S = 0.25


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def reads(n: int, coding: float, seed: int = 141):
    rng = random.Random(seed)
    for i in range(n):
        length = rng.randint(250, 300)
        seq = synthetic.coding_like(rng, length) if rng.random() < coding else \
            "".join(rng.choices("ACGT", k=length))
        yield f"read{i}", seq


def measure(name: str, argv: list[str], log: Path) -> dict:
    start = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        samples: list[tuple[float, float]] = []
        while proc.poll() is None:
            rss = rss_mib(proc.pid)
            if rss is not None:
                samples.append((time.monotonic() - start, rss))
            time.sleep(PERIOD_S)
    wall = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit(f"{name} failed (exit {proc.returncode}); see {log}")
    log.with_suffix(".rss.tsv").write_text("".join(f"{t:.2f}\t{r:.1f}\n" for t, r in samples))
    first, last = window(samples, wall, WARMUP, WARMUP + 0.2), window(samples, wall, 0.8, 1.01)
    return {"name": name, "wall": wall, "samples": len(samples),
            "first": first, "last": last, "peak": max(r for _, r in samples),
            "growth": 100 * (max(last) / max(first) - 1),
            "mean_growth": 100 * (sum(last) / len(last) / (sum(first) / len(first)) - 1)}


def window(samples: list[tuple[float, float]], wall: float, start: float, end: float) -> list:
    """RSS samples taken between `start` and `end` (fractions of the command's life)."""
    return [r for t, r in samples if start * wall <= t < end * wall] or [samples[-1][1]]


def report(row: dict, extra: str = "") -> None:
    """Working memory rises and falls with each part or batch, so the windows' peaks and
    means are compared: right after warm-up (20-40 % of the life) and at the end (80-100 %)."""
    first, last = row["first"], row["last"]
    print(f"{row['name']:<9} {row['wall']:6.0f} s, {row['samples']} samples; RSS 20-40 %: "
          f"peak {max(first):.1f} MiB, mean {sum(first) / len(first):.1f}; 80-100 %: peak "
          f"{max(last):.1f}, mean {sum(last) / len(last):.1f}; overall peak "
          f"{row['peak']:.1f}; growth after warm-up: peak {row['growth']:+.2f} %, mean "
          f"{row['mean_growth']:+.2f} % (target < 5 %){extra}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=141_000)
    parser.add_argument("--coding", type=float, default=0.01)
    parser.add_argument("--part-rows", type=int, default=512)
    parser.add_argument("--dir", type=Path, default=Path("bench-rss-141k"))
    parser.add_argument("--only", choices=("run-task", "reduce", "embed"),
                        help="measure one command (the others' inputs must exist)")
    args = parser.parse_args()
    work, cli = args.dir.resolve(), [sys.executable, "-m", "virnuc_hpc"]
    work.mkdir(parents=True, exist_ok=True)
    fasta = work / "input.fa"
    if not fasta.exists():
        synthetic.write_fasta(fasta, reads(args.sequences, args.coding))
    run = work / "run"
    (work / "run.yaml").write_text(f"part_rows: {args.part_rows}\n")
    if (run / "tasks").exists() and args.only in (None, "run-task"):
        shutil.rmtree(run / "tasks")
    if not (run / "plan.json").exists():
        subprocess.run([*cli, "plan", str(fasta), "--run-dir", str(run), "--models", "tiny",
                        "--chunk-size", "300", "--shards", "1", "--config",
                        str(work / "run.yaml")], check=True, capture_output=True)
    if args.only in (None, "run-task"):
        measure_task(run, work, cli, args.sequences)
    if args.only in (None, "reduce"):
        report(measure("reduce", [*cli, "reduce", str(run)], work / "reduce.log"))
    if args.only in (None, "embed"):
        measure_embed(fasta, work, cli)


def measure_task(run: Path, work: Path, cli: list[str], sequences: int) -> None:
    task = measure("run-task", [*cli, "run-task", str(run), "--index", "0", "--device", "cpu"],
                   work / "run-task.log")
    frames = json.loads((run / "tasks" / "00000" / "DONE").read_text())["rows"]
    report(task, f"; {sequences} sequences, {frames} kept frames, "
                 f"{frames / task['wall']:.1f} frames/s")


def measure_embed(fasta: Path, work: Path, cli: list[str]) -> None:
    proteins = work / "frames.faa"
    subprocess.run([*cli, "translate", str(fasta), "--chunk-size", "300", "--nucleotide-out",
                    str(work / "frames.fa"), "--protein-out", str(proteins)], check=True,
                   capture_output=True)
    rows = sum(1 for line in proteins.open() if line.startswith(">"))
    embed = measure("embed", [*cli, "embed", str(proteins), "--model", "tiny-esm2", "--out",
                              str(work / "frames.safetensors"), "--device", "cpu"],
                    work / "embed.log")
    report(embed, f"; {rows} proteins, {rows / embed['wall']:.1f}/s, output held "
                  f"{rows * 64 * 4 / 2**20:.1f} MiB (width 64)")


if __name__ == "__main__":
    main()

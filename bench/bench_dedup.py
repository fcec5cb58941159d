"""Duplicate reads computed once: frames embedded against frames in the output, the encoder
stage's time with and without dedup, and what dedup costs `plan`.

    python bench/bench_dedup.py encoders [--reads 1000000] [--fractions 0,0.3,0.6,0.9]
    python bench/bench_dedup.py plan [--reads 10000000]

`encoders`: one FASTA of `--reads` coding-like reads of 150 bp, a share of them copies of an
earlier read, planned in 4 shards (tiny profile), run in this process and reduced, once with
dedup and once with --no-dedup. The encoders are a device stand-in: each batch sleeps a fixed
time per row it forwards (`--row-ms`), leaving the CPU free, and returns rows made from the
tokens, so identical tokens give identical rows. It prints the rows forwarded against the
frames in the output (the goal: the unique share), the encoder stage's time (the stand-in's
sleep) and the tasks' wall time, with dedup over without (the goal: <= unique share + 0.05
for the encoder stage), and checks that the results files are byte-identical.

`plan`: gzip FASTQ of `--reads` 150-bp reads (bench_plan_speed's writer), a third of them
copies, planned with and without dedup in child processes: wall, CPU, peak RSS and the ratio
(goal: <= 1.3x, under 1 GB).
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def write_reads(path: Path, reads: int, fraction: float, seed: int = 4):
    """150-bp coding-like reads, `fraction` of them copies of an earlier read."""
    from virnuc_hpc.sequences import synthetic

    rng = np.random.default_rng(seed)
    fresh = (seq for _, seq in synthetic.reads(reads, 150, 150, seed=seed))
    pool: list[str] = []
    with open(path, "w") as out:
        for i in range(reads):
            seq = pool[int(rng.integers(len(pool)))] if pool and rng.random() < fraction \
                else next(fresh)
            if len(pool) < 200_000:
                pool.append(seq)
            out.write(f">r{i}\n{seq}\n")


class StandIn:
    """Encoders that sleep `seconds` per row forwarded and return rows made from tokens."""

    def __init__(self, seconds: float):
        self.seconds, self.slept = seconds, 0.0

    def install(self) -> None:
        from virnuc_hpc.models import encoders as embed

        stand_in = self

        def iter_embed(encoder, tokens, ids=None):
            for start in range(0, len(tokens), 1024):
                batch = list(range(start, min(start + 1024, len(tokens))))
                time.sleep(len(batch) * stand_in.seconds)
                stand_in.slept += len(batch) * stand_in.seconds
                yield batch, np.stack([_row(tokens[i], encoder.dim) for i in batch])

        embed.Encoder.iter_embed = iter_embed


def _row(tokens: np.ndarray, width: int) -> np.ndarray:
    seed = int.from_bytes(tokens.tobytes()[:8].ljust(8, b"\0"), "little") ^ len(tokens)
    return np.random.default_rng(seed).standard_normal(width).astype(np.float32)


def run_once(fasta: Path, run_dir: Path, dedup: bool, stand_in: StandIn) -> dict:
    from virnuc_hpc.models.cache import profile_fingerprints
    from virnuc_hpc.plan import load_plan, plan_input
    from virnuc_hpc.reduce.merge import reduce_run
    from virnuc_hpc.core.rundir import RunDir
    from virnuc_hpc.parts import read_done
    from virnuc_hpc.task.run import run_task, task_options

    shutil.rmtree(run_dir, ignore_errors=True)
    plan_input(fasta, run_dir, shards=4, chunk_size=300, profile="tiny",
               config={} if dedup else {"dedup": False},
               model_identities=profile_fingerprints("tiny", 300))
    slept, started = stand_in.slept, time.perf_counter()
    options = task_options(run_dir, "cpu")
    for shard in load_plan(run_dir).shards:
        run_task(run_dir, shard.index, options)
    tasks_s = time.perf_counter() - started
    assert reduce_run(run_dir).ok
    summary = json.loads(RunDir(run_dir).summary.read_text())
    done = [read_done(RunDir(run_dir).task(s.index)) for s in load_plan(run_dir).shards]
    return {"forwarded": sum(d["embedded"]["esm"] for d in done),
            "frames": summary["kept_frames"], "encoder_s": stand_in.slept - slept,
            "tasks_s": tasks_s, "reads_reused": summary["reused"]["sequences"]}


def encoders(args) -> None:
    stand_in = StandIn(args.row_ms / 1000)
    stand_in.install()
    print(f"{args.reads:,} reads of 150 bp, 4 shards, stand-in {args.row_ms} ms per row\n")
    print("| duplicates | reads reused | frames in the output | rows forwarded (ESM-2) | "
          "forwarded / frames | encoder time, dedup / all | tasks' wall, dedup / all | "
          "results identical |")
    print("|---|---|---|---|---|---|---|---|")
    for fraction in args.fractions:
        fasta = args.dir / f"reads-{args.reads}-{fraction}.fa"
        if not fasta.exists():
            write_reads(fasta, args.reads, fraction)
        dedup = run_once(fasta, args.dir / "dedup", True, stand_in)
        every = run_once(fasta, args.dir / "all", False, stand_in)
        same = all(filecmp.cmp(args.dir / "dedup" / "results" / name,
                               args.dir / "all" / "results" / name, shallow=False)
                   for name in ("prediction_results.txt", "prediction_results_highestscore.csv",
                                "predictions.tsv"))
        print(f"| {fraction:.0%} | {dedup['reads_reused']:,} | {dedup['frames']:,} | "
              f"{dedup['forwarded']:,} | {dedup['forwarded'] / dedup['frames']:.3f} | "
              f"{dedup['encoder_s'] / every['encoder_s']:.3f} | "
              f"{dedup['tasks_s'] / every['tasks_s']:.3f} | {'yes' if same else 'NO'} |",
              flush=True)


def plan_child(path: Path, run: Path, dedup: bool) -> dict:
    code = ("import resource, subprocess, sys, time, json\n"
            "t = time.perf_counter()\n"
            "done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
            "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
            "print(json.dumps({'rc': done.returncode, 'wall': time.perf_counter() - t, "
            "'cpu': u.ru_utime + u.ru_stime, 'rss_mib': u.ru_maxrss / 1024, "
            "'err': done.stderr[-2000:]}))")
    shutil.rmtree(run, ignore_errors=True)
    argv = [sys.executable, "-m", "virnuc_hpc", "plan", str(path), "--run-dir", str(run),
            "--models", "tiny", "--shards", "100", *([] if dedup else ["--no-dedup"])]
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    got = json.loads(done.stdout)
    assert got["rc"] == 0, got["err"]
    if dedup:
        got["duplicates"] = json.loads((run / "plan.json").read_text())["duplicates"]
    shutil.rmtree(run, ignore_errors=True)
    return got


def plan(args) -> None:
    path = args.dir / f"reads-{args.reads}-dups.fq.gz"
    if not path.exists():
        from bench_plan_speed import write_fastq

        write_fastq(path, args.reads, copies=1 / 3)
    plan_child(path, args.dir / "warm", False)     # the tiny model cache, filled
    every = plan_child(path, args.dir / "run", False)
    dedup = plan_child(path, args.dir / "run", True)
    print(f"{args.reads:,} reads of 150 bp, gzip FASTQ, a third of them copies; 100 shards\n")
    print("| plan | wall s | CPU s | peak RSS MiB |\n|---|---|---|---|")
    for name, got in (("--no-dedup", every), ("with dedup", dedup)):
        print(f"| {name} | {got['wall']:.1f} | {got['cpu']:.1f} | {got['rss_mib']:.0f} |")
    print(f"\nwith / without: {dedup['wall'] / every['wall']:.2f} (wall), "
          f"{dedup['cpu'] / every['cpu']:.2f} (CPU); duplicates found: "
          f"{dedup['duplicates']['duplicates']:,}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("encoders", "plan"))
    parser.add_argument("--reads", type=int)
    parser.add_argument("--fractions", type=lambda t: [float(x) for x in t.split(",")],
                        default=[0.0, 0.3, 0.6, 0.9])
    parser.add_argument("--row-ms", type=float, default=0.2)
    parser.add_argument("--dir", type=Path, default=Path("/var/tmp/virnuc-bench-dedup"))
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("VIRNUC_HPC_CACHE", str(args.dir / "cache"))
    if args.mode == "encoders":
        args.reads = args.reads or 1_000_000
        encoders(args)
    else:
        args.reads = args.reads or 10_000_000
        plan(args)


if __name__ == "__main__":
    main()

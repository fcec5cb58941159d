"""A task reads only its shard: the time before its first batch, and the bytes it reads from
the input, for the first, a middle and the last shard.

    python bench/bench_shard_reads.py [--reads 1000000] [--shards 100] [--code DIR]

Inputs: one file of `--reads` reads of 150 bp (coding-like, so frames are kept), plain FASTA
and gzip, and a study of 30 samples (gzip) of the same reads in all. Each is planned into
`--shards` shards (tiny profile). Then, for shards 0, 50 and 99, a new process does what
`run-task` does before its first batch: it loads the plan and the manifest, reads its records
and prepares frames until it has its first part (2,048 frames). It reports that time, the
bytes the process read (`rchar` of /proc/self/io: plan, manifest, slices, frames, or the
input) and how many input files it opened (an audit hook on `open`).

All tasks together read about (shards x the mean of the three) bytes; when they open input
files that is counted as passes of the input (an upper bound: rchar also counts the plan and
manifest). The goals: last / first <= 1.5, and at most 3 passes of the input. `--code DIR`
runs the same with another checkout (e.g. one from before this change) to compare.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROBE = r'''
import json, os, sys, time
from pathlib import Path
inputs = set(json.loads(sys.argv[3]))
opened = {}
def hook(event, args):
    if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        name = os.fsdecode(args[0])
        if name in inputs:
            opened[name] = opened.get(name, 0) + 1
sys.addaudithook(hook)
def rchar():
    return int(dict(l.split(": ") for l in open("/proc/self/io").read().splitlines())["rchar"])
import numpy, xxhash                       # imported before the clock starts
from virnuc_hpc.plan import iter_shard_records
from virnuc_hpc.sequences import prepare
start_bytes, start = rchar(), time.perf_counter()
frames = 0
for item in prepare(iter_shard_records(sys.argv[1], int(sys.argv[2])), 500):
    frames += len(item.frames)
    if frames >= 2048:
        break
seconds = time.perf_counter() - start
read = rchar() - start_bytes
sizes = {n: os.path.getsize(n) for n in opened}
print(json.dumps({"seconds": seconds, "read": read, "frames": frames, "opened": sizes}))
'''


def write_inputs(folder: Path, reads: int) -> dict[str, list[Path]]:
    from virnuc_hpc.sequences import synthetic

    records = list(synthetic.reads(reads, 150, 150, seed=3))
    plain = synthetic.write_fasta(folder / "reads.fa", records)
    packed = folder / "reads.fa.gz"
    with open(plain, "rb") as src, gzip.open(packed, "wb", compresslevel=1) as out:
        shutil.copyfileobj(src, out)
    study = []
    for k in range(30):
        path = folder / f"s{k:02d}.fa.gz"
        with gzip.open(path, "wt", compresslevel=1) as out:
            out.writelines(f">{rid}\n{seq}\n" for rid, seq in records[k::30])
        study.append(path)
    return {"plain FASTA": [plain], "gzip FASTA": [packed], "30-sample study (gzip)": study}


def env(code: Path, cache: Path) -> dict:
    return {**os.environ, "PYTHONPATH": str(code), "VIRNUC_HPC_CACHE": str(cache)}


def plan(code: Path, inputs: list[Path], run: Path, shards: int, cache: Path) -> None:
    shutil.rmtree(run, ignore_errors=True)
    done = subprocess.run([sys.executable, "-m", "virnuc_hpc", "plan", *map(str, inputs),
                           "--run-dir", str(run), "--models", "tiny", "--shards", str(shards)],
                          capture_output=True, text=True, env=env(code, cache), cwd=run.parent)
    assert done.returncode == 0, done.stderr


def probe(code: Path, run: Path, index: int, inputs: list[Path], cache: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE, str(run), str(index),
                           json.dumps([str(p) for p in inputs])],
                          capture_output=True, text=True, env=env(code, cache), cwd=run.parent)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=1_000_000)
    parser.add_argument("--shards", type=int, default=100)
    parser.add_argument("--code", type=Path, default=REPO)
    parser.add_argument("--dir", type=Path, default=Path("/var/tmp/virnuc-bench-shards"))
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    cache = args.dir / "cache"
    marker = args.dir / f"inputs-{args.reads}.json"
    if not marker.exists():
        sets = write_inputs(args.dir, args.reads)
        marker.write_text(json.dumps({k: [str(p) for p in v] for k, v in sets.items()}))
    sets = {k: [Path(p) for p in v] for k, v in json.loads(marker.read_text()).items()}
    indices = [0, args.shards // 2, args.shards - 1]
    print(f"code: {args.code}; {args.reads:,} reads of 150 bp in {args.shards} shards\n")
    print("| input | input bytes | shard | before its first batch (s) | bytes read | "
          "input files opened |")
    print("|---|---|---|---|---|---|")
    for label, inputs in sets.items():
        run = args.dir / "run"
        started = time.perf_counter()
        plan(args.code, inputs, run, args.shards, cache)
        plan_s = time.perf_counter() - started
        size = sum(p.stat().st_size for p in inputs)
        got = {i: probe(args.code, run, i, inputs, cache) for i in indices}
        for i in indices:
            print(f"| {label} | {size:,} | {i} | {got[i]['seconds']:.3f} | {got[i]['read']:,} | "
                  f"{len(got[i]['opened'])} |")
        opened = any(g["opened"] for g in got.values())
        per_task = sum(g["read"] for g in got.values()) / len(got)
        passes = f"{per_task * args.shards / size:.2f} passes of the input" if opened else \
            f"no input file (the run's copy: {per_task * args.shards / 2**20:.0f} MiB in all)"
        last_first = got[indices[-1]]["seconds"] / got[indices[0]]["seconds"]
        print(f"| {label} | | last/first {last_first:.2f}; all {args.shards} tasks read "
              f"{passes}; plan {plan_s:.1f} s | | | |")


if __name__ == "__main__":
    main()

"""`plan` at parser speed: plan time and peak RSS beside a bare dnaio parse of the same file.

    python bench/bench_plan_speed.py --reads 10000000 [--reads 100000000] [--dir /var/tmp/p17]

For each size it writes (once, kept in --dir) a gzip FASTQ of 150-bp reads with Illumina-like
headers and NovaSeq-binned qualities, then times in child processes, each on one core's worth
of work as a user would run it:

- `dnaio`: `for record in dnaio.open(path): pass` (xopen's ISA-L gzip thread included);
- `plan`: `virnuc-hpc plan FILE --run-dir RUN --models tiny --dry-run`, and the real `plan`
  (which also writes the run's rows, IDs and sequence file).

It prints wall and CPU seconds, peak RSS (getrusage of the child) and plan / dnaio, on all
the machine's cores and pinned to one (`taskset -c 0`: the decompression, compression and
hashing threads then share that core). Goals (issue 17): plan within 2x of dnaio on one
core; 100M reads planned in under 3 minutes and under 1 GB. The tiny model cache is filled
before the first timing.
"""

from __future__ import annotations

import argparse
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

QUALITIES = np.frombuffer(b"FFFFFFFFFFFF:FF,F:F#", np.uint8)


def write_fastq(path: Path, reads: int, copies: float = 0.0, block: int = 200_000) -> None:
    """Random 150-bp reads, gzip (ISA-L level 1, two threads); a share `copies` of them are
    copies of an earlier original read of their block."""
    from isal import igzip_threaded

    rng = np.random.default_rng(0)
    bases = np.frombuffer(b"ACGT", np.uint8)
    with igzip_threaded.open(path, "wb", compresslevel=1, threads=2) as out:
        for first in range(0, reads, block):
            n = min(block, reads - first)
            seqs = bases[rng.integers(0, 4, (n, 150), dtype=np.uint8)]
            if copies:
                _copy_earlier(rng, seqs, copies)
            quals = QUALITIES[rng.integers(0, len(QUALITIES), (n, 150), dtype=np.uint8)]
            out.write(b"".join(b"@SIM:1:FCX:1:%d:%d:%d 1:N:0:ACGT\n%s\n+\n%s\n" % (
                first // 10_000, i, first + i, seqs[i].tobytes(), quals[i].tobytes())
                for i in range(n)))


def _copy_earlier(rng: np.random.Generator, seqs: np.ndarray, share: float) -> None:
    """Overwrite a share of the rows with copies of earlier rows that stay original."""
    copies = np.flatnonzero(rng.random(len(seqs)) < share)
    copies = copies[copies > 0]
    originals = np.setdiff1d(np.arange(len(seqs)), copies)
    seqs[copies] = seqs[originals[rng.integers(0, np.searchsorted(originals, copies))]]


def child(argv: list[str]) -> dict:
    """Run `argv` in a child; its wall, CPU and peak RSS."""
    code = ("import resource, subprocess, sys, time, json\n"
            "t = time.perf_counter()\n"
            "done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
            "wall = time.perf_counter() - t\n"
            "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
            "print(json.dumps({'rc': done.returncode, 'wall': wall, 'cpu': u.ru_utime + "
            "u.ru_stime, 'rss_mib': u.ru_maxrss / 1024, 'err': done.stderr[-2000:]}))")
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    return json.loads(done.stdout)


def bare_dnaio(path: Path) -> list[str]:
    return [sys.executable, "-c", "import dnaio, sys\n"
            "n = 0\nwith dnaio.open(sys.argv[1]) as r:\n    for _ in r: n += 1\nprint(n)",
            str(path)]


def plan_argv(path: Path, run: Path, dry: bool) -> list[str]:
    return [sys.executable, "-m", "virnuc_hpc", "plan", str(path), "--run-dir", str(run),
            "--models", "tiny", "--shards", "100", *(["--dry-run"] if dry else [])]


def warm_cache(folder: Path) -> None:
    tiny = folder / "warm.fa"
    tiny.write_text(">a\nACGTACGTAC\n")
    shutil.rmtree(folder / "warm-run", ignore_errors=True)
    subprocess.run(plan_argv(tiny, folder / "warm-run", True), check=True, capture_output=True,
                   env={**os.environ, "PYTHONPATH": str(REPO)})


def row(reads: int, size: str, label: str, got: dict, base: dict | None) -> str:
    ratio = f"{got['wall'] / base['wall']:.2f}" if base else "1.00"
    return (f"| {reads:,} | {size} | {label} | {got['wall']:.1f} | {got['cpu']:.1f} | "
            f"{got['rss_mib']:.0f} | {ratio} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, action="append")
    parser.add_argument("--dir", type=Path, default=Path("/var/tmp/virnuc-bench-plan"))
    parser.add_argument("--keep", action="store_true", help="keep the inputs")
    parser.add_argument("--cores", choices=("all", "one", "both"), default="both")
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("VIRNUC_HPC_CACHE", str(args.dir / "cache"))
    warm_cache(args.dir)
    print("| reads | input | cores | step | wall s | CPU s | peak RSS MiB | / dnaio (wall) |")
    print("|---|---|---|---|---|---|---|---|")
    for reads in args.reads or [1_000_000]:
        path = args.dir / f"reads-{reads}.fq.gz"
        if not path.exists():
            started = time.perf_counter()
            write_fastq(path, reads)
            print(f"(wrote {path}: {path.stat().st_size / 2**30:.2f} GiB in "
                  f"{time.perf_counter() - started:.0f} s)", file=sys.stderr)
        size = f"{path.stat().st_size / 2**30:.2f} GiB gzip"
        pins = {"all": [], "one": ["taskset", "-c", "0"]}
        for cores, pin in pins.items():
            if args.cores not in (cores, "both"):
                continue
            base = child(pin + bare_dnaio(path))
            print(row(reads, size, f"{cores} | bare dnaio parse", base, None), flush=True)
            for dry in (True, False):
                run = args.dir / f"run-{reads}"
                shutil.rmtree(run, ignore_errors=True)
                got = child(pin + plan_argv(path, run, dry))
                assert got["rc"] == 0, got["err"]
                label = "`plan --dry-run`" if dry else "`plan`"
                print(row(reads, size, f"{cores} | {label}", got, base), flush=True)
                if not dry and cores == "all":
                    files = {p.name: p.stat().st_size for p in (run / "shards").iterdir()
                             if not p.name.endswith(".manifest.json")}
                    print(f"(run dir shards/, manifests aside: {json.dumps(files)})",
                          file=sys.stderr)
                shutil.rmtree(run, ignore_errors=True)
        if not args.keep:
            path.unlink()


if __name__ == "__main__":
    main()

"""What each `--features` choice stores per kept frame, measured from the parts of real runs.

    python bench/bench_features.py [--reads 3000] [--part-rows 2048] [--models tiny]

Runs `--reads` synthetic coding-like reads of 150-300 bp (virnuc_hpc.sequences.synthetic, one 300-bp
chunk each) through the whole pipeline (plan, the task in this process, reduce) once per
choice: fp32, fp16, none. Prints per choice the frames, the bytes per frame of the parts
(safetensors: tensor data and header) and of the sidecars (frame IDs, checksums), what
features_index.json says, the same tensor bytes for the real widths (768 + 2560), the
largest fp16 row error (max |a - b| / max |a| per row) and whether every results file equals
the fp32 run's. Figures go in docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CHOICES = ("fp32", "fp16", "none")
REAL_WIDTHS = {"dnabert": 768, "esm": 2560}
RESULTS = ("prediction_results.txt", "prediction_results_highestscore.csv", "predictions.tsv")
FRAMES_OF_A_STUDY = 60_000_000  # the 100M-read study keeps about 60M frames


def run(input_path: Path, run_dir: Path, features: str, part_rows: int, models: str) -> None:
    """Plan, run the shard here, reduce."""
    from virnuc_hpc.models.cache import profile_fingerprints
    from virnuc_hpc.plan import plan_input
    from virnuc_hpc.reduce.merge import reduce_run
    from virnuc_hpc.task.run import run_task, task_options

    plan_input(input_path, run_dir, shards=1, chunk_size=300, profile=models,
               config={"features": features, "part_rows": part_rows},
               model_identities=profile_fingerprints(models, 300))
    run_task(run_dir, 0, task_options(run_dir, "cpu"))
    result = reduce_run(run_dir)
    assert result.ok, result.report()


def measure(run_dir: Path) -> dict:
    """Frames, part and sidecar bytes of the run's parts, and its features index."""
    from virnuc_hpc.core.rundir import RunDir

    run = RunDir(run_dir)
    task = run.task(0)
    index = json.loads(run.features_index.read_text())
    parts = task.part_indices()
    return {"frames": index["stored"]["frames"], "parts": len(parts),
            "part_bytes": sum(task.part(k).stat().st_size for k in parts),
            "sidecar_bytes": sum(task.sidecar(k).stat().st_size for k in parts),
            "index": index["features"]}


def rows(run_dir: Path) -> dict[str, np.ndarray]:
    """The features of every part, concatenated, as float32."""
    from safetensors.numpy import load_file

    from virnuc_hpc.core.rundir import RunDir

    task = RunDir(run_dir).task(0)
    loaded = [load_file(task.part(k)) for k in task.part_indices()]
    return {name: np.concatenate([t[name] for t in loaded]).astype(np.float32)
            for name in ("dnabert", "esm")}


def worst_fp16_error(full: Path, half: Path) -> float:
    a, b = rows(full), rows(half)
    return max(float((np.abs(b[n] - a[n]).max(1) / np.abs(a[n]).max(1)).max()) for n in a)


def same_results(run_dir: Path, reference: Path) -> bool:
    from virnuc_hpc.core.rundir import RunDir

    ours, theirs = RunDir(run_dir).results, RunDir(reference).results
    return all((ours / n).read_bytes() == (theirs / n).read_bytes() for n in RESULTS)


def table(work: Path) -> list[str]:
    from virnuc_hpc.parts import part_layout

    runs = {f: work / f for f in CHOICES}
    lines = ["| features | frames | part bytes/frame | sidecar bytes/frame | tensor bytes/frame "
             "(index) | real widths: tensor bytes/frame | 60M frames (real widths + measured "
             "overhead) | results = fp32's |", "|---" * 8 + "|"]
    for features, run_dir in runs.items():
        m = measure(run_dir)
        frames, index = m["frames"], m["index"]
        tensor = index["bytes_per_frame"]
        overhead = (m["part_bytes"] + m["sidecar_bytes"]) / frames - tensor
        real = part_layout(features, REAL_WIDTHS)["bytes_per_frame"]
        study = FRAMES_OF_A_STUDY * (real + overhead) / 1e9
        lines.append(f"| {features} | {frames:,} | {m['part_bytes'] / frames:,.1f} | "
                     f"{m['sidecar_bytes'] / frames:,.1f} | {tensor:,} | {real:,} | "
                     f"{study:,.1f} GB | {same_results(run_dir, runs['fp32'])} |")
    lines.append(f"\nlargest fp16 row error (max |a - b| / max |a|): "
                 f"{worst_fp16_error(runs['fp32'], runs['fp16']):.2e}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=3000)
    parser.add_argument("--part-rows", type=int, default=2048)
    parser.add_argument("--models", choices=("tiny", "real"), default="tiny")
    args = parser.parse_args()
    from virnuc_hpc.sequences import synthetic

    with tempfile.TemporaryDirectory(prefix="bench-features-") as tmp:
        work = Path(tmp)
        fasta = synthetic.write_fasta(work / "reads.fa",
                                      synthetic.reads(args.reads, 150, 300, seed=3))
        for features in CHOICES:
            run(fasta, work / features, features, args.part_rows, args.models)
        print(f"models {args.models}, {args.reads:,} reads, parts of {args.part_rows:,} "
              "frames\n")
        print("\n".join(table(work)))


if __name__ == "__main__":
    main()

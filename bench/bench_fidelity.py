"""What bf16 and fp16 trade against the fp32 reference: per-row cosine of the features, the
largest score change, and the calls that differ (per chunk and per sequence).

    python bench/bench_fidelity.py [--reads 10000] [--device cpu|cuda] [--models tiny|real]

Two inputs: the bundled example (44 reads) and `--reads` synthetic coding-like reads of
150-500 bp (virnuc_hpc.sequences.synthetic). Each is run through the whole pipeline (plan, the tasks
in this process, reduce) once per precision; the feature parts and the result files of each
reduced precision are compared with fp32's, frame by frame. On the CPU with the tiny profile
(torch runs bf16 and fp16 there) the figures show the code path works and how rounding
propagates through random weights; they are not the figures of the real models, which need
`--models real --device cuda` on a GPU node with the model cache fetched.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

EXAMPLE = REPO / "examples" / "reads.fa"
PRECISIONS = ("fp32", "bf16", "fp16")


def run(input_path: Path, run_dir: Path, precision: str, device: str, models: str) -> float:
    """Plan, run every shard here, reduce; the seconds it took."""
    from virnuc_hpc.models.cache import profile_fingerprints
    from virnuc_hpc.plan import load_plan, plan_input
    from virnuc_hpc.reduce.merge import reduce_run
    from virnuc_hpc.task.run import run_task, task_options

    start = time.perf_counter()
    plan_input(input_path, run_dir, shards=1, chunk_size=500, profile=models,
               config={"features": "fp32",  # the features are what it compares
                       **({} if precision == "fp32" else {"precision": precision})},
               model_identities=profile_fingerprints(models, 500))
    options = task_options(run_dir, device)
    for shard in load_plan(run_dir).shards:
        run_task(run_dir, shard.index, options)
    result = reduce_run(run_dir)
    assert result.ok, result.report()
    return time.perf_counter() - start


def features(run_dir: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(frame IDs, features [n, 768+2560 or tiny widths], scores [n, 2]) over every part."""
    from safetensors.numpy import load_file

    from virnuc_hpc.core.rundir import RunDir
    from virnuc_hpc.parts import read_done

    run, ids, rows, scores = RunDir(run_dir), [], [], []
    for k, _ in enumerate(read_done(run.task(0).root)["parts"]):
        tensors = load_file(str(run.task(0).part(k)))
        rows.append(np.concatenate([tensors["dnabert"], tensors["esm"]], axis=1))
        scores.append(tensors["scores"])
        ids += __import__("json").loads(run.task(0).sidecar(k).read_text())["ids"]
    return ids, np.concatenate(rows), np.concatenate(scores)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def calls(run_dir: Path) -> tuple[dict[str, str], dict[str, str]]:
    """Per chunk (VirNucPro's highest-score file) and per sequence (predictions.tsv)."""
    from virnuc_hpc.core.rundir import RunDir

    run = RunDir(run_dir)
    with open(run.highestscore) as handle:
        chunks = {r[0]: r[-1] for r in list(csv.reader(handle, delimiter="\t"))[1:]}
    with open(run.predictions) as handle:
        sequences = {r["sequence_id"]: r["call"] for r in csv.DictReader(handle, delimiter="\t")}
    return chunks, sequences


def compare(reference: Path, other: Path) -> dict:
    ids, ref_rows, ref_scores = features(reference)
    other_ids, rows, scores = features(other)
    assert ids == other_ids, "the same frames in the same order"
    cos = cosines(ref_rows, rows)
    ref_chunks, ref_seqs = calls(reference)
    chunks, seqs = calls(other)
    return {"frames": len(ids), "cos_min": cos.min(), "cos_p01": np.quantile(cos, 0.01),
            "cos_median": np.median(cos), "score_max_change": np.abs(scores - ref_scores).max(),
            "chunk_calls_differ": sum(ref_chunks[k] != chunks[k] for k in ref_chunks),
            "chunks": len(ref_chunks),
            "sequence_calls_differ": sum(ref_seqs[k] != seqs[k] for k in ref_seqs),
            "sequences": len(ref_seqs)}


def synthetic_input(folder: Path, count: int) -> Path:
    from virnuc_hpc.sequences.synthetic import reads, write_fasta

    return write_fasta(folder / f"synthetic-{count}.fa", reads(count, 150, 500, seed=7))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=10_000)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--models", choices=("tiny", "real"), default="tiny")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="virnuc-fidelity-") as scratch:
        scratch = Path(scratch)
        inputs = {"example (44 reads)": EXAMPLE,
                  f"synthetic ({args.reads:,} reads)": synthetic_input(scratch, args.reads)}
        print(f"models {args.models}, device {args.device}\n")
        print("| input | precision | frames | cosine min | cosine 1st pct | cosine median | "
              "largest score change | chunk calls differing | sequence calls differing | "
              "run s |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for label, path in inputs.items():
            dirs = {p: scratch / f"{path.stem}-{p}" for p in PRECISIONS}
            seconds = {p: run(path, d, p, args.device, args.models) for p, d in dirs.items()}
            for precision in PRECISIONS[1:]:
                c = compare(dirs["fp32"], dirs[precision])
                print(f"| {label} | {precision} | {c['frames']:,} | {c['cos_min']:.6f} | "
                      f"{c['cos_p01']:.6f} | {c['cos_median']:.6f} | "
                      f"{c['score_max_change']:.2e} | {c['chunk_calls_differ']} of "
                      f"{c['chunks']:,} | {c['sequence_calls_differ']} of {c['sequences']:,} | "
                      f"{seconds[precision]:.1f} (fp32 {seconds['fp32']:.1f}) |")


if __name__ == "__main__":
    main()

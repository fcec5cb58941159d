"""The encoders never wait for the CPU: a shard's wall time against its stand-in device time.

    python bench/bench_overlap.py [--reads 10000] [--part-rows 1000] [--frame-ms 2] [--depth 1]

Plans one shard of synthetic coding-like reads (tiny profile, parts of 1,000 frames; about
one kept frame per read), then runs its task in this process three times. First a recording
run: the real tiny encoders, sequential; it keeps every encoder batch's rows. Then two runs
on a device stand-in that returns those rows after `--frame-ms` per frame and encoder, asleep
(the GIL released, the CPU free, as while a GPU computes): with the overlap (`--depth` parts
ahead and behind) and without it (depth 0, what `VIRNUC_HPC_PREFETCH=0` runs). Device time is
the frames the stand-in served x frame-ms (both encoders). Printed per stand-in run: frames,
device time, the task's wall time (`run_task`: preparing, model load, every part, accounting,
DONE) and that of its parts (first part started to last part published), each over the
device time; and whether the part files, sidecars and accounting of all three runs are the
same bytes. Goal: the overlapped task's wall / device <= 1.05 (without it: device + CPU).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from virnuc_hpc.sequences import synthetic# noqa: E402


class StandIn:
    """The device stand-in. A recording run keeps each encoder batch's real rows (the tiny
    models on a CPU are far slower than a GPU, and would hold the CPU); a replay returns them
    after `frame_s` per frame, asleep (the GIL released, the CPU free), as a GPU would."""

    def __init__(self, frame_s: float):
        self.frame_s, self.rows = frame_s, {}
        self.frames, self.busy, self.misses = 0, 0.0, 0

    @staticmethod
    def key(encoder, tokens) -> str:
        digest = hashlib.sha256(type(encoder).__name__.encode())
        for array in tokens:
            digest.update(len(array).to_bytes(4, "little") + array.tobytes())
        return digest.hexdigest()

    @contextmanager
    def device(self, replay: bool):
        """`Encoder.forward` replaced for the block: recording, or replaying asleep."""
        from virnuc_hpc.models.encoders import Encoder

        real = Encoder.forward
        Encoder.forward = lambda encoder, tokens: (self.replayed if replay else self.recorded)(
            real, encoder, tokens)
        self.frames, self.busy, self.misses = 0, 0.0, 0
        try:
            yield self
        finally:
            Encoder.forward = real

    def recorded(self, real, encoder, tokens):
        rows = real(encoder, tokens)
        self.rows[self.key(encoder, tokens)] = rows.copy()
        return rows

    def replayed(self, real, encoder, tokens):
        start = time.perf_counter()
        rows = self.rows.get(self.key(encoder, tokens))
        if rows is None:  # a batch the recording never saw: computed (and counted)
            self.misses += 1
            rows = real(encoder, tokens)
        time.sleep(max(0.0, start + self.frame_s * len(tokens) - time.perf_counter()))
        self.frames += len(tokens)
        self.busy += time.perf_counter() - start
        return rows


@contextmanager
def parts_clock():
    """The parts' span: the first `features` call to the last `write_part` return."""
    from virnuc_hpc.parts import PartWriter
    from virnuc_hpc.task.frames import FramePipeline

    features, write_part, span = FramePipeline.features, PartWriter.write_part, {}

    def timed_features(self, part):
        span.setdefault("start", time.perf_counter())
        return features(self, part)

    def timed_write(self, *args):
        info = write_part(self, *args)
        span["end"] = time.perf_counter()
        return info

    FramePipeline.features, PartWriter.write_part = timed_features, timed_write
    try:
        yield span
    finally:
        FramePipeline.features, PartWriter.write_part = features, write_part


def setup(scratch: Path, args) -> Path:
    """The tiny models in a scratch cache, and one planned shard of synthetic reads."""
    from virnuc_hpc.models import ModelCache, profile_fingerprints, resolve_profile
    from virnuc_hpc.plan import plan_input

    os.environ["VIRNUC_HPC_CACHE"] = str(scratch / "cache")
    os.environ["VIRNUC_HPC_STAMPS"] = str(scratch / "stamps")
    for spec in resolve_profile("tiny", 500).specs():
        ModelCache(scratch / "cache").prewarm(spec)
    fasta = synthetic.write_fasta(scratch / "reads.fa",
                                  synthetic.reads(args.reads, 300, 1500, seed=3))
    run_dir = scratch / "planned"
    plan_input(fasta, run_dir, shards=1, profile="tiny",
               config={"part_rows": args.part_rows},
               model_identities=profile_fingerprints("tiny", 500))
    return run_dir


def shard_digests(run_dir: Path) -> dict[str, str]:
    from virnuc_hpc.core.rundir import RunDir

    task = RunDir(run_dir).task(0)
    files = [*sorted(task.root.glob("part-*")), task.accounting]
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def run_once(planned: Path, dest: Path, depth: int, stand_in: StandIn,
             replay: bool = True) -> dict:
    """One task run on a fresh copy of the planned shard; its figures."""
    from virnuc_hpc.task.run import run_task, task_options

    shutil.copytree(planned, dest)
    options = replace(task_options(dest, "cpu"), prefetch=depth)
    with stand_in.device(replay), parts_clock() as span:
        start = time.perf_counter()
        result = run_task(dest, 0, options)
        wall = time.perf_counter() - start
    device = stand_in.frames * stand_in.frame_s
    return {"depth": depth, "frames": result.rows, "device": device, "busy": stand_in.busy,
            "misses": stand_in.misses, "wall": wall, "parts_wall": span["end"] - span["start"],
            "digests": shard_digests(dest)}


def report(recording: dict, runs: list[dict], args) -> None:
    parts = sum(name.endswith(".safetensors") for name in recording["digests"])
    print(f"one shard: {args.reads} synthetic reads, {recording['frames']} frames in {parts} "
          f"parts of {args.part_rows}; stand-in {args.frame_ms} ms per frame and encoder; "
          f"torch threads {args.torch_threads}; recording run (the real tiny encoders, "
          f"sequential) {recording['wall']:.1f} s")
    print("| run | frames | device s | task wall s | task wall / device | parts wall s | "
          "parts wall / device | stand-in misses |")
    print("|---|---|---|---|---|---|---|---|")
    for run in runs:
        name = f"overlap (depth {run['depth']})" if run["depth"] else "sequential (depth 0)"
        print(f"| {name} | {run['frames']} | {run['device']:.2f} | {run['wall']:.2f} | "
              f"{run['wall'] / run['device']:.3f} | {run['parts_wall']:.2f} | "
              f"{run['parts_wall'] / run['device']:.3f} | {run['misses']} |")
    same = all(run["digests"] == recording["digests"] for run in runs)
    print("part files, sidecars and accounting byte-identical across the three runs: "
          f"{'yes' if same else 'NO'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=10000)
    parser.add_argument("--part-rows", type=int, default=1000)
    parser.add_argument("--frame-ms", type=float, default=2.0)
    parser.add_argument("--depth", type=int, default=1)
    parser.add_argument("--torch-threads", type=int, default=1,
                        help="every run's (one: the results do not depend on it across runs)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.torch_threads)
    stand_in = StandIn(args.frame_ms / 1000)
    with tempfile.TemporaryDirectory(prefix="virnuc-overlap-") as tmp:
        planned = setup(Path(tmp), args)
        recording = run_once(planned, Path(tmp) / "recording", 0, stand_in, replay=False)
        runs = [run_once(planned, Path(tmp) / f"run{depth}", depth, stand_in)
                for depth in (args.depth, 0)]
    report(recording, runs, args)


if __name__ == "__main__":
    main()

"""Every GPU figure of the project in one prepared run: `python bench/gpu_suite.py`.

GPU time comes rarely, and in windows of minutes. This script is ready before the GPU is:
it checks its environment first and says in one line what is missing, then measures
everything in at most about 8 minutes on one GPU, a step at a time. A step that fails is
recorded and the next one runs. It writes `suite.json` and `suite.md` under `--out`.

Steps (docs/gpu-suite.md says what each one measures, and how to bring the wheels):

  environment  the modules each step needs, the GPU, torch and CUDA
  matmul       the device's bf16 and fp32 matmul rates (the MFU denominator)
  esm          ESM-2 3B residues/s and MFU on 100 and 166 aa (300/500-bp chunks): bf16 on
               fixed shapes (the default), bf16 length-sorted (--no-invariant), bf16 compiled,
               fp16, fp32; the token budget each chose from free memory; peak memory
  dnabert      DNABERT-S sequences/s at bf16 and fp32 on 300 and 500-bp chunks, and bf16 sorted
  invariance   the same frames of real genomes alone, shuffled and in other batches, at bf16:
               rows that differ from the whole batch's (fixed shapes: must be 0; sorted: the
               reason for them), for ESM-2, DNABERT-S and the classifier
  fidelity     bf16 and fp16 against fp32 on the same frames: per-row cosine of the features,
               largest score change, calls that flip
  profile      one bf16 ESM-2 pass under torch.profiler: where the time goes, kernel by kernel
  load         real-size checkpoints written on this machine (ESM-2 3B in fair-esm's layout,
               DNABERT-S): verify, load, build, to-device, wall and host CPU, first on the node
               and with the node's stamp
  end_to_end   `run-task` of one shard of `--reads` 150-bp reads of real genomes with the
               real-size random-weight models: frames/s against the ESM-only rate on the same
               frames, and the GPU's busy share (NVML or nvidia-smi, sampled every 0.2 s)

The measured ESM-2 3B rate at bf16 on fixed shapes is recorded (`--record`, the default on a
GPU) where `plan` finds it (plan/throughput.py), so that later plans estimate and size shards with
it, labelled measured, with the GPU's name.

`--device cpu --smoke` runs every step with tiny shapes (the test suite runs it, so that this
script cannot rot between loans); its figures say nothing about any GPU.
"""

from __future__ import annotations

import argparse
import gzip
import importlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

GENOMES = REPO / "tests" / "data" / "genomes"
STEPS = ("environment", "matmul", "esm", "dnabert", "invariance", "fidelity", "profile", "load",
         "end_to_end")
# module -> (what to bring, which steps need it); torch and numpy come with the machine
NEEDS = {
    "torch": ("torch", STEPS), "numpy": ("numpy", STEPS),
    "esm": ("fair-esm==2.0.0", STEPS), "yaml": ("pyyaml", STEPS),
    "safetensors": ("safetensors", STEPS), "tokenizers": ("tokenizers", STEPS),
    "filelock": ("filelock", ("load", "end_to_end")),
    "xxhash": ("xxhash", ("end_to_end",)), "dnaio": ("dnaio", ("end_to_end",)),
    "zstd": ("backports-zstd (Python < 3.14)", ("end_to_end",)),
}
BUDGET_S = 480


@dataclass(frozen=True)
class Sizes:
    """What the suite builds and how much it runs: the real sizes, or tiny ones (--smoke)."""

    esm: tuple[int, int, int]            # layers, width, heads
    dnabert: dict                        # DnabertConfig fields
    sequences: dict                      # per precision, for the throughput passes
    repeats: int
    frames: int                          # frames of real reads for invariance and fidelity
    reads: int                           # end-to-end reads of 150 bp
    matmul: int
    profile: str                         # the end-to-end model profile
    extra: dict = field(default_factory=dict)


REAL = Sizes(esm=(36, 2560, 40), dnabert={}, sequences={"bf16": 2000, "fp16": 2000,
                                                        "fp32": 300},
             repeats=2, frames=768, reads=50_000, matmul=8192, profile="real")
SMOKE = Sizes(esm=(2, 64, 4), dnabert={"vocab_size": 4096, "hidden_size": 48,
                                        "num_hidden_layers": 2, "num_attention_heads": 12,
                                        "intermediate_size": 96},
              sequences={"bf16": 24, "fp16": 24, "fp32": 24}, repeats=1, frames=48, reads=60,
              matmul=256, profile="tiny")


def zstd_module():
    try:
        return importlib.import_module("compression.zstd")
    except ImportError:
        return importlib.import_module("backports.zstd")


def missing_modules() -> dict[str, str]:
    """module -> what to bring, for every module this environment cannot import."""
    missing = {}
    for module, (wheel, _) in NEEDS.items():
        try:
            zstd_module() if module == "zstd" else importlib.import_module(module)
        except ImportError:
            missing[module] = wheel
    return missing


class Suite:
    """Runs the steps, records each one's figures (or its error), writes JSON and markdown."""

    def __init__(self, args):
        import torch

        self.args, self.torch = args, torch
        self.device = args.device
        self.sizes = SMOKE if args.smoke else REAL
        self.out = Path(args.out)
        self.work = Path(args.workdir or tempfile.mkdtemp(prefix="virnuc-gpu-suite-"))
        self.results: dict = {"started": time.time(), "smoke": args.smoke, "steps": {}}
        self.start = time.monotonic()
        self._frames = None

    # -- driving ---------------------------------------------------------------------------

    def run(self, steps: list[str]) -> dict:
        for step in steps:
            spent = time.monotonic() - self.start
            if step != "environment" and spent > self.args.budget_s:
                self.results["steps"][step] = {"skipped": f"over the {self.args.budget_s} s "
                                                          f"budget ({spent:.0f} s spent)"}
                continue
            began = time.monotonic()
            print(f"[{spent:6.1f} s] {step} ...", flush=True)
            try:
                figures = getattr(self, step)()
            except Exception as exc:  # a step's failure is a result: the next step runs
                figures = {"error": f"{type(exc).__name__}: {exc}",
                           "traceback": traceback.format_exc()[-3000:]}
                print(f"  failed: {figures['error']}", flush=True)
            figures["seconds"] = round(time.monotonic() - began, 2)
            self.results["steps"][step] = figures
            self.free()
        self.results["seconds"] = round(time.monotonic() - self.start, 1)
        self.write()
        return self.results

    def free(self) -> None:
        import gc

        gc.collect()
        if self.device == "cuda":
            self.torch.cuda.empty_cache()

    def write(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "suite.json").write_text(json.dumps(self.results, indent=1, default=str)
                                             + "\n")
        (self.out / "suite.md").write_text(markdown(self.results))

    def sync(self) -> None:
        if self.device == "cuda":
            self.torch.cuda.synchronize()

    def reset_peak(self) -> None:
        if self.device == "cuda":
            self.torch.cuda.reset_peak_memory_stats()

    def peak_gib(self) -> float:
        if self.device == "cuda":
            return round(self.torch.cuda.max_memory_allocated() / 2**30, 2)
        import resource

        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)

    # -- the steps ---------------------------------------------------------------------------

    def environment(self) -> dict:
        torch = self.torch
        info = {"python": platform.python_version(), "torch": torch.__version__,
                "cuda": torch.version.cuda, "device": self.device,
                "missing": missing_modules()}
        if self.device == "cuda":
            props = torch.cuda.get_device_properties(0)
            info.update(gpu=props.name, capability=f"{props.major}.{props.minor}",
                        memory_gib=round(props.total_memory / 2**30, 1),
                        multiprocessors=props.multi_processor_count)
        else:
            info["threads"] = torch.get_num_threads()
        return info

    def matmul(self) -> dict:
        torch, size = self.torch, self.sizes.matmul
        out = {}
        for name, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
            out[f"{name}_tflops"] = round(timed_matmul(torch, self.device, size, dtype) / 1e12,
                                          4)
        out["size"] = size
        # MFU against the bf16 rate on a GPU (docs/gpu-ceilings.md's rule), fp32 on a CPU
        self.peak_rate = out["bf16_tflops"] if self.device == "cuda" else out["fp32_tflops"]
        return out

    def esm_model(self, precision: str):
        """A random ESM-2 of the suite's size on the device at `precision`: the same weights
        every time (seeded, built at fp32, then cast), so precisions compare like for like."""
        import esm
        from esm.model.esm2 import ESM2

        from virnuc_hpc.models.encoders import PRECISIONS

        layers, width, heads = self.sizes.esm
        alphabet = esm.data.Alphabet.from_architecture("ESM-1b")
        self.torch.manual_seed(0)
        with self.torch.device(self.device):
            model = ESM2(layers, width, heads, alphabet, token_dropout=True).eval()
        return model.to(PRECISIONS[precision]), alphabet

    def dnabert_model(self, precision: str):
        from virnuc_hpc.models.encoders import PRECISIONS
        from virnuc_hpc.models.dnabert import DnabertConfig, DnabertModel

        self.torch.manual_seed(0)
        with self.torch.device(self.device):
            model = DnabertModel(DnabertConfig(**self.sizes.dnabert)).eval()
        return model.to(PRECISIONS[precision])

    def esm(self) -> dict:
        rows = []
        configs = [("bf16", True, False, 300), ("bf16", True, False, 500),
                   ("bf16", False, False, 300), ("bf16", False, False, 500),
                   ("bf16", True, True, 300), ("fp16", True, False, 300),
                   ("fp32", True, False, 300)]
        for precision, invariant, compiled, chunk in configs:
            if compiled and self.device == "cpu":
                continue   # a C compiler run of minutes on a CPU: the GPU measures it
            rows.append(self.esm_rate(precision, invariant, compiled, chunk))
            print(f"  esm {rows[-1]['label']}: {rows[-1]['residues_per_s']:,.0f} residues/s",
                  flush=True)
        default = next(r for r in rows if r["label"] == "bf16 fixed shapes, 300 bp")
        sorted_rate = next(r for r in rows if r["label"] == "bf16 length-sorted, 300 bp")
        out = {"rows": rows, "invariant_over_sorted": round(
            default["residues_per_s"] / sorted_rate["residues_per_s"], 3)}
        if self.args.record:
            out["recorded"] = self.record(default)
        return out

    def esm_rate(self, precision, invariant, compiled, chunk) -> dict:
        """One configuration's throughput; the peak memory counts the model and the batches
        (the budget is sized from the memory left free, as in a task)."""
        from virnuc_hpc.models.bench import workload
        from virnuc_hpc.models.encoders import EsmEncoder, device_shapes

        torch = self.torch
        model, alphabet = self.esm_model(precision)
        self.free()
        self.reset_peak()
        shapes = device_shapes(self.device) if invariant else None
        encoder = EsmEncoder(model, alphabet, self.device, precision, None, compiled, shapes)
        n = self.sizes.sequences[precision]
        tokens, _ = workload(encoder, chunk, n, _rng(chunk))
        lengths = [len(t) for t in tokens]
        warm = timed(self, encoder, tokens[:512])
        passes = [timed(self, encoder, tokens) for _ in range(self.sizes.repeats)]
        median = statistics.median(passes)
        layers, width, _ = self.sizes.esm
        params = sum(p.numel() for p in model.layers.parameters())
        useful = sum(2 * params * m + layers * 4 * m * m * width for m in lengths)
        residues = sum(lengths) - 2 * n
        label = (f"{precision} {'fixed shapes' if invariant else 'length-sorted'}"
                 f"{', compiled' if compiled else ''}, {chunk} bp")
        row = {"label": label, "precision": precision, "invariant": invariant,
               "compiled": compiled, "chunk_size": chunk, "sequences": n,
               "residues": residues, "residues_per_s": round(residues / median, 1),
               "sequences_per_s": round(n / median, 2),
               "mfu": round(useful / median / (self.peak_rate * 1e12), 4),
               "tokens_per_batch": encoder.tokens_per_batch, "warmup_s": round(warm, 2),
               "pass_s": [round(p, 3) for p in passes], "peak_memory_gib": self.peak_gib()}
        del encoder, model
        self.free()
        torch.manual_seed(0)
        return row

    def record(self, row: dict) -> str:
        """The default path's ESM-2 3B rate, where plan finds it."""
        from virnuc_hpc.plan.throughput import record_measurement

        gpu = self.results["steps"].get("environment", {}).get("gpu", self.device)
        path = record_measurement({"precision": row["precision"],
                                   "residues_per_s": row["residues_per_s"], "device": gpu,
                                   "tool": "bench/gpu_suite.py", "suite": row})
        return str(path)

    def dnabert(self) -> dict:
        from virnuc_hpc.models.bench import workload
        from virnuc_hpc.models.encoders import DnabertEncoder, device_shapes

        rows = []
        for precision, invariant, chunk in [("bf16", True, 300), ("bf16", True, 500),
                                            ("fp32", True, 300), ("fp32", True, 500),
                                            ("bf16", False, 300)]:
            model = self.dnabert_model(precision)
            self.free()
            self.reset_peak()
            shapes = device_shapes(self.device) if invariant else None
            encoder = DnabertEncoder(model, None, self.device, precision, None, False, shapes)
            n = 4 * self.sizes.sequences["bf16"]
            tokens, _ = workload(encoder, chunk, n, _rng(chunk))
            timed(self, encoder, tokens[:512])
            passes = [timed(self, encoder, tokens) for _ in range(self.sizes.repeats)]
            median = statistics.median(passes)
            rows.append({"label": f"{precision} {'fixed shapes' if invariant else 'sorted'}, "
                                  f"{chunk} bp", "sequences": n,
                         "sequences_per_s": round(n / median, 1),
                         "tokens_per_batch": encoder.tokens_per_batch,
                         "peak_memory_gib": self.peak_gib()})
            print(f"  dnabert {rows[-1]['label']}: {rows[-1]['sequences_per_s']:,.0f} seq/s",
                  flush=True)
            del encoder, model
            self.free()
        return {"rows": rows}

    # -- invariance and fidelity on frames of real reads --------------------------------------

    def frames(self):
        """Kept frames of reads of 20-1,400 bp of the bundled real genomes (500-bp chunks)."""
        if self._frames is None:
            from virnuc_hpc.sequences import prepare
            from virnuc_hpc.sequences.reader import Record

            reads = real_reads(self.sizes.frames, 20, 1400, seed=3)
            records = [Record(rid, seq, i, 1) for i, (rid, seq) in enumerate(reads)]
            frames = [f for p in prepare(records, 500) for f in p.frames]
            self._frames = frames[: self.sizes.frames]
        return self._frames

    def dnabert_tokenizer(self):
        """A BPE tokenizer of DNABERT-S's vocabulary size (the real one cannot be fetched)."""
        from virnuc_hpc.models.dnabert import DnabertConfig, DnabertTokenizer
        from virnuc_hpc.models.tiny import dnabert_tokenizer_files

        folder = self.work / "dnabert-tokenizer"
        if not folder.is_dir():
            folder.mkdir(parents=True)
            vocab = DnabertConfig(**self.sizes.dnabert).vocab_size
            for name, data in dnabert_tokenizer_files(vocab_size=vocab).items():
                (folder / name).write_bytes(data)
        return DnabertTokenizer(folder)

    def encoders(self, precision: str, invariant: bool, budget: int | None = None):
        """(DNABERT-S encoder, ESM-2 encoder) over the models `load_encoder_models` built."""
        from virnuc_hpc.models.encoders import DnabertEncoder, EsmEncoder, device_shapes

        shapes = device_shapes(self.device) if invariant else None
        esm_model, alphabet = self.esm_models[precision]
        return (DnabertEncoder(self.dnabert_models[precision], self.dnabert_tokenizer(),
                               self.device, precision, budget, False, shapes),
                EsmEncoder(esm_model, alphabet, self.device, precision, budget, False, shapes))

    def load_encoder_models(self, precisions) -> None:
        self.esm_models = {p: self.esm_model(p) for p in precisions}
        self.dnabert_models = {p: self.dnabert_model(p) for p in precisions}

    def invariance(self) -> dict:
        import numpy as np

        frames = self.frames()
        self.load_encoder_models(["bf16"])
        out = {"frames": len(frames), "precision": "bf16"}
        rng = np.random.default_rng(0)
        order = rng.permutation(len(frames))
        for invariant in (True, False):
            label = "fixed shapes" if invariant else "length-sorted"
            dnabert, esm = self.encoders("bf16", invariant)
            small_d, small_e = self.encoders("bf16", invariant, budget=1024)
            for name, enc, small, texts in (
                    ("dnabert", dnabert, small_d, [f.nucleotide for f in frames]),
                    ("esm", esm, small_e, [f.protein for f in frames])):
                whole = enc.embed(texts)
                shuffled = np.empty_like(whole)
                shuffled[order] = enc.embed([texts[i] for i in order])
                alone = np.stack([enc.embed([t])[0] for t in texts[:64]])
                smaller = small.embed(texts)
                out[f"{name} {label}"] = {
                    "differ shuffled": int((shuffled != whole).any(1).sum()),
                    "differ alone (first 64)": int((alone != whole[:64]).any(1).sum()),
                    "differ in 1k-token batches": int((smaller != whole).any(1).sum())}
        scores = self.score_invariance(rng)
        out["classifier fixed chunks"] = scores
        del self.esm_models, self.dnabert_models
        out["ok"] = all(v == 0 for k, d in out.items() if isinstance(d, dict)
                        and ("fixed" in k) for v in d.values())
        return out

    def score_invariance(self, rng) -> dict:
        import numpy as np

        from virnuc_hpc.task.frames import fixed_scores

        classifier = random_classifier(self.torch, self.device, 768 + 2560)
        features = rng.normal(size=(1000, 768 + 2560)).astype(np.float32)
        whole = fixed_scores(classifier, features, self.device)
        parts = np.concatenate([fixed_scores(classifier, features[i:i + 37], self.device)
                                for i in range(0, 1000, 37)])
        return {"differ in parts of 37": int((parts != whole).any(1).sum())}

    def fidelity(self) -> dict:
        import numpy as np

        from virnuc_hpc.task.frames import fixed_scores

        frames = self.frames()
        self.load_encoder_models(["fp32", "bf16", "fp16"])
        nucleotides, proteins = [f.nucleotide for f in frames], [f.protein for f in frames]
        features = {}
        for precision in ("fp32", "bf16", "fp16"):
            dnabert, esm = self.encoders(precision, True)
            features[precision] = np.concatenate([dnabert.embed(nucleotides),
                                                  esm.embed(proteins)], axis=1)
        del self.esm_models, self.dnabert_models
        width = features["fp32"].shape[1]
        classifier = random_classifier(self.torch, self.device, width)
        scores = {p: fixed_scores(classifier, f, self.device) for p, f in features.items()}
        out = {"frames": len(frames), "note": "random weights: the numerics of the code path, "
                                              "not of the trained models"}
        for precision in ("bf16", "fp16"):
            a, b = features[precision], features["fp32"]
            cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
            out[precision] = {
                "min_cosine": round(float(cosine.min()), 6),
                "median_cosine": round(float(np.median(cosine)), 6),
                "max_score_change": float(np.abs(scores[precision] - scores["fp32"]).max()),
                "calls_that_differ": int((scores[precision].argmax(1)
                                          != scores["fp32"].argmax(1)).sum())}
        return out

    def profile(self) -> dict:
        from torch.profiler import ProfilerActivity, profile

        from virnuc_hpc.models.bench import workload
        from virnuc_hpc.models.encoders import EsmEncoder, device_shapes

        model, alphabet = self.esm_model("bf16")
        encoder = EsmEncoder(model, alphabet, self.device, "bf16", None, False,
                             device_shapes(self.device))
        tokens, _ = workload(encoder, 300, min(256, self.sizes.sequences["bf16"]), _rng(1))
        encoder.embed_tokens(tokens)
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA]
                                               if self.device == "cuda" else [])
        with profile(activities=activities) as prof:
            encoder.embed_tokens(tokens)
            self.sync()
        key = "self_cuda_time_total" if self.device == "cuda" else "self_cpu_time_total"
        table = prof.key_averages().table(sort_by=key, row_limit=15, max_name_column_width=60)
        (self.out / "profile.txt").parent.mkdir(parents=True, exist_ok=True)
        (self.out / "profile.txt").write_text(table)
        top = sorted(prof.key_averages(), key=lambda e: -getattr(e, key))[:10]
        total = sum(getattr(e, key) for e in prof.key_averages())
        return {"sequences": len(tokens), "sorted_by": key,
                "top": [{"name": e.key[:80], "share": round(getattr(e, key) / total, 4),
                         "calls": e.count} for e in top]}

    # -- model load and the whole task ---------------------------------------------------------

    def cache(self) -> Path:
        """A model cache of the suite's size: real-size random weights (the real profile's
        names), or the tiny profile (--smoke)."""
        root = self.work / "cache"
        if self.sizes.profile == "tiny":
            from virnuc_hpc.models import ModelCache, resolve_profile

            for spec in resolve_profile("tiny", 500).specs():
                ModelCache(root).prewarm(spec)
            return root
        sys.path.insert(0, str(REPO / "bench"))
        from bench_model_load import make_cache, write_entry

        make_cache(root)
        classifier = root / "virnucpro-500"
        if not (classifier / "MANIFEST.json").is_file():
            import io

            buffer = io.BytesIO()
            model = random_classifier(self.torch, "cpu", 768 + 2560)
            self.torch.save(model.state_dict(), buffer)
            write_entry(classifier, "virnucpro-500", "classifier", 768 + 2560,
                        {"500_model.pth": buffer.getvalue()})
        return root

    def load(self) -> dict:
        if self.sizes.profile == "tiny":
            return self.load_tiny()
        written = time.monotonic()
        root = self.cache()
        out = {"write_s": round(time.monotonic() - written, 1)}
        precision = "bf16" if self.device == "cuda" else "fp32"
        for model in ("esm", "dnabert"):
            stamps = Path(tempfile.mkdtemp(prefix="virnuc-stamps-"))
            for when in ("first on the node", "stamped"):
                out[f"{model}, {when}"] = load_child(model, root, self.device, precision,
                                                     stamps)
            shutil.rmtree(stamps, ignore_errors=True)
        return out

    def load_tiny(self) -> dict:
        """--smoke: the tiny profile's load, timed the same way (in this process)."""
        from virnuc_hpc.models import LoadedModels, resolve_profile

        root = self.cache()
        os.environ["VIRNUC_HPC_CACHE"] = str(root)
        began = time.perf_counter()
        with LoadedModels(resolve_profile("tiny", 500), device=self.device) as models:
            assert models.esm and models.dnabert and models.classifier
        return {"tiny profile, all three": {"wall_s": round(time.perf_counter() - began, 3)}}

    def end_to_end(self) -> dict:
        root = self.cache()
        reads = self.work / "reads.fa.gz"
        count = self.args.reads or self.sizes.reads
        write_reads(reads, real_reads(count, 150, 150, seed=11))
        run = self.work / "e2e-run"
        shutil.rmtree(run, ignore_errors=True)
        env = dict(os.environ, VIRNUC_HPC_CACHE=str(root), VIRNUC_HPC_HEARTBEAT_S="0.5",
                   VIRNUC_HPC_STAMPS=str(self.work / "stamps"))
        cli = [sys.executable, "-m", "virnuc_hpc"]
        planned = subprocess.run([*cli, "plan", str(reads), "--run-dir", str(run), "--models",
                                  self.sizes.profile, "--shards", "1"], env=env,
                                 capture_output=True, text=True, cwd=REPO)
        if planned.returncode != 0:
            raise RuntimeError(f"plan failed: {planned.stderr[-2000:]}")
        sampler = GpuSampler(self.device, run / "tasks")
        began = time.monotonic()
        with sampler:
            task = subprocess.run([*cli, "run-task", str(run), "--index", "0"], env=env,
                                  capture_output=True, text=True, cwd=REPO)
        wall = time.monotonic() - began
        if task.returncode != 0:
            raise RuntimeError(f"run-task failed: {task.stderr[-2000:]}")
        done = json.loads(next((run / "tasks").rglob("DONE")).read_text())
        frames = done["rows"]
        # the task's own rate: frames per second since embedding began (model load excluded)
        rate = done.get("rate") or frames / (sampler.embedding_s or wall)
        out = {"reads": count, "frames": frames, "task_wall_s": round(wall, 1),
               "embedding_s": round(frames / rate, 1) if rate else None,
               "frames_per_s": round(rate, 1),
               "gpu_busy_share_task": sampler.share(), "gpu_busy_share_embedding":
                   sampler.share(embedding=True), "samples": len(sampler.samples)}
        esm_only = self.esm_only(run, root)
        out.update(esm_only)
        if esm_only.get("esm_only_frames_per_s"):
            out["pipeline_share"] = round(out["frames_per_s"] / esm_only["esm_only_frames_per_s"],
                                          3)
        estimate = subprocess.run([*cli, "plan", str(reads), "--run-dir", str(self.work / "x"),
                                   "--models", self.sizes.profile, "--dry-run"], env=env,
                                  capture_output=True, text=True, cwd=REPO)
        out["plan_estimate"] = next((line for line in estimate.stdout.splitlines()
                                     if line.startswith("GPU hours")), estimate.stderr[-300:])
        return out

    def esm_only(self, run: Path, root: Path) -> dict:
        """The ESM-2 encoder alone on the shard's own proteins, as the task ran it."""
        from virnuc_hpc.models.encoders import EsmEncoder
        from virnuc_hpc.models import LoadedModels, resolve_profile
        from virnuc_hpc.plan import iter_shard_records, load_plan
        from virnuc_hpc.sequences import prepare

        plan = load_plan(run)
        config = plan.config
        proteins = [f.protein for p in prepare(iter_shard_records(run, 0), plan.chunk_size)
                    for f in p.frames]
        os.environ["VIRNUC_HPC_CACHE"] = str(root)
        with LoadedModels(resolve_profile(plan.profile, plan.chunk_size), device=self.device,
                          precision=config.precision) as models:
            model, alphabet = models.esm
            encoder = EsmEncoder(model, alphabet, self.device, config.precision,
                                 config.tokens_per_batch, config.compile, config.shapes)
            tokens = encoder.tokenize(proteins)
            encoder.embed_tokens(tokens[:256])
            seconds = timed(self, encoder, tokens)
        return {"esm_only_frames_per_s": round(len(proteins) / seconds, 1),
                "esm_only_residues_per_s": round(sum(len(p) for p in proteins) / seconds, 1)}


# -- helpers ----------------------------------------------------------------------------------

def _rng(seed: int):
    import numpy as np

    return np.random.default_rng(seed)


def timed(suite: Suite, encoder, tokens) -> float:
    suite.sync()
    began = time.perf_counter()
    encoder.embed_tokens(tokens)
    suite.sync()
    return time.perf_counter() - began


def timed_matmul(torch, device: str, size: int, dtype) -> float:
    """FLOP/s of a square matmul, best of 5 after a warm-up."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(6):
        if device == "cuda":
            torch.cuda.synchronize()
        began = time.perf_counter()
        torch.matmul(a, b)
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - began)
    return 2 * size**3 / best


def random_classifier(torch, device: str, width: int):
    from virnuc_hpc.models.classifier import MLPClassifier

    torch.manual_seed(1)
    return MLPClassifier(width).eval().to(device)


def real_reads(n: int, low: int, high: int, seed: int) -> list[tuple[str, str]]:
    """`n` reads of the bundled genomes, both strands (tests/invariance/genomes.py's rule)."""
    import numpy as np

    genomes = {}
    for path in sorted(GENOMES.glob("*.fa.gz")):
        lines = gzip.decompress(path.read_bytes()).decode().splitlines()
        genomes[path.name.split("_")[0]] = "".join(lines[1:])
    names, rng, out = sorted(genomes), np.random.default_rng(seed), []
    complement = str.maketrans("ACGTacgtNn", "TGCAtgcaNn")
    for i in range(n):
        name = names[int(rng.integers(len(names)))]
        seq, length = genomes[name], int(rng.integers(low, high + 1))
        start = int(rng.integers(len(seq) - length))
        read = seq[start:start + length]
        if rng.integers(2):
            read = read.translate(complement)[::-1]
        out.append((f"r{i}_{name}_{start}", read))
    return out


def write_reads(path: Path, reads) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(f">{rid}\n{seq}\n" for rid, seq in reads)
    path.write_bytes(gzip.compress(text.encode(), compresslevel=1))


def load_child(model: str, root: Path, device: str, precision: str, stamps: Path) -> dict:
    """bench_model_load's new path, in a fresh process: {step: {wall_s, host_s}}, totals."""
    env = dict(os.environ, VIRNUC_HPC_STAMPS=str(stamps))
    done = subprocess.run([sys.executable, str(REPO / "bench" / "bench_model_load.py"),
                           "--child", "after", "--model", model, "--dir", str(root),
                           "--device", device, "--precision", precision], env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"load of {model} failed: {done.stderr[-2000:]}")
    steps = json.loads(done.stdout.strip().splitlines()[-1])["steps"]
    steps["total"] = {k: round(sum(s[k] for s in steps.values()), 3) for k in ("wall_s",
                                                                              "host_s")}
    return steps


class GpuSampler:
    """GPU utilization every 0.2 s while a task runs (NVML, else nvidia-smi), and when the
    task's heartbeat says it began embedding (the end of model loading)."""

    def __init__(self, device: str, tasks: Path):
        self.device, self.tasks = device, tasks
        self.samples: list[tuple[float, float, str]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.embedding_from: float | None = None
        self.ended: float | None = None

    def __enter__(self):
        self.began = time.monotonic()
        self.read = self._reader()
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.ended = time.monotonic()
        self.stop.set()
        self.thread.join()

    @property
    def embedding_s(self) -> float | None:
        if self.embedding_from is None or self.ended is None:
            return None
        return self.ended - self.embedding_from

    def share(self, embedding: bool = False) -> float | None:
        picked = [u for t, u, phase in self.samples if u is not None and
                  (not embedding or phase == "embedding")]
        return round(statistics.mean(picked) / 100, 3) if picked else None

    def _loop(self) -> None:
        while not self.stop.wait(0.2):
            phase = self._phase()
            if phase == "embedding" and self.embedding_from is None:
                self.embedding_from = time.monotonic()
            self.samples.append((time.monotonic() - self.began, self.read(), phase))

    def _phase(self) -> str:
        for beat in self.tasks.rglob("heartbeat.json"):
            try:
                return json.loads(beat.read_text()).get("phase", "?")
            except (OSError, ValueError):
                return "?"
        return "starting"

    def _reader(self):
        if self.device != "cuda":
            return lambda: None
        try:
            import pynvml

            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(0)
            return lambda: float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
        except Exception:
            def smi() -> float | None:
                done = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu",
                                       "--format=csv,noheader,nounits", "-i", "0"],
                                      capture_output=True, text=True)
                return float(done.stdout.strip()) if done.returncode == 0 else None
            return smi


def markdown(results: dict) -> str:
    """Every step's figures as markdown tables (suite.md)."""
    steps = results["steps"]
    env = steps.get("environment", {})
    lines = [f"# GPU suite: {env.get('gpu', env.get('device', '?'))}"
             f"{' (smoke: tiny shapes, no GPU figure)' if results.get('smoke') else ''}", "",
             f"torch {env.get('torch')}, CUDA {env.get('cuda')}, Python {env.get('python')}; "
             f"{results.get('seconds')} s in all", ""]
    for name, figures in steps.items():
        lines += [f"## {name} ({figures.get('seconds', '-')} s)", ""]
        if "error" in figures or "skipped" in figures:
            lines += [f"**{figures.get('error') or figures.get('skipped')}**", ""]
            continue
        figures = {k: v for k, v in figures.items() if k not in ("seconds", "traceback")}
        lists = {k: v for k, v in figures.items()
                 if isinstance(v, list) and v and isinstance(v[0], dict)}
        nested = {k: v for k, v in figures.items() if isinstance(v, dict) and v
                  and all(isinstance(x, dict) for x in v.values())}
        records = {k: v for k, v in figures.items() if isinstance(v, dict) and v
                   and k not in nested}
        for rows in lists.values():
            lines += _table(rows)
        if records:
            lines += _table([{"": k, **v} for k, v in records.items()])
        for key, table in nested.items():
            lines += [f"{key}:", ""] + _table([{"": k, **v} for k, v in table.items()])
        scalars = {k: v for k, v in figures.items()
                   if k not in (*lists, *nested, *records)}
        if scalars:
            lines += _table([{"figure": k, "value": v} for k, v in scalars.items()])
    return "\n".join(lines) + "\n"


def _table(rows: list[dict]) -> list[str]:
    keys = [k for k in dict.fromkeys(k for r in rows for k in r) if k != "pass_s"]
    return (["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
            + ["| " + " | ".join(_cell(r.get(k, "")) for k in keys) + " |" for r in rows]
            + [""])


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_cell(v)}" for k, v in value.items())
    if isinstance(value, list):
        return "; ".join(_cell(v) for v in value)
    return str(value).replace("|", "\\|")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny shapes (the test suite's CPU run): every step, no GPU figure")
    parser.add_argument("--out", default="gpu-suite", help="where suite.json and suite.md go")
    parser.add_argument("--workdir", help="scratch (checkpoints, reads, runs); default: a temp "
                                          "folder")
    parser.add_argument("--only", help=f"comma-separated steps of: {', '.join(STEPS)}")
    parser.add_argument("--reads", type=int, help="end_to_end's 150-bp reads (default 50,000; "
                                                   "60 with --smoke)")
    parser.add_argument("--budget-s", type=float, default=BUDGET_S,
                        help="skip the steps left once this many seconds are spent")
    parser.add_argument("--record", action=argparse.BooleanOptionalAction, default=None,
                        help="record the ESM-2 rate for plan's estimates (default: on a GPU)")
    args = parser.parse_args(argv)
    steps = args.only.split(",") if args.only else list(STEPS)
    unknown = sorted(set(steps) - set(STEPS))
    if unknown:
        parser.error(f"unknown step(s) {', '.join(unknown)}; valid: {', '.join(STEPS)}")
    steps = ["environment", "matmul", *(s for s in steps if s not in ("environment", "matmul"))]
    missing = {m: w for m, w in missing_modules().items()
               if any(step in NEEDS[m][1] for step in steps)}
    if missing:
        print("gpu_suite: missing " + ", ".join(f"{m} (bring {w})" for m, w in missing.items())
              + "; see docs/gpu-suite.md, 'Bringing the wheels'", file=sys.stderr)
        return 2
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_suite: --device cuda but torch sees no GPU (torch "
              f"{torch.__version__}); run on a GPU node, or --device cpu --smoke",
              file=sys.stderr)
        return 2
    if args.record is None:
        args.record = args.device == "cuda" and not args.smoke
    results = Suite(args).run(steps)
    failed = [s for s, f in results["steps"].items() if "error" in f]
    print(f"suite: {len(results['steps'])} steps in {results['seconds']} s"
          + (f"; failed: {', '.join(failed)}" if failed else "")
          + f"; {Path(args.out) / 'suite.md'}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

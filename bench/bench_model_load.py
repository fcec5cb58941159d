"""A task's model load, before and after the fast loader: verify / load / to-device seconds for
a real-size ESM-2 3B checkpoint in fair-esm's layout (random fp16 weights, 5.7 GB) and a
real-size DNABERT-S folder, from a warm page cache (goal: <= 4 s of host time for ESM-2 3B).

    python bench/bench_model_load.py [--dir /var/tmp/virnuc-load] [--device cpu|cuda]
                                     [--precision bf16] [--skip-before] [--remove]

`before` is the code a task ran until this bench: sha256 of every file at every task, then
fair-esm's `load_model_and_alphabet_core` (which builds the model with random initialisation
on the CPU before the checkpoint overwrites it), then the cast/move. `after` is this
package's path: `ModelCache.verify` (first on the node, then with the node's stamp), then
`models.esm.load_esm` (built on the meta device, tensors assigned, memory-mapped on a GPU,
cast on the device). Each figure comes from a new process (the median of `--repeats`), after
one read of every file to warm the page cache. Host time is user + system CPU time of the
step. Writing the 5.7 GB checkpoint takes a minute or two; it is kept for the next run unless
--remove is given. Needs about 18 GB of free memory for `before` (fair-esm's fp32 model plus
the checkpoint); --skip-before measures the new path only.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from argparse import Namespace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

ESM_NAME, ESM_FILE = "esm2-3b", "esm2_t36_3B_UR50D.pt"
PRECISIONS = ("fp32", "bf16", "fp16")


# -- the checkpoints --------------------------------------------------------------------------

def write_esm_checkpoint(path: Path) -> None:
    """fair-esm's layout (prefixed keys, cfg Namespace), fp16 random weights, the LM head tied
    to the embedding, the rotary inv_freq buffers as fair-esm computes them."""
    import esm
    import torch
    from esm.model.esm2 import ESM2

    from virnuc_hpc.models.tiny import esm_checkpoint_key

    with torch.device("meta"):
        model = ESM2(36, 2560, 40, esm.data.Alphabet.from_architecture("ESM-1b"),
                     token_dropout=True)
    gen, state, tied = torch.Generator().manual_seed(0), {}, None
    for name, meta in model.state_dict().items():
        key = esm_checkpoint_key(name)
        if key is None:
            continue
        if name.endswith("inv_freq"):
            dim = 2560 // 40
            state[key] = 1.0 / (10000 ** (torch.arange(0, dim, 2).float() / dim))
        elif name in ("embed_tokens.weight", "lm_head.weight"):
            tied = tied if tied is not None else _random(meta.shape, gen)
            state[key] = tied
        else:
            state[key] = _random(meta.shape, gen)
    cfg = Namespace(_name="ESM2", arch="esm2", encoder_layers=36, encoder_embed_dim=2560,
                    encoder_ffn_embed_dim=10240, encoder_attention_heads=40,
                    token_dropout=True, max_positions=1024)
    torch.save({"model": state, "cfg": {"model": cfg}}, path)


def _random(shape, gen):
    import torch

    return (torch.randn(shape, generator=gen) * 0.02).to(torch.float16)


def write_entry(folder: Path, spec_name: str, kind: str, dim: int, files: dict[str, bytes]
                | None = None) -> None:
    """A cache entry: the files (already in `folder`, or `files`) and their MANIFEST."""
    from virnuc_hpc.core.fsio import atomic_write, sha256_file

    folder.mkdir(parents=True, exist_ok=True)
    for name, data in (files or {}).items():
        atomic_write(folder / name, data)
    records = {p.name: {"sha256": sha256_file(p), "size": p.stat().st_size}
               for p in sorted(folder.iterdir()) if p.name != "MANIFEST.json"}
    manifest = {"format": 1, "name": spec_name, "kind": kind, "dim": dim, "source": "bench",
                "revision": None, "requested_revision": None, "biologically_meaningful": False,
                "files": records}
    atomic_write(folder / "MANIFEST.json", json.dumps(manifest, indent=2, sort_keys=True))


def make_cache(root: Path) -> None:
    esm_dir, dnabert_dir = root / ESM_NAME, root / "dnabert-s"
    if not (esm_dir / "MANIFEST.json").is_file():
        print(f"writing a real-size ESM-2 3B checkpoint in {esm_dir} ...", flush=True)
        esm_dir.mkdir(parents=True, exist_ok=True)
        write_esm_checkpoint(esm_dir / ESM_FILE)
        write_entry(esm_dir, ESM_NAME, "esm", 2560)
    if not (dnabert_dir / "MANIFEST.json").is_file():
        from virnuc_hpc.models.dnabert import DnabertConfig
        from virnuc_hpc.models.tiny import dnabert_files

        print(f"writing a real-size DNABERT-S folder in {dnabert_dir} ...", flush=True)
        write_entry(dnabert_dir, "dnabert-s", "dnabert", 768, dnabert_files(cfg=DnabertConfig()))


def warm(root: Path) -> None:
    for path in sorted(root.rglob("*")):
        if path.is_file():
            with open(path, "rb") as handle:
                while handle.read(1 << 24):
                    pass


# -- one measurement, in a child process ------------------------------------------------------

class Clock:
    """Wall and host (user + system CPU) seconds of each step."""

    def __init__(self):
        self.steps: dict[str, dict[str, float]] = {}

    def step(self, name: str, fn):
        wall, cpu = time.perf_counter(), _cpu()
        out = fn()
        self.steps[name] = {"wall_s": time.perf_counter() - wall, "host_s": _cpu() - cpu}
        return out


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child(mode: str, model: str, root: Path, device: str, precision: str) -> dict:
    import torch

    from virnuc_hpc.models.precision import dtype_of

    dtype, clock = dtype_of(precision), Clock()
    folder = root / (ESM_NAME if model == "esm" else "dnabert-s")
    if mode == "before":
        before(clock, model, folder, device, dtype)
    else:
        after(clock, model, folder, device, dtype)
    if device == "cuda":
        torch.cuda.synchronize()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return {"steps": clock.steps, "peak_rss_gib": rss}


def before(clock: Clock, model: str, folder: Path, device: str, dtype) -> None:
    """The load a task ran until now: hash every file, fair-esm's loader, then cast/move."""
    from virnuc_hpc.core.fsio import sha256_file

    files = [p for p in sorted(folder.iterdir()) if p.name != "MANIFEST.json"]
    clock.step("verify", lambda: [sha256_file(p) for p in files])
    if model == "esm":
        loaded = clock.step("load", lambda: _fair_esm_load(folder / ESM_FILE))
    else:
        loaded = clock.step("load", lambda: _dnabert_load_with_init(folder))
    clock.step("to-device", lambda: loaded.to(device).to(dtype))


def _fair_esm_load(path: Path):
    import gc

    import esm.pretrained

    from virnuc_hpc.models.esm import read_checkpoint

    data = read_checkpoint(path)
    model, _ = esm.pretrained.load_model_and_alphabet_core(path.stem, data)
    del data
    gc.collect()
    return model


def _dnabert_load_with_init(folder: Path):
    from virnuc_hpc.models.dnabert import DnabertConfig, DnabertModel, read_state_dict

    model = DnabertModel(DnabertConfig.from_json(folder / "config.json"))
    model.load_state_dict(read_state_dict(folder), strict=True)
    return model


def after(clock: Clock, model: str, folder: Path, device: str, dtype) -> None:
    """This package's load: verify (the stamp decides whether it hashes), build without init,
    move and cast on the device."""
    from virnuc_hpc.models import esm as esm_loader
    from virnuc_hpc.models.cache import ModelCache
    from virnuc_hpc.models.dnabert import assemble_dnabert, read_state_dict
    from virnuc_hpc.models.registry import get_spec

    spec = get_spec("esm2-3b" if model == "esm" else "dnabert-s")
    clock.step("verify", lambda: ModelCache(folder.parent).verify(spec))
    if model == "esm":
        path = folder / ESM_FILE
        data = clock.step("load", lambda: esm_loader.read_checkpoint(path, mmap=True))
        built = clock.step("build", lambda: esm_loader._assemble_esm2(path, data)[0])
        clock.step("to-device", lambda: esm_loader.place(built, data, device, dtype))
    else:
        state = clock.step("load", lambda: read_state_dict(folder))
        built = clock.step("build", lambda: assemble_dnabert(folder, state))
        clock.step("to-device", lambda: built.to(device).to(dtype))


# -- the parent: run the children, print the table --------------------------------------------

def measure(mode: str, model: str, args, stamps: Path) -> dict:
    env = {**os.environ, "VIRNUC_HPC_STAMPS": str(stamps)}
    argv = [sys.executable, __file__, "--child", mode, "--model", model, "--dir", str(args.dir),
            "--device", args.device, "--precision", args.precision]
    done = subprocess.run(argv, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{mode} {model} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def median_steps(runs: list[dict]) -> dict[str, dict[str, float]]:
    names = runs[0]["steps"]
    return {n: {k: statistics.median(r["steps"][n][k] for r in runs) for k in ("wall_s", "host_s")}
            for n in names}


def rows(label: str, steps: dict, rss: float) -> list[str]:
    out = [f"| {label} | {name} | {s['wall_s']:.2f} | {s['host_s']:.2f} |"
           for name, s in steps.items()]
    total_wall = sum(s["wall_s"] for s in steps.values())
    total_host = sum(s["host_s"] for s in steps.values())
    return out + [f"| {label} | **total** (peak RSS {rss:.1f} GiB) | **{total_wall:.2f}** | "
                  f"**{total_host:.2f}** |"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path("/var/tmp/virnuc-bench-load"))
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--precision", choices=PRECISIONS, default="bf16")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-before", action="store_true")
    parser.add_argument("--only", choices=("esm", "dnabert"), help="measure one model only")
    parser.add_argument("--remove", action="store_true", help="remove --dir at the end")
    parser.add_argument("--child", choices=("before", "after"), help=argparse.SUPPRESS)
    parser.add_argument("--model", choices=("esm", "dnabert"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.model, args.dir, args.device, args.precision)))
        return
    make_cache(args.dir)
    warm(args.dir)
    print(f"device {args.device}, precision {args.precision}, median of {args.repeats} "
          "processes each, warm page cache\n")
    print("| load | step | wall s | host s |\n|---|---|---|---|")
    for model in [args.only] if args.only else ["esm", "dnabert"]:
        stamps = Path(tempfile.mkdtemp(prefix="virnuc-stamps-"))
        try:
            if not args.skip_before:
                runs = [measure("before", model, args, stamps) for _ in range(args.repeats)]
                print("\n".join(rows(f"{model} before", median_steps(runs),
                                     max(r["peak_rss_gib"] for r in runs))))
            first = measure("after", model, args, stamps)  # hashes, and leaves the stamp
            print("\n".join(rows(f"{model} after, first on the node", first["steps"],
                                 first["peak_rss_gib"])))
            runs = [measure("after", model, args, stamps) for _ in range(args.repeats)]
            print("\n".join(rows(f"{model} after, stamped", median_steps(runs),
                                 max(r["peak_rss_gib"] for r in runs))))
        finally:
            shutil.rmtree(stamps, ignore_errors=True)
    if args.remove:
        shutil.rmtree(args.dir, ignore_errors=True)


if __name__ == "__main__":
    main()

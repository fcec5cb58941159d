"""Cross-check the native DNABERT-S against an independent implementation: MultiMolecule's
DnaBertSModel (PyPI `multimolecule`, AGPL, not a dependency of virnuc_hpc), built from the same
published-layout checkpoint with MultiMolecule's own key converter.

    pip install --no-deps --target /tmp/mm multimolecule==0.2.2 danling chanfig \
        datasets lazy-imports torchmetrics torchdata   # then drop torch/numpy copies from /tmp/mm
    PYTHONPATH=/tmp/mm .venv/bin/python scripts/crosscheck_multimolecule.py FOLDER [FOLDER ...]

FOLDER is a DNABERT-S folder (config.json, pytorch_model.bin, tokenizer.json), e.g. a cache
entry or a hub snapshot. Prints the max abs difference of mean embeddings, per folder."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from virnuc_hpc.models.encoders import DnabertEncoder
from virnuc_hpc.models import load_dnabert, reference
from virnuc_hpc.models.dnabert import read_state_dict


def multimolecule_model(folder: Path, state: dict):
    from multimolecule.models import DnaBertSConfig, DnaBertSModel
    from multimolecule.models.dnaberts.convert_checkpoint import _convert_checkpoint

    raw = json.loads((folder / "config.json").read_text())
    known = DnaBertSConfig().to_dict()
    fields = {k: v for k, v in raw.items() if k in known and k not in ("torch_dtype", "dtype")}
    fields["hidden_dropout"] = raw.get("hidden_dropout_prob", 0.1)
    fields["attention_dropout"] = raw.get("attention_probs_dropout_prob", 0.0)
    config = DnaBertSConfig(**fields)
    model = DnaBertSModel(config)
    missing, unexpected = model.load_state_dict(_convert_checkpoint(config, state), strict=False)
    if unexpected or [k for k in missing if "position_ids" not in k]:
        raise SystemExit(f"key mismatch: missing {missing}, unexpected {unexpected}")
    return model.eval()


@torch.inference_mode()
def their_means(model, token_ids) -> np.ndarray:
    rows = [model(input_ids=torch.tensor([ids])).last_hidden_state[0].mean(0) for ids in token_ids]
    return torch.stack(rows).numpy()


def check(folder: Path, count: int, seed: int) -> float:
    tokenizer, ours = load_dnabert(folder)
    seqs = reference.random_dna(seed, count)
    ids = tokenizer(seqs)["input_ids"]
    theirs = multimolecule_model(folder, read_state_dict(folder))
    native = DnabertEncoder(ours, tokenizer, "cpu", "fp32", 1024).embed(seqs)
    return float(np.abs(native - their_means(theirs, ids)).max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--sequences", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for folder in args.folders:
        diff = check(folder, args.sequences, args.seed)
        verdict = "OK" if diff <= reference.TOLERANCE else "FAILED"
        print(f"{folder}: {args.sequences} sequences, max abs difference of mean embeddings "
              f"vs multimolecule {diff:.3g} ({verdict} at {reference.TOLERANCE:g})")


if __name__ == "__main__":
    main()

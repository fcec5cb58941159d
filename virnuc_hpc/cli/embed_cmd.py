"""`virnuc-hpc embed`: embed every sequence of a FASTA/FASTQ file with one encoder model."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def add_parser(sub) -> None:
    p = sub.add_parser("embed", help="mean embeddings of every sequence (DNABERT-S or ESM)",
                       description="Write a safetensors file: tensor 'embeddings' float32 "
                                   "[N, D] in input order, metadata 'ids' a JSON list. DNABERT "
                                   "models read nucleotides, ESM models proteins.")
    p.add_argument("input", help="FASTA or FASTQ, plain or gzip/bgzip")
    p.add_argument("--model", required=True, metavar="NAME",
                   help="registry name (dnabert-s, esm2-3b, tiny-dnabert-s, tiny-esm2) or any "
                        "fair-esm name such as esm1v_t33_650M_UR90S_1")
    p.add_argument("--model-path", metavar="P",
                   help="a DNABERT-style folder or fair-esm checkpoint to load instead")
    p.add_argument("--out", required=True, metavar="OUT.safetensors")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="auto: cuda when a GPU is visible, else cpu")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32",
                   help="fp32 is the reference; bf16/fp16 use fused attention")
    p.add_argument("--tokens-per-batch", type=int, metavar="N",
                   help="padded tokens per batch (default 4096 on cpu, 32768 on cuda)")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the ESM-2 layers (bf16/fp16 only)")
    p.add_argument("--no-invariant", dest="invariant", action="store_false",
                   help="length-sorted batches: a row's last bits may then depend on what "
                        "shares its batch (by default ESM-2 and DNABERT-S run fixed shapes, "
                        "and they never do)")
    p.set_defaults(func=run)


def run(args) -> int:
    import torch

    from ..models.encoders import embed_fasta, open_encoder

    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    encoder = open_encoder(args.model, args.model_path, args.device, args.precision,
                           args.tokens_per_batch, compile_layers=args.compile,
                           invariant=args.invariant)
    count = embed_fasta(args.input, args.out, encoder)
    log.info("wrote %d embeddings of width %d to %s", count, encoder.dim, args.out)
    return 0

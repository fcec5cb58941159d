"""`virnuc-hpc translate`: VirNucPro's chunking and six-frame selection as a command."""

from __future__ import annotations

import json
import sys

from ..sequences import CHUNK_SIZES
from ..sequences.translate import translate_file


def add_parser(sub) -> None:
    p = sub.add_parser("translate", help="chunk and six-frame translate, keep stop-free frames",
                       description="Write VirNucPro's identified nucleotide and protein files "
                                   "(two lines per record) and per-sequence accounting.")
    p.add_argument("input", help="FASTA or FASTQ file: plain, gzip/bgzip, bzip2, xz or zstd")
    p.add_argument("--chunk-size", type=int, choices=CHUNK_SIZES, default=500)
    p.add_argument("--nucleotide-out", required=True, metavar="N.fa")
    p.add_argument("--protein-out", required=True, metavar="P.faa")
    p.add_argument("--chunks-out", metavar="CHUNKS.fa", help="the chunk file (60-column FASTA)")
    p.add_argument("--accounting-out", metavar="FILE.tsv",
                   help="per input sequence: id, length, chunks, kept_frames, skip_reason")
    p.set_defaults(func=run)


def run(args) -> int:
    totals = translate_file(args.input, args.chunk_size, args.nucleotide_out, args.protein_out,
                            args.chunks_out, args.accounting_out)
    print(json.dumps(totals.as_dict()), file=sys.stderr)
    return 0

"""Plan a run: read the inputs once, cost every sequence, size the shards by GPU time and cut
the study into them (one module per step: scan, sizing, packing, route, manifest; record is
plan.json, seqfile the run's copy of the sequences, records a task's reading of it, dedup
the bounded search for equal keys, samples the study).

The inputs are a study (`samples.Study`): one file, several, or a sample sheet. Its sequences
are numbered by one global ordinal over the samples in order (sheet order, then file order).
The cost of a sequence is its number of VirNucPro chunks; shards are contiguous ranges of
ordinals of nearly equal cost (packing.py), so a shard may hold pieces of many samples and a
large sample may span many shards.

Memory does not grow with the study: the one read of the inputs (sequences.blocks, dnaio)
streams each sequence's row (length, chunks, bases, 128-bit digest, where its ID ends) to
`shards/rows.bin`, its ID to `shards/ids.txt` and its bases to `shards/sequences.zst`, keeping
per-sample totals only; duplicate IDs are found in an external, bucketed sort (external_sort.py).
A second pass over `rows.bin` (not the inputs) cuts it into shards, each described by a
manifest that names its slices of the run's files and their sha256. A task reads only its
slices and the frames of the sequence file that hold its sequences, checking each against its
digest; the user's files are not opened again after planning.
"""

from .manifest import Manifest, load_manifest, read_manifest_json
from .packing import cut, imbalance
from .planner import CHUNK_SIZES, plan_input, study_fingerprint
from .planfile import FORMAT, Plan, SamplePlan, ShardPlan, fingerprint, load_plan
from .shard_reads import iter_shard_records
from .scan import ROW_DTYPE, chunk_cost, sequence_digest

__all__ = ["Plan", "SamplePlan", "ShardPlan", "Manifest", "plan_input", "load_plan",
           "load_manifest", "read_manifest_json", "iter_shard_records", "cut", "imbalance",
           "fingerprint", "study_fingerprint", "sequence_digest", "chunk_cost", "CHUNK_SIZES",
           "FORMAT", "ROW_DTYPE"]

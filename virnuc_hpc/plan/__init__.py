"""Plan a run: read the inputs once, cost every sequence, size the shards by GPU time and
bin-pack sequences into them (one module per step: scan, sizing, packing, route, manifest;
record is plan.json, records the tasks' re-read, samples the study).

The inputs are a study (`samples.Study`): one file, several, or a sample sheet. Its sequences
are numbered by one global ordinal over the samples in order (sheet order, then file order),
and all of them are packed together: a shard may hold pieces of many samples, and a large
sample may span many shards. The cost of a sequence is its number of VirNucPro chunks, so
fixed-length reads cost the same and shards get equal counts; packing is longest-processing-
time greedy (packing.py), decided from the histogram of costs alone.

Memory does not grow with the study: the one read of the inputs streams each sequence's
length, chunks, bases and digest to `shards/.scan.tmp` and its ID to `shards/.all-ids.tmp`
(a dry run keeps the rows in a temporary file and no IDs), keeping only the histogram of
costs and per-sample totals; the packing is then decided, and a second pass over the scratch
files (not the inputs) routes each block of rows to its shard's files.

Per shard the planner writes `shard-NNNNN.npy` (global ordinal, length, chunks, digest and
sample index; input order), `shard-NNNNN.ids` (IDs, one per line) and
`shard-NNNNN.manifest.json` (their sha256), then `plan.json` last: per sample its name, file,
sha256, size, sequences, chunks and metadata; per shard its totals and how many sequences
and chunks of each sample it holds. A task re-reads only the sample files its shard needs,
in order (`iter_shard_records`), checking each sequence's ID, length and digest (8 bytes of
BLAKE2b of the sequence as the reader yields it), so an input changed after planning is
refused by every task that would read a changed sequence, without re-hashing any file per
task.
"""

from .manifest import Manifest, load_manifest, read_manifest_json
from .packing import assign_shards, imbalance
from .planner import CHUNK_SIZES, plan_input, study_fingerprint
from .record import FORMAT, Plan, SamplePlan, ShardPlan, fingerprint, load_plan
from .records import iter_shard_records
from .route import SHARD_DTYPE
from .scan import chunk_cost, sequence_digest

__all__ = ["Plan", "SamplePlan", "ShardPlan", "Manifest", "plan_input", "load_plan",
           "load_manifest", "read_manifest_json", "iter_shard_records", "assign_shards",
           "imbalance", "fingerprint", "study_fingerprint", "sequence_digest", "chunk_cost",
           "CHUNK_SIZES", "FORMAT", "SHARD_DTYPE"]

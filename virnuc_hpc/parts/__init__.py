"""The task-reduce contract: what a task leaves on disk and how it is checked.

- `writer`: parts (safetensors) with their sidecars, resumed after the last verified part;
- `accounting`: one typed row per input sequence (accounting.tsv);
- `markers`: DONE, FAILED, the heartbeat and reduce's REJECTED verdict;
- `verify`: everything that makes a shard mergeable, checked by content;
- `layout`: the part format and the safe reading of a task's JSON records.

Tasks write through this package and `reduce`, `status` and the report read through it; no
other package names a task's files."""

from .accounting import (ACCOUNTING_COLUMNS, AccountingWriter, AccountRow, iter_accounting,
                         read_accounting, write_accounting)
from .layout import (FEATURE_DTYPES, FORMAT, LEGACY_FEATURES, SCORES_DTYPE, TENSORS, frame_key,
                     full_widths, ids_digest, part_layout, rerun_hint, stored_features,
                     stored_tensors, tensor_dtype)
from .markers import (mark_failed, mark_rejected, read_done, read_failed, read_heartbeat,
                      read_rejection, write_heartbeat)
from .verify import Expectation, verify_task
from .writer import PartInfo, PartWriter, ResumePoint, resume_point

__all__ = [
    "ACCOUNTING_COLUMNS", "AccountRow", "AccountingWriter", "Expectation", "FEATURE_DTYPES",
    "FORMAT", "LEGACY_FEATURES", "PartInfo", "PartWriter", "ResumePoint", "SCORES_DTYPE",
    "TENSORS", "frame_key", "full_widths", "ids_digest", "iter_accounting", "mark_failed",
    "mark_rejected", "part_layout", "read_accounting", "read_done", "read_failed",
    "read_heartbeat", "read_rejection", "rerun_hint", "resume_point", "stored_features",
    "stored_tensors", "tensor_dtype", "verify_task", "write_accounting", "write_heartbeat",
]

"""A shard's per-sequence accounting (accounting.tsv): one typed row per input sequence, in
input order, with how many chunks and kept frames it had or why it was skipped."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Mapping

from ..core.fsio import atomic_open
from ..core.rundir import TaskDir
from ..core.tables import TableRow


@dataclass(frozen=True)
class AccountRow(TableRow):
    """One input sequence of a shard: how many chunks and kept frames, or why it was skipped."""

    id: str
    length: int
    chunks: int
    kept_frames: int
    skip_reason: str = ""

    file_name = "accounting.tsv"


ACCOUNTING_COLUMNS = AccountRow.columns()


def _account_row(row) -> AccountRow:
    if isinstance(row, AccountRow):
        return row
    return AccountRow(str(row["id"]), int(row["length"]), int(row["chunks"]),
                      int(row["kept_frames"]), str(row.get("skip_reason") or ""))


def write_accounting(task_dir: str | os.PathLike, rows: Iterable[Mapping | AccountRow]) -> Path:
    """Atomically write the shard's accounting: id, length, chunks, kept_frames, skip_reason
    per input sequence, in input order (dicts as `Prepared.accounting()` returns them)."""
    with AccountingWriter(task_dir) as writer:
        for row in rows:
            writer.add(row)
    return TaskDir(task_dir).accounting


class AccountingWriter:
    """Streams the accounting to a temp file as sequences pass (memory stays flat however
    many sequences a shard has); published whole when the block ends without error."""

    def __init__(self, task_dir: str | os.PathLike):
        self.path, self.sequences, self.skipped = TaskDir(task_dir).accounting, 0, 0

    def __enter__(self) -> "AccountingWriter":
        self._context = atomic_open(self.path)
        self._handle = self._context.__enter__()
        self._handle.write(AccountRow.header().encode())
        return self

    def add(self, row: Mapping | AccountRow) -> None:
        row = _account_row(row)
        self._handle.write(row.line().encode())
        self.sequences += 1
        self.skipped += bool(row.skip_reason)

    def __exit__(self, *exc) -> bool:
        return bool(self._context.__exit__(*exc))


def iter_accounting(task_dir: str | os.PathLike) -> Iterator[AccountRow]:
    """Stream the accounting rows; raises ValueError on a malformed file."""
    with open(TaskDir(task_dir).accounting, encoding="utf-8") as handle:
        yield from AccountRow.read(handle)


def read_accounting(task_dir: str | os.PathLike) -> list[AccountRow]:
    return list(iter_accounting(task_dir))

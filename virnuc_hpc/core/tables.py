"""Typed rows of tab-separated files: one dataclass per file is its schema, header, writer and
reader, so that nothing reads a column by its position.

    @dataclass(frozen=True)
    class Row(TableRow):
        sequence_id: str
        length: int

    Row.header()                      # "sequence_id\\tlength\\n"
    Row("a", 3).line()                # "a\\t3\\n"
    for row in Row.read(handle): ...  # columns found by their names in the file's header

A column's name in the file is the field's name unless the field says otherwise
(`field(metadata={"column": "Sequence_ID"})`); floats are written by the class's `format_float`.
A file whose header lacks a column, or a line with another number of fields, is refused with
its line number."""

from __future__ import annotations

import numbers
from dataclasses import fields
from functools import lru_cache
from typing import IO, ClassVar, Iterable, Iterator, TypeVar

T = TypeVar("T", bound="TableRow")


class TableRow:
    """Mixin for a frozen dataclass whose fields are a file's columns, in order."""

    file_name: ClassVar[str] = "table"

    @classmethod
    def columns(cls) -> tuple[str, ...]:
        return tuple(f.metadata.get("column", f.name) for f in fields(cls))

    @classmethod
    def header(cls) -> str:
        return "\t".join(cls.columns()) + "\n"

    @staticmethod
    def format_float(value: float) -> str:
        return repr(float(value))

    def values(self) -> list[str]:
        out = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                out.append("")
            elif isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral):
                out.append(self.format_float(value))
            else:
                out.append(str(value))
        return out

    def line(self) -> str:
        return "\t".join(self.values()) + "\n"

    @classmethod
    def reader(cls: type[T], header: str, where: str = "") -> "Reader[T]":
        return Reader(cls, header, where or cls.file_name)

    @classmethod
    def parse(cls: type[T], line: str) -> T:
        """A line this class wrote (its own columns, in its own order)."""
        return _own_reader(cls).parse(line)

    @classmethod
    def read(cls: type[T], handle: IO[str] | Iterable[str], where: str = "") -> Iterator[T]:
        """Every row of a file whose first line is its header."""
        lines = iter(handle)
        reader = cls.reader(next(lines, ""), where)
        for number, line in enumerate(lines, 2):
            yield reader.parse(line, number)


class Reader:
    """Parses the lines of one file, its columns looked up by name in its header."""

    def __init__(self, row: type[TableRow], header: str, where: str):
        names = header.rstrip("\r\n").split("\t")
        missing = [c for c in row.columns() if c not in names]
        if missing:
            raise ValueError(f"{where}: header lacks column(s) {', '.join(missing)}")
        self.row, self.where, self.width = row, where, len(names)
        self.at = [names.index(c) for c in row.columns()]
        self.kinds = [f.type for f in fields(row)]

    def parse(self, line: str, number: int = 0) -> TableRow:
        values = line.rstrip("\r\n").split("\t")
        if len(values) != self.width:
            raise ValueError(f"{self.where} line {number}: {len(values)} fields, the header "
                             f"has {self.width}")
        return self.row(*(_cast(kind, values[i]) for kind, i in zip(self.kinds, self.at)))


@lru_cache(maxsize=None)
def _own_reader(row: type[TableRow]) -> Reader:
    return Reader(row, row.header(), row.file_name)


def _cast(kind, text: str):
    """A field's value from its text: by the field's annotation (`int`, `float`, `str`, and
    `... | None`, which an empty text is)."""
    kind = kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))
    if kind.endswith("| None") and text == "":
        return None
    if kind.startswith("int"):
        return int(text)
    if kind.startswith("float"):
        return float(text)
    return text

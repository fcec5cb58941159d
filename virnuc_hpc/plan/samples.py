"""A study's samples: the inputs of one run, from several files or a sample sheet.

`plan`, `predict` and `submit` take one FASTA/FASTQ file (today's layout: `RUN/results/`),
several files, or `--samplesheet samples.csv` in the nf-core convention: a header line naming
the columns `sample` and `fasta` (in any order), one sample per line; other columns are kept
as the sample's metadata, and a relative path is read from the sheet's folder. A sample named
by its file is the file name without its extensions (`S1.fastq.gz` -> `S1`). Several files or
a sheet give per-sample results, `RUN/results/<sample>/`.

Everything is checked here, before anything is written: each file exists and is a regular
file, no file is named twice, sample names are unique (also ignoring case) and safe as folder
names. A bad sheet is refused in one line naming the sheet, its line and the fix. Sequence IDs
need only be unique within a sample (the reader checks each file on its own).
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from ..core.errors import ConfigError, InputError
from ..sequences.source import check_input

SHEET_COLUMNS = ("sample", "fasta")
NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")
NAME_RULE = ("letters, digits, '.', '_' and '-', at most 128 characters, not starting "
             "with '.'")
RESERVED = frozenset({  # the files beside the sample folders in RUN/results/
    "samples.tsv", "summary.json", "features_index.json", "report.html", "prediction.png",
    "prediction_results.txt", "prediction_results_highestscore.csv", "predictions.tsv",
    "versions.yml", "virnuc_hpc_mqc_versions.yml", "virnuc_hpc_general_stats_mqc.json",
    "virnuc_hpc_calls_mqc.json", "virnuc_hpc_best_virus_score_mqc.json"})
COMPRESSED = (".gz", ".bgz", ".bz2", ".xz", ".zst", ".zstd")
SEQUENCE_FILES = (".fa", ".fasta", ".fna", ".fas", ".ffn", ".frn", ".faa", ".fq", ".fastq",
                  ".seq", ".txt")
SHEET_FIX = "one header line `sample,fasta[,...]`, then one line per sample"


@dataclass(frozen=True)
class Sample:
    """One input file and its name; `origin` says where it was named (for messages)."""

    name: str
    path: Path  # absolute, symbolic links resolved
    origin: str
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Study:
    """The samples of a run, in sheet (or command-line) order."""

    samples: tuple[Sample, ...]
    sheet: Path | None = None

    @property
    def per_sample(self) -> bool:
        """Results per sample (a sheet, or several files); one file keeps RUN/results/."""
        return self.sheet is not None or len(self.samples) > 1


def sample_name(path: str | os.PathLike) -> str:
    """The file name without its compression and sequence-format extensions."""
    name = Path(path).name
    for suffixes in (COMPRESSED, SEQUENCE_FILES):
        stem, dot, ext = name.rpartition(".")
        if dot and stem and f".{ext.lower()}" in suffixes:
            name = stem
    return name


def unsafe_name(name: str) -> str | None:
    """Why `name` cannot be a sample folder in RUN/results/, or None."""
    if not NAME.fullmatch(name):
        return f"not usable as a folder name (allowed: {NAME_RULE})"
    if name.lower() in RESERVED:
        return "the name of a results file"
    return None


def study_from_files(paths: Sequence[str | os.PathLike]) -> Study:
    """Samples named after their files; a clash of names or a file given twice is refused."""
    if not paths:
        raise ConfigError("give an input FASTA/FASTQ file, several, or --samplesheet FILE")
    samples: list[Sample] = []
    for given in paths:
        check_input(given)
        samples.append(Sample(sample_name(given), Path(given).resolve(), str(given)))
    if len(samples) > 1:
        _check_files(samples)
    return Study(tuple(samples))


def _check_files(samples: list[Sample]) -> None:
    for sample, earlier in _clashes(samples, lambda s: s.path):
        raise InputError(sample.origin, "", f"given twice (also as {earlier.origin})",
                         "give each file once")
    for sample in samples:
        if (why := unsafe_name(sample.name)) is not None:
            raise InputError(sample.origin, "", f"its sample name {sample.name!r} (the file "
                             f"name without its extensions) is {why}",
                             "rename the file, or name the samples in a --samplesheet")
    for sample, earlier in _clashes(samples, lambda s: s.name.lower()):
        raise InputError(sample.origin, "", f"gives the sample name {sample.name!r}, as "
                         f"{earlier.origin} does ({earlier.name!r})",
                         "rename one of the files, or name the samples in a --samplesheet")


def _clashes(samples: Iterable[Sample], key) -> Iterable[tuple[Sample, Sample]]:
    """(sample, the earlier sample with the same key) for every repeat, in order."""
    seen: dict = {}
    for sample in samples:
        if key(sample) in seen:
            yield sample, seen[key(sample)]
        seen.setdefault(key(sample), sample)


# --- the sample sheet ----------------------------------------------------------------------

def read_samplesheet(path: str | os.PathLike) -> Study:
    """The samples of an nf-core style sheet (see the module doc); refused in one line."""
    sheet = Path(path)
    rows = _sheet_rows(sheet)
    header, body = _header(sheet, rows), rows[1:]
    if not body:
        raise InputError(sheet, "", "no samples (a header line and no rows)", SHEET_FIX)
    samples = [_sheet_sample(sheet, header, number, fields) for number, fields in body]
    _check_sheet(sheet, samples)
    return Study(tuple(samples), sheet.resolve())


def _sheet_rows(sheet: Path) -> list[tuple[int, list[str]]]:
    """(line number, stripped fields) of every non-blank line."""
    try:
        text = sheet.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(sheet, "", "no such sample sheet", "check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(sheet, "", f"cannot be read as UTF-8 text ({exc})",
                         "give a CSV file (comma-separated, UTF-8)") from None
    reader = csv.reader(text.splitlines())
    rows = [(reader.line_num, [f.strip() for f in fields]) for fields in reader]
    return [(number, fields) for number, fields in rows if any(fields)]


def _header(sheet: Path, rows: list[tuple[int, list[str]]]) -> list[str]:
    if not rows:
        raise InputError(sheet, "", "the sample sheet is empty", SHEET_FIX)
    number, header = rows[0]
    for column in SHEET_COLUMNS:
        if column not in header:
            raise InputError(sheet, f"line {number}", f"no column {column!r} in the header "
                             f"({','.join(header)})", SHEET_FIX)
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated or "" in header:
        what = f"column {repeated[0]!r} twice" if repeated else "an empty column name"
        raise InputError(sheet, f"line {number}", f"the header has {what}",
                         "name every column once")
    return header


def _sheet_sample(sheet: Path, header: list[str], number: int, fields: list[str]) -> Sample:
    where = f"line {number}"
    if len(fields) != len(header):
        raise InputError(sheet, where, f"{len(fields)} fields, the header has {len(header)}",
                         "one value per column on every line (quote values with commas)")
    row = dict(zip(header, fields))
    name, given = row.pop("sample"), row.pop("fasta")
    if not name or not given:
        missing = "sample" if not name else "fasta"
        raise InputError(sheet, where, f"empty {missing!r} value", "fill in every sample's "
                         "name and file")
    if (why := unsafe_name(name)) is not None:
        raise InputError(sheet, where, f"sample name {name!r} is {why}", "rename the sample")
    return Sample(name, _sheet_file(sheet, where, name, given), f"{sheet}: {where}", row)


def _sheet_file(sheet: Path, where: str, name: str, given: str) -> Path:
    path = Path(given).expanduser()
    path = path if path.is_absolute() else sheet.resolve().parent / path
    try:
        check_input(path)
    except InputError as exc:
        raise InputError(sheet, where, f"sample {name!r}: {exc.path}: {exc.problem}",
                         exc.fix) from None
    return path.resolve()


def _check_sheet(sheet: Path, samples: list[Sample]) -> None:
    for sample, earlier in _clashes(samples, lambda s: s.name.lower()):
        same = "" if sample.name == earlier.name else " (names differing only in case " \
                                                       "collide on some file systems)"
        raise InputError(sheet, _line(sample), f"duplicate sample {sample.name!r}, first at "
                         f"{_line(earlier)}{same}", "give every sample its own name")
    for sample, earlier in _clashes(samples, lambda s: s.path):
        raise InputError(sheet, _line(sample), f"sample {sample.name!r} names the same file "
                         f"as sample {earlier.name!r} ({_line(earlier)}): {sample.path}",
                         "give each file once (one line per sample)")


def _line(sample: Sample) -> str:
    return sample.origin.rsplit(": ", 1)[-1]


def study_from_args(inputs: Sequence[str], samplesheet: str | None) -> Study:
    """The study the command line names: files, or a sheet (not both)."""
    if samplesheet is not None and inputs:
        raise ConfigError("give input files or --samplesheet, not both")
    if samplesheet is not None:
        return read_samplesheet(samplesheet)
    return study_from_files(inputs)


__all__ = ["Sample", "Study", "read_samplesheet", "sample_name", "study_from_args",
           "study_from_files", "unsafe_name"]

"""What `plan` decided (`Plan`, written as plan.json), its fingerprint, and reading it back."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Mapping

import numpy as np

from .. import __version__
from ..core.config import RunConfig
from ..core.errors import IntegrityError, UserError
from ..core.fsio import sha256_bytes
from ..core.rundir import RunDir, index_name
from .sizing import task_minutes

FORMAT = 5  # 3: samples; 4: contiguous shards over the run's rows, IDs and sequence file;
#            5: fixed-shape batches (`batching`: rows computed as in no other version)


@dataclass
class SamplePlan:
    """One sample of the study: its file and what the plan found in it."""

    name: str
    path: str
    sha256: str
    bytes: int
    sequences: int
    chunks: int
    bases: int
    tokens_est: int                # of the work left once its duplicates are set aside
    gpu_hours_est: float
    metadata: dict = field(default_factory=dict)
    duplicates: int = 0            # sequences equal to an earlier one of the run

    @property
    def duplicate_fraction(self) -> float:
        return self.duplicates / self.sequences if self.sequences else 0.0


@dataclass
class ShardPlan:
    index: int
    sequences: int
    chunks: int
    bases: int
    tokens_est: int
    gpu_hours_est: float
    manifest: str | None = None
    manifest_sha256: str | None = None
    samples: list[list[int]] = field(default_factory=list)  # [sample, computed, chunks]
    first: int = 0                                          # its first ordinal
    duplicates: int = 0        # sequences it holds that are computed by their representative
    feeds: list[list[int]] = field(default_factory=list)   # [sample, duplicates it computes]

    @property
    def minutes_est(self) -> float:
        """Estimated wall minutes of its task: start-up plus its GPU work."""
        return task_minutes(self.gpu_hours_est * 3600)


@dataclass
class Plan:
    """What `plan` decided; `plan.json` is its JSON form."""

    fingerprint: str
    samples: list[SamplePlan]
    sheet: str | None
    chunk_size: int
    profile: str
    config: RunConfig              # the run's options, settled (plan.json keeps the non-defaults)
    models: dict
    package_version: str
    sequences: int
    chunks: int
    bases: int
    imbalance: float
    estimate_note: str
    shards: list[ShardPlan] = field(default_factory=list)
    format: int = FORMAT
    precision_note: str = ""   # why the run computes at its precision
    sizing_note: str = ""      # how the shards were sized
    seqfile: dict = field(default_factory=dict)  # the run's sequence file: sizes, checksum
    duplicates: dict = field(default_factory=dict)  # duplicates.py's files: counts, checksums
    batching: dict = field(default_factory=dict)  # RunConfig.batching(): invariant, shapes

    @property
    def duplicate_count(self) -> int:
        return sum(s.duplicates for s in self.samples)

    @property
    def precision(self) -> str:
        return self.config.precision

    @property
    def per_sample(self) -> bool:
        """Results per sample (a sheet or several files); one file keeps RUN/results/."""
        return self.sheet is not None or len(self.samples) > 1

    def sample_starts(self) -> np.ndarray:
        """The global ordinal where each sample starts, and the total at the end."""
        return np.concatenate([[0], np.cumsum([s.sequences for s in self.samples])]).astype(
            np.int64)

    @property
    def tokens_est(self) -> int:
        return sum(s.tokens_est for s in self.shards)

    @property
    def gpu_hours_est(self) -> float:
        return sum(s.gpu_hours_est for s in self.shards)

    def to_json(self) -> str:
        data = asdict(self)
        data["config"] = self.config.as_dict()
        return json.dumps(data, indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Plan:
        """The plan of plan.json: its options parsed here, once, as the run's RunConfig."""
        data = json.loads(text)
        data["samples"] = [SamplePlan(**s) for s in data["samples"]]
        data["shards"] = [ShardPlan(**s) for s in data["shards"]]
        data["config"] = RunConfig.from_dict(data["config"])
        return cls(**data)

    def table(self, max_rows: int = 40) -> str:
        """The dry-run table: the samples (when per sample), then one row per shard (each
        elided past `max_rows`), the totals and how the run was settled."""
        head = f"{'shard':>6} {'sequences':>11} {'chunks':>11} {'est_tokens':>13} " \
               f"{'est_GPU_h':>10} {'est_min':>8}"
        rows = [_row(index_name(s.index), s.sequences, s.chunks, s.tokens_est, s.gpu_hours_est,
                     s.minutes_est) for s in self.shards]
        total = _row("total", self.sequences, self.chunks, self.tokens_est, self.gpu_hours_est)
        shards = "\n".join([head, *_elide(rows, max_rows), total,
                            f"shards: {len(self.shards)}, "
                            f"imbalance (max/mean chunks): {self.imbalance:.4f}",
                            self.duplicates_line(),
                            f"precision: {self.precision}"
                            + (f" ({self.precision_note})" if self.precision_note else ""),
                            f"batches: {self.config.describe_batching()}",
                            f"GPU hours: {self.estimate_note}",
                            *([f"sizing: {self.sizing_note}"] if self.sizing_note else [])])
        return f"{self.samples_table(max_rows)}\n\n{shards}" if self.per_sample else shards

    def duplicates_line(self) -> str:
        """The run's duplicate reads: computed once, by the first equal sequence."""
        if not self.config.dedup:
            return "duplicates: not looked for (--no-dedup)"
        n = self.duplicate_count
        share = n / self.sequences if self.sequences else 0.0
        return (f"duplicates: {n:,} of {self.sequences:,} sequences ({share:.1%}) equal an "
                "earlier one of the run: computed once, by that first one")

    def samples_table(self, max_rows: int = 40) -> str:
        width = max(6, *(len(s.name) for s in self.samples))
        head = f"{'sample':<{width}} {'sequences':>11} {'chunks':>11} {'dup%':>6} " \
               f"{'est_GPU_h':>10}"
        rows = [f"{s.name:<{width}} {s.sequences:>11,} {s.chunks:>11,} "
                f"{100 * s.duplicate_fraction:>6.1f} {s.gpu_hours_est:>10.3f}"
                for s in self.samples]
        sheet = f" (from {self.sheet})" if self.sheet else ""
        return "\n".join([head, *_elide(rows, max_rows), f"samples: {len(self.samples)}{sheet}"])


def _row(name: str, sequences: int, chunks: int, tokens: int, hours: float,
         minutes: float | None = None) -> str:
    tail = f" {minutes:>8.1f}" if minutes is not None else ""
    return f"{name:>6} {sequences:>11,} {chunks:>11,} {tokens:>13,} {hours:>10.3f}{tail}"


def _elide(rows: list[str], max_rows: int) -> list[str]:
    if len(rows) <= max_rows:
        return rows
    return rows[:max_rows // 2] + [f"{'...':>6}"] + rows[-(max_rows // 2):]


def fingerprint(inputs: str | list[dict], chunk_size: int, profile: str, config: Mapping,
                models: Mapping) -> str:
    """What the results depend on (not the sharding): the input (its sha256, or per sample
    name, sha256 and metadata), chunk size, profile and config, model identities and
    checksums, package version."""
    key = {"input_sha256": inputs} if isinstance(inputs, str) else {"samples": inputs}
    key.update({"chunk_size": chunk_size, "profile": profile, "config": dict(config),
                "models": dict(models), "package_version": __version__})
    return sha256_bytes(json.dumps(key, sort_keys=True, default=str).encode())


def load_plan(run_dir: str | os.PathLike) -> Plan:
    run = RunDir(run_dir)
    try:
        text = run.plan.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{run.root} has no plan.json; run `virnuc-hpc plan INPUT --run-dir "
                        f"{run.root}` first") from None
    check_format(run.plan, json.loads(text).get("format"))
    plan = Plan.from_json(text)
    for shard in plan.shards:  # the input may be anywhere; the run's own files may not
        if shard.manifest not in (None, run.relative(run.manifest(shard.index))):
            raise IntegrityError(f"{run.plan}: shard {shard.index} names {shard.manifest!r}, not "
                                 "its manifest in the run dir; refused; fix: re-plan the run")
    return plan


def check_format(path, found: int | None) -> None:
    if found != FORMAT:
        raise UserError(f"{path}: plan format {found}, this virnuc-hpc reads format {FORMAT} "
                        "(it was planned by another version); fix: plan the input again in a "
                        "new run dir (`virnuc-hpc plan INPUT --run-dir NEW`)")

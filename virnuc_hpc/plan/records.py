"""A task's records: re-read from the planned sample files (only those its shard holds
sequences of), in input order, each checked against the plan's ID, length and digest."""

from __future__ import annotations

import os
from itertools import groupby
from typing import Iterator

from ..errors import IntegrityError
from ..sequences.reader import Record, iter_records
from .manifest import load_manifest
from .record import Plan, SamplePlan, load_plan
from .scan import sequence_digest


def iter_shard_records(run_dir: str | os.PathLike, index: int) -> Iterator[Record]:
    """The records of shard `index`, re-read from the planned sample files (only those it
    holds sequences of), in input order. Raises IntegrityError if a file no longer has the
    planned ID, length and sequence digest at one of those ordinals (or ends before them)."""
    plan, manifest = load_plan(run_dir), load_manifest(run_dir, index)
    starts = plan.sample_starts().tolist()
    wanted = zip(manifest.samples.tolist(), manifest.ordinals.tolist(), manifest.ids,
                 manifest.lengths.tolist(), manifest.digests.tolist())
    for sample, targets in groupby(wanted, key=lambda target: target[0]):
        yield from _sample_records(plan, sample, starts[sample], targets, index)


def _sample_records(plan: Plan, sample: int, start: int, targets: Iterator[tuple],
                    index: int) -> Iterator[Record]:
    source = plan.samples[sample]
    target = next(targets)
    for record in iter_records(source.path, check_duplicates=False):
        if start + record.ordinal != target[1]:
            continue
        _check_planned(plan, source, record, target)
        yield record
        target = next(targets, None)
        if target is None:
            return
    raise _changed(plan, source, f"it ends before record {target[1] - start + 1} of shard "
                                 f"{index}")


def _check_planned(plan: Plan, source: SamplePlan, record: Record, target: tuple) -> None:
    _, _, rid, length, digest = target
    where = f"record {record.ordinal + 1} ('{record.id}', line {record.line})"
    if (record.id, record.length) != (rid, length):
        raise _changed(plan, source, f"{where} is {record.length} bp, the plan has {rid!r} "
                                     f"({length} bp)")
    if sequence_digest(record.seq) != digest:
        raise _changed(plan, source, f"{where} has other bases than when it was planned "
                                     "(same ID and length)")


def _changed(plan: Plan, source: SamplePlan, what: str) -> IntegrityError:
    return IntegrityError(f"{source.path}: {what}: the input changed since planning; fix: "
                          f"restore the planned file (sha256 {source.sha256[:16]}...) or plan "
                          f"it again in a new run dir (`virnuc-hpc plan {_inputs_hint(plan)} "
                          "--run-dir NEW`)")


def _inputs_hint(plan: Plan) -> str:
    if plan.sheet:
        return f"--samplesheet {plan.sheet}"
    return " ".join(s.path for s in plan.samples[:3]) + (" ..." if len(plan.samples) > 3 else "")

"""Helpers for tests of whole runs: plan, run shards in-process, reduce, compare results."""

from __future__ import annotations

import csv
from pathlib import Path

from virnuc_hpc.plan import load_plan, plan_input
from virnuc_hpc.reduce.merge import reduce_run
from virnuc_hpc.core.rundir import RunDir
from virnuc_hpc.parts import read_done
from virnuc_hpc.models.cache import profile_fingerprints
from virnuc_hpc.task.run import run_task, task_options


def plan(input_path, run_dir, shards=1, chunk_size=500, **config):
    return plan_input(input_path, run_dir, shards=shards, chunk_size=chunk_size, profile="tiny",
                      config=config, model_identities=profile_fingerprints("tiny", chunk_size))


def run_all(run_dir, indices=None):
    """Run shards in this process, with the options the plan recorded."""
    options = task_options(run_dir, "cpu")
    for index in indices if indices is not None else [s.index for s in load_plan(run_dir).shards]:
        run_task(run_dir, index, options)


def planned_run(input_path, run_dir, shards=1, part_rows=None, chunk_size=500):
    plan(input_path, run_dir, shards, chunk_size, **({"part_rows": part_rows} if part_rows else {}))
    run_all(run_dir)
    result = reduce_run(run_dir)
    assert result.ok, result.report()
    return result


def predictions(run_dir) -> list[dict]:
    with open(RunDir(run_dir).predictions) as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def frame_scores(run_dir) -> list[tuple[str, str, float, float]]:
    rows = Path(RunDir(run_dir).prediction_results).read_text().splitlines()[1:]
    return [(r[0], r[1], float(r[2]), float(r[3])) for r in (line.split("\t") for line in rows)]


def part_digests(run_dir, index=0) -> list[str]:
    return [p["sha256"] for p in read_done(RunDir(run_dir).task(index).root)["parts"]]

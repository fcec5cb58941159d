"""Shards sized by GPU time: tasks of the target minutes within the time limit, at least as
many as run at once when there is enough work, one for a small input; explicit sizes win."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.helpers import REPO, run_cli
from virnuc_hpc.plan.devices import Target
from virnuc_hpc.plan import plan_input
from virnuc_hpc.plan.sizing import (DEFAULT_TASK_MINUTES, LIMIT_MARGIN, TASK_OVERHEAD_S,
                                    Sizing, Work, shard_count, task_minutes)
from virnuc_hpc.plan.throughput import GOALS

SLURM = Target("partition gpu", uses_gpus=True, time_limit_min=240, parallelism=16)


def shard_minutes(histogram: dict[int, int], bases_per_chunk: float, shards: int,
                  chunk_size: int, rate: float) -> list[float]:
    """Each shard's estimated minutes when reads of one chunk each (`histogram` {1: n}) are
    cut into `shards` contiguous shards of equal cost (counts within one)."""
    reads = histogram[1]
    loads = np.full(shards, reads // shards) + (np.arange(shards) < reads % shards)
    return [task_minutes(Work.of(int(c), int(c * bases_per_chunk), chunk_size, rate).seconds)
            for c in loads]


def test_100m_short_reads_give_tasks_of_the_target_time_and_enough_of_them():
    """100M reads of 150 bp (one chunk each), from the histogram alone, at the bf16 goal."""
    reads, rate = 100_000_000, GOALS["bf16"]
    work = Work.of(reads, 150 * reads, 300, rate)
    count = shard_count(reads, work, Sizing(SLURM))
    minutes = shard_minutes({1: reads}, 150, count, 300, rate)
    assert count >= SLURM.parallelism
    assert max(minutes) <= DEFAULT_TASK_MINUTES and max(minutes) <= SLURM.time_limit_min
    assert min(minutes) >= 0.9 * DEFAULT_TASK_MINUTES   # not cut finer than the target
    wide = Target("partition gpu", uses_gpus=True, time_limit_min=240, parallelism=128)
    assert shard_count(reads, work, Sizing(wide)) == 128  # every GPU busy: shorter tasks
    huge = Target("partition gpu", uses_gpus=True, time_limit_min=240, parallelism=10_000)
    assert shard_count(reads, work, Sizing(huge)) == int(work.seconds // 300)  # >= 5 min each


def test_a_time_limit_below_the_target_bounds_every_task():
    tight = Target("short", uses_gpus=True, time_limit_min=20, parallelism=1)
    reads = 10_000_000
    work = Work.of(reads, 150 * reads, 500, GOALS["bf16"])
    count = shard_count(reads, work, Sizing(tight))
    assert max(shard_minutes({1: reads}, 150, count, 500, GOALS["bf16"])) <= \
        LIMIT_MARGIN * tight.time_limit_min + 0.01


def test_100_reads_give_one_shard(tmp_path):
    fasta = tmp_path / "r.fa"
    fasta.write_text("".join(f">r{i}\n{'ACGT' * 40}\n" for i in range(100)))
    plan = plan_input(fasta, tmp_path / "run", dry_run=True, target=SLURM)
    assert len(plan.shards) == 1 and plan.shards[0].minutes_est < 2
    assert "by GPU time" in plan.table()


def test_long_contigs_give_no_shard_over_the_time_limit(tmp_path):
    """200 contigs of 50 kb at the fp32 rate: 6.5 minutes of work for a 5-minute limit."""
    rng = np.random.default_rng(0)
    fasta = tmp_path / "contigs.fa"
    with open(fasta, "w") as out:
        for i in range(200):
            out.write(f">contig{i}\n{''.join(rng.choice(list('ACGT'), 50_000))}\n")
    limit = Target("short", uses_gpus=True, time_limit_min=5, parallelism=1)
    plan = plan_input(fasta, tmp_path / "run", dry_run=True, target=limit)
    assert len(plan.shards) > 1
    assert max(s.minutes_est for s in plan.shards) <= limit.time_limit_min
    work = plan.gpu_hours_est * 3600
    assert len(plan.shards) == math.ceil(work / (LIMIT_MARGIN * 5 * 60 - TASK_OVERHEAD_S))


@pytest.mark.parametrize("flag, value, shards", [("--shards", "3", 3),
                                                 ("--sequences-per-shard", "10", 5)])
def test_explicit_sizes_still_win(tmp_path, tiny_cache, flag, value, shards):
    done = run_cli("plan", REPO / "examples" / "reads.fa", "--run-dir", tmp_path / "run",
                   "--models", "tiny", flag, value, "--dry-run")
    assert done.returncode == 0, done.stderr
    assert f"shards: {shards}," in done.stdout and "sizing: as asked" in done.stdout


def test_submit_warns_naming_the_shards_whose_estimate_passes_the_time_limit(tmp_path,
                                                                           tiny_cache):
    """Explicit --shards can ask for tasks longer than --time: submit says which."""
    small = ("--cpus-per-task", "1", "--mem", "1G", "--dry-run")   # fits a test cluster too
    done = run_cli("submit", REPO / "examples" / "reads.fa", "--run-dir", tmp_path / "run",
                   "--models", "tiny", "--shards", "2", "--precision", "fp32", "--time", "1",
                   *small)
    assert done.returncode == 0, done.stderr
    assert "2 shard(s) are estimated past the 1-minute time limit" in done.stderr
    assert "minutes): 0, 1;" in done.stderr and "re-plan without --shards" in done.stderr
    fine = run_cli("submit", REPO / "examples" / "reads.fa", "--run-dir", tmp_path / "ok",
                   "--models", "tiny", "--precision", "fp32", "--time", "60", *small)
    assert fine.returncode == 0 and "past the" not in fine.stderr

"""The promise as a property: for any study of reads of real genomes, any cut of it (shards,
part size, prefetch, dedup, features kept) writes every sample's results files byte for byte
as the reference run of the same study (one shard, every read computed, default parts).

Reads are drawn by hypothesis from the bundled genomes (tests/data/genomes): 1 bp to 3 kb, both
strands, upper, lower and mixed case, runs of N; studies of 1-6 samples of 1-5 reads, with
duplicates within and across samples. A failing example is printed (with the blob to replay it).
VIRNUC_PROPERTY_EXAMPLES sets the number of examples (default 200 a run; a soak: thousands)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import results_bytes, run_cli
from tests.helpers_run import plan, run_all
from tests.helpers_study import write_sample
from tests.invariance.genomes import genomes, read_at
from virnuc_hpc.plan.samples import read_samplesheet
from virnuc_hpc.reduce.merge import reduce_run

EXAMPLES = int(os.environ.get("VIRNUC_PROPERTY_EXAMPLES", "200"))
LENGTHS = {"tiny": (1, 60), "short": (100, 450), "medium": (450, 1200), "long": (1200, 3000)}


@st.composite
def reads(draw) -> str:
    """One read: a piece of a real genome, its strand, its case, perhaps a run of N."""
    names = sorted(genomes())
    genome = draw(st.sampled_from(names))
    low, high = LENGTHS[draw(st.sampled_from(["tiny", "short", "short", "short", "medium",
                                              "long"]))]
    length = draw(st.integers(low, high))
    start = draw(st.integers(0, len(genomes()[genome]) - 1))
    seq = read_at(genome, start, length, draw(st.booleans()))
    case = draw(st.sampled_from(["as is", "upper", "lower", "mixed"]))
    if case == "upper":
        seq = seq.upper()
    elif case == "lower":
        seq = seq.lower()
    elif case == "mixed" and seq:
        cut = draw(st.integers(0, len(seq)))
        seq = seq[:cut].lower() + seq[cut:].upper()
    if seq and draw(st.integers(0, 9)) == 0:
        at, run = draw(st.integers(0, len(seq))), draw(st.integers(1, 40))
        seq = seq[:at] + "N" * run + seq[at:]
    return seq


@st.composite
def studies(draw) -> list[list[str]]:
    """1-6 samples of 1-5 reads; some reads repeat an earlier read of the study."""
    samples: list[list[str]] = []
    for _ in range(draw(st.integers(1, 6))):
        sample = []
        for _ in range(draw(st.integers(1, 5))):
            earlier = [s for other in samples for s in other] + sample
            if earlier and draw(st.integers(0, 3)) == 0:
                sample.append(draw(st.sampled_from(earlier)))     # a duplicate read
            else:
                sample.append(draw(reads()))
        samples.append(sample)
    return samples


cuts = st.fixed_dictionaries({
    "shards": st.integers(1, 8),
    "part_rows": st.sampled_from([1, 2, 3, 7, 16, 64, 2048]),
    "prefetch": st.sampled_from(["0", "1", "2"]),
    "dedup": st.booleans(),
    "features": st.sampled_from(["none", "fp16", "fp32"]),
})


def write_study(folder: Path, samples: list[list[str]]):
    folder.mkdir(parents=True)
    lines = ["sample,fasta"]
    for k, seqs in enumerate(samples):
        path = write_sample(folder / f"s{k}.fa", [(f"r{i}", s) for i, s in enumerate(seqs)])
        lines.append(f"s{k},{path.name}")
    (folder / "samples.csv").write_text("\n".join(lines) + "\n")
    return read_samplesheet(folder / "samples.csv")


@contextlib.contextmanager
def prefetch(depth: str):
    saved = os.environ.get("VIRNUC_HPC_PREFETCH")
    os.environ["VIRNUC_HPC_PREFETCH"] = depth
    try:
        yield
    finally:
        os.environ.pop("VIRNUC_HPC_PREFETCH") if saved is None else \
            os.environ.__setitem__("VIRNUC_HPC_PREFETCH", saved)


def computed(study, run_dir: Path, depth: str = "1", shards: int = 1, **config) -> Path:
    plan(study, run_dir, shards=shards, **config)
    with prefetch(depth):
        run_all(run_dir)
    result = reduce_run(run_dir)
    assert result.ok, result.report()
    return run_dir


@pytest.fixture(scope="module")
def held_models(tiny_cache):
    """The tiny models stay loaded across examples (each task then reuses them)."""
    from virnuc_hpc.models import LoadedModels, resolve_profile

    with LoadedModels(resolve_profile("tiny", 500)) as models:
        assert models.dnabert and models.esm and models.classifier   # loaded now
        yield models


@settings(max_examples=EXAMPLES, deadline=None, print_blob=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(samples=studies(), cut=cuts)
def test_any_cut_of_any_study_writes_the_reference_runs_bytes(held_models, samples, cut):
    folder = Path(tempfile.mkdtemp(prefix="virnuc-property-"))
    try:
        study = write_study(folder / "in", samples)
        reference = computed(study, folder / "reference", dedup=False)
        other = computed(study, folder / "cut", cut["prefetch"], cut["shards"],
                         part_rows=cut["part_rows"], dedup=cut["dedup"],
                         features=cut["features"])
        assert results_bytes(other) == results_bytes(reference)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@settings(max_examples=3, deadline=None, print_blob=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(samples=studies(), shards=st.integers(2, 4))
def test_parallel_task_processes_write_the_reference_runs_bytes(tiny_cache, samples, shards):
    """`predict --parallel 2`: shards in two processes at once, as a user runs it."""
    folder = Path(tempfile.mkdtemp(prefix="virnuc-parallel-"))
    try:
        study = write_study(folder / "in", samples)
        reference = computed(study, folder / "reference", dedup=False)
        done = run_cli("predict", "--samplesheet", folder / "in" / "samples.csv", "-o",
                       folder / "parallel", "--models", "tiny", "--shards", shards,
                       "--parallel", 2, "--quiet")
        assert done.returncode == 0, done.stderr
        assert results_bytes(folder / "parallel") == results_bytes(reference)
    finally:
        shutil.rmtree(folder, ignore_errors=True)

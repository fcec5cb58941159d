"""Fault-injection suite: the counts line at the end of the run, the shared clean run."""

from __future__ import annotations

import pytest

from tests.reliability import tally
from tests.reliability.harness import Bench


def pytest_terminal_summary(terminalreporter):
    if tally.counts["trials"]:
        terminalreporter.write_sep("-", "fault injection")
        terminalreporter.write_line(tally.line())
        terminalreporter.write_line(f"(SIGKILL trials among them: {tally.counts['kills']})")
        for why in tally.lost:
            terminalreporter.write_line(f"  lost: {why}")


@pytest.fixture(scope="session")
def bench(tiny_cache, tmp_path_factory) -> Bench:
    """A small planned run, run clean once through the CLI: what every trial is compared to."""
    return Bench(tmp_path_factory.mktemp("faults"), tiny_cache)


@pytest.fixture(scope="session")
def bench_fp16(tiny_cache, tmp_path_factory) -> Bench:
    """The same run keeping fp16 features (`--features fp16`): trials of parts with features."""
    return Bench(tmp_path_factory.mktemp("faults-fp16"), tiny_cache, features="fp16")


@pytest.fixture(scope="session")
def bench_dups(tiny_cache, tmp_path_factory) -> Bench:
    """A two-sample study whose reads repeat within and across samples and shards."""
    return Bench(tmp_path_factory.mktemp("faults-dups"), tiny_cache, dups=True)

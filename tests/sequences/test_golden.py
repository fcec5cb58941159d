"""The vendored golden files (tests/golden) are the original tool's outputs as the team keeps
them: where that shared copy is present (../shared/golden), every file is byte-identical."""

from __future__ import annotations

import pytest

from tests.helpers import REPO

VENDORED = REPO / "tests" / "golden"
TEAM_COPY = REPO.parent / "shared" / "golden"


def _files(root):
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


def test_vendored_golden_files_are_complete():
    names = {p.as_posix() for p in _files(VENDORED)}
    assert {"generated/input.fa", "generated/chunk300/identified_protein.faa",
            "generated/chunk500/identified_nucleotide.fa",
            "virnucpro-broad/test_with_orfs_prediction_results.txt"} <= names


@pytest.mark.skipif(not TEAM_COPY.is_dir(), reason=f"no team copy at {TEAM_COPY}")
def test_vendored_golden_files_equal_the_team_copy():
    assert _files(VENDORED) == _files(TEAM_COPY)
    for name in _files(TEAM_COPY):
        assert (VENDORED / name).read_bytes() == (TEAM_COPY / name).read_bytes(), name

"""VirNucPro output formats: byte-exact against the original's files, bounded-memory sort."""

from __future__ import annotations

import numpy as np
import pytest

from virnuc_hpc.reduce.outputs import (
    ChunkTable, chunk_id, format_score, is_virus, label, prediction_lines, read_prediction_results,
    reopening_lines, write_prediction_files,
)

BROAD = "virnucpro-broad/test_with_orfs_prediction_results"


def test_golden_files_reproduced_byte_exact(tmp_path, golden):
    """The original's two files for 4 frames, re-emitted from their own scores."""
    results, highest = golden / f"{BROAD}.txt", golden / f"{BROAD}_highestscore.csv"
    rows = [(frame, s1, s2) for frame, _, s1, s2 in read_prediction_results(results)]
    assert len(rows) == 4
    chunks = write_prediction_files(rows, tmp_path / "r.txt", tmp_path / "h.csv")
    assert (tmp_path / "r.txt").read_bytes() == results.read_bytes()
    assert (tmp_path / "h.csv").read_bytes() == highest.read_bytes()
    assert chunks == 2


def test_scores_printed_as_numpy_float32():
    for value in (0.12100612, 0.0011595711, 0.9988405, 1e-05, 0.5, 1.0, 0.0, 3.4e-12):
        assert format_score(value) == str(np.float32(value))
    assert format_score(1e-05) == "1e-05" and format_score(0.9988405) == "0.9988405"
    line = next(prediction_lines(["a_chunk_1F1"], np.array([[0.0011595711, 0.9988405]])))
    assert line == "a_chunk_1F1\tvirus\t0.0011595711\t0.9988405\n"  # not float64 digits


def test_tie_rules():
    assert label(0.5, 0.5) == "others"  # torch.max: the first index wins
    assert is_virus(0.5, 0.5) is True  # max(score2) >= max(score1)
    assert label(0.4, 0.6) == "virus" and not is_virus(0.6, 0.4)
    assert chunk_id("x_chunk_12R3") == "x_chunk_12"


def _naive_table(frames):
    """What VirNucPro's pandas code computes: group by id[:-2], sorted, independent maxima."""
    groups = {}
    for frame, s1, s2 in frames:
        m1, m2 = groups.get(chunk_id(frame), (-1.0, -1.0))
        groups[chunk_id(frame)] = (max(m1, np.float32(s1)), max(m2, np.float32(s2)))
    return [(k, bool(m2 >= m1)) for k, (m1, m2) in sorted(groups.items())]


def test_chunk_table_spilled_runs_equal_in_memory_groupby(tmp_path):
    rng = np.random.default_rng(7)
    frames = []
    for seq in range(60):
        for chunk in range(1, 13):  # chunk_10..12 sort before chunk_2
            for frame in ("F1", "F3", "R2")[: rng.integers(1, 4)]:
                s2 = np.float32(rng.random())
                frames.append((f"seq{seq}_chunk_{chunk}{frame}", np.float32(1) - s2, s2))
    frames.append(("seq0_chunk_1R3", np.float32(0.5), np.float32(0.5)))  # same chunk, far away
    frames.append(("tie_chunk_1F1", np.float32(0.5), np.float32(0.5)))
    rng.shuffle(frames)
    with ChunkTable(tmp_path, run_size=37) as table:
        for frame in frames:
            table.add_frame(*frame)
        assert len(table._runs) > 5
        got = list(table.chunks())
    assert got == _naive_table(frames)
    assert ("tie_chunk_1", True) in got
    first = ["seq0_chunk_1", "seq0_chunk_10", "seq0_chunk_11", "seq0_chunk_12"]
    assert [k for k, _ in got][:4] == first


@pytest.mark.parametrize("block", [1, 3, 64])
def test_reopening_lines(tmp_path, block):
    path = tmp_path / "lines"
    path.write_bytes(b"alpha\nbeta\n\ngamma")
    assert list(reopening_lines(path, block)) == ["alpha", "beta", "", "gamma"]
    path.write_bytes(b"")
    assert list(reopening_lines(path, block)) == []

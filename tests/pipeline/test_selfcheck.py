"""`models check-install`: the bundled VirNucPro reference and the comparison with it."""

import pytest

from tests.helpers import run_cli
from virnuc_hpc.pipeline import selfcheck
from virnuc_hpc.reduce.outputs import PREDICTION_HEADER, format_score, read_prediction_results

BROAD = "virnucpro-broad/test_with_orfs"


def test_bundled_reference_is_the_golden_one(golden):
    pairs = [(selfcheck.REFERENCE, f"{BROAD}.fa"),
             (selfcheck.EXPECTED, f"{BROAD}_prediction_results.txt"),
             (selfcheck.EXPECTED_HIGHEST, f"{BROAD}_prediction_results_highestscore.csv")]
    for bundled, name in pairs:
        assert bundled.read_bytes() == (golden / name).read_bytes()


def write_results(path, rows):
    lines = [f"{f}\t{c}\t{format_score(s1)}\t{format_score(s2)}\n" for f, c, s1, s2 in rows]
    path.write_text(PREDICTION_HEADER + "".join(lines))
    return path


@pytest.fixture
def original():
    return list(read_prediction_results(selfcheck.EXPECTED))


def test_the_original_matches_itself(original, tmp_path):
    result = selfcheck.compare_predictions(write_results(tmp_path / "r.txt", original))
    assert result.ok and result.max_diff == 0 and len(result.rows) == 4


@pytest.mark.parametrize("shift, ok", [(5e-5, True), (2e-4, False)])
def test_scores_are_held_to_the_tolerance(original, tmp_path, shift, ok):
    frame, call, s1, s2 = original[1]
    rows = original[:1] + [(frame, call, s1 - shift, s2 + shift)] + original[2:]
    result = selfcheck.compare_predictions(write_results(tmp_path / "r.txt", rows))
    assert result.ok is ok and result.max_diff == pytest.approx(shift, rel=0.05)


def test_calls_missing_and_extra_frames_are_problems(original, tmp_path):
    frame, _, s1, s2 = original[2]  # 'others' in the original
    rows = original[:2] + [(frame, "virus", s1, s2), ("x_chunk_1F1", "virus", 0.1, 0.9)]
    result = selfcheck.compare_predictions(write_results(tmp_path / "r.txt", rows))
    assert not result.ok and result.problems == [
        f"{frame}: called virus, the original called others",
        f"{original[3][0]}: missing", "x_chunk_1F1: not in the original's output"]


def test_tiny_models_fail_the_check_and_name_the_frames(tiny_cache):
    result = run_cli("models", "check-install", "--models", "tiny")
    assert result.returncode == 1, result.stderr
    assert "FAILED" in result.stdout and "synthetic_seq_2_chunk_1R2" in result.stdout


def test_real_profile_without_the_weights_says_how_to_fetch(tmp_path):
    result = run_cli("models", "check-install", "--cache", tmp_path / "empty")
    assert result.returncode == 2 and "models fetch" in result.stderr
    assert "Traceback" not in result.stderr

"""Equal keys among many in bounded memory: the same answer as a dictionary, over buckets."""

from __future__ import annotations

import numpy as np
import pytest

from virnuc_hpc.plan import external_sort as dedup
from virnuc_hpc.plan.external_sort import KeyFile, repeats


def by_dictionary(keys: np.ndarray) -> tuple[list[int], list[int]]:
    first, positions, representatives = {}, [], []
    for position, key in enumerate(map(lambda k: tuple(np.atleast_1d(k).tolist()), keys)):
        first.setdefault(key, position)
    counts = {}
    for key in map(lambda k: tuple(np.atleast_1d(k).tolist()), keys):
        counts[key] = counts.get(key, 0) + 1
    for position, key in enumerate(map(lambda k: tuple(np.atleast_1d(k).tolist()), keys)):
        if counts[key] > 1:
            positions.append(position)
            representatives.append(first[key])
    return positions, representatives


@pytest.mark.parametrize("width", [1, 2])
@pytest.mark.parametrize("bucket_bytes", [64 << 20, 4096])   # one bucket, or hundreds
def test_repeats_equal_a_dictionarys_answer(tmp_path, monkeypatch, width, bucket_bytes):
    monkeypatch.setattr(dedup, "BUCKET_BYTES", bucket_bytes)
    monkeypatch.setattr(dedup, "BLOCK", 1000)                # blocks straddle buckets
    rng = np.random.default_rng(width)
    pool = rng.integers(0, 2**63, size=(3000, width), dtype=np.uint64) * np.uint64(2) + \
        np.uint64(1)
    keys = pool[rng.integers(0, len(pool), 5000)]            # many repeated, some not
    keys = keys[:, 0] if width == 1 else keys
    file = KeyFile(tmp_path, width)
    for start in range(0, len(keys), 777):
        file.add(keys[start:start + 777])
    positions, representatives = repeats(file, tmp_path)
    file.close()
    assert (positions.tolist(), representatives.tolist()) == by_dictionary(keys)
    assert not list(tmp_path.glob(".buckets-*"))             # scratch removed


def test_distinct_keys_have_no_repeats(tmp_path):
    file = KeyFile(tmp_path)
    file.add(np.arange(10_000, dtype=np.uint64) * np.uint64(2654435761))
    assert [a.tolist() for a in repeats(file, tmp_path)] == [[], []]


def test_keys_sharing_their_first_word_are_told_apart_by_the_rest(tmp_path):
    """Two-word keys whose first words collide (a few values) but whose second words differ:
    the whole key decides, and each representative is its key's first position."""
    rng = np.random.default_rng(7)
    pool = np.column_stack([rng.integers(0, 4, 300), rng.integers(0, 2**62, 300)]).astype(
        np.uint64)
    keys = pool[rng.integers(0, len(pool), 4000)]
    file = KeyFile(tmp_path, 2)
    file.add(keys)
    positions, representatives = repeats(file, tmp_path)
    file.close()
    assert (positions.tolist(), representatives.tolist()) == by_dictionary(keys)

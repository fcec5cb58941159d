"""Node-local verification stamps: a model file hashed on this node is not hashed again while
it is the very same file; any change to it is hashed (and caught) again."""

from __future__ import annotations

import os
import time

import pytest

from virnuc_hpc.core import fsio
from virnuc_hpc.core.errors import IntegrityError
from virnuc_hpc.models import ModelCache, get_spec
from virnuc_hpc.models import stamps as stamps_module
from virnuc_hpc.models.stamps import Stamps


@pytest.fixture
def entry(tmp_path, monkeypatch):
    """A fresh tiny ESM entry, its stamps, and a counter of the hashes verify computes."""
    monkeypatch.setattr(stamps_module, "SETTLE_NS", 0)  # the file was written just now
    hashed = []
    real = fsio.sha256_file
    monkeypatch.setattr(fsio, "sha256_file", lambda path: (hashed.append(path), real(path))[1])
    spec = get_spec("tiny-esm2")
    stamps = Stamps(tmp_path / "stamps")
    cache = ModelCache(tmp_path / "cache", stamps=stamps)
    cache.prewarm(spec)
    hashed.clear()
    return cache, spec, stamps, hashed


def checkpoint(cache, spec):
    return cache.entry_dir(spec) / spec.files[0].name


def test_a_second_verification_on_the_node_hashes_nothing(entry):
    cache, spec, stamps, hashed = entry
    ModelCache(cache.root, stamps=stamps).verify(spec)  # another task on this node
    assert hashed == []
    ModelCache(cache.root, stamps=Stamps(cache.root.parent / "other-node")).verify(spec)
    assert hashed == [checkpoint(cache, spec)]          # another node hashes for itself


def test_a_file_changed_in_place_is_hashed_again_and_refused(entry):
    cache, spec, stamps, hashed = entry
    time.sleep(0.05)  # past the file system's clock tick
    with open(checkpoint(cache, spec), "r+b") as handle:
        handle.seek(-10, os.SEEK_END)
        byte = handle.read(1)
        handle.seek(-10, os.SEEK_END)
        handle.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(IntegrityError, match="sha256 mismatch"):
        ModelCache(cache.root, stamps=stamps).verify(spec)
    assert hashed == [checkpoint(cache, spec)]


def test_a_file_written_just_before_it_was_hashed_gets_no_stamp(tmp_path):
    target = tmp_path / "model.pt"
    target.write_bytes(b"weights")
    stamps = Stamps(tmp_path / "stamps")
    ident = stamps_module.identity(target)
    stamps.record(target, ident, "abc", time.time_ns())   # changed within SETTLE_NS
    assert stamps.lookup(target, ident) is None
    stamps.record(target, ident, "abc", time.time_ns() + 2 * stamps_module.SETTLE_NS)
    assert stamps.lookup(target, ident) == "abc"


def test_a_stamp_directory_open_to_others_is_not_trusted(entry):
    cache, spec, stamps, hashed = entry
    os.chmod(stamps.root, 0o777)
    ModelCache(cache.root, stamps=stamps).verify(spec)
    assert hashed == [checkpoint(cache, spec)]

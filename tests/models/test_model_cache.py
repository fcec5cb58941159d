"""The cache: verified publish, corruption detected before loading, repair, read-only use."""

import json
import os

import pytest

from virnuc_hpc.cli import main
from virnuc_hpc.core.errors import IntegrityError
from virnuc_hpc.models import LoadedModels, MissingModelError, ModelCache, get_spec, load_esm
from virnuc_hpc.models import resolve_profile, spec_from_path
from virnuc_hpc.models.cache import LOCK_NAME, MANIFEST

ESM = get_spec("tiny-esm2")
DNABERT = get_spec("tiny-dnabert-s")


@pytest.fixture
def cache(tmp_path):
    return ModelCache(tmp_path / "cache")


def snapshot(root):
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


def test_prewarm_publishes_a_manifest_with_checksums(cache):
    path = cache.prewarm(ESM)
    manifest = json.loads((cache.root / "tiny-esm2" / MANIFEST).read_text())
    assert manifest["biologically_meaningful"] is False
    record = manifest["files"][path.name]
    assert record["size"] == path.stat().st_size and len(record["sha256"]) == 64
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    assert cache.entries() == ["tiny-esm2"]


def test_default_root_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("VIRNUC_HPC_CACHE", str(tmp_path / "elsewhere"))
    assert ModelCache().root == tmp_path / "elsewhere"


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_file_is_detected_before_loading_and_repair_fixes_it(cache, damage, monkeypatch):
    path = cache.prewarm(ESM)
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    else:
        path.write_bytes(data[:-100] + bytes([data[-100] ^ 1]) + data[-99:])
    loads = []
    monkeypatch.setattr("virnuc_hpc.models.loaded.LOADERS",
                        {"esm": lambda *a, **k: loads.append(a)})
    with pytest.raises(IntegrityError) as info:
        assert LoadedModels(resolve_profile("tiny", 300), cache).esm
    assert str(path) in str(info.value) and "models fetch --repair" in str(info.value)
    assert loads == []  # never handed to a loader
    with pytest.raises(IntegrityError):
        cache.prewarm(ESM)  # prewarm reports, it does not silently rewrite
    assert main(["models", "fetch", "--repair", "--model", "tiny-esm2",
                 "--cache", str(cache.root)]) == 0
    assert cache.verify(ESM).read_bytes() == data


def test_missing_file_and_tampered_manifest_are_integrity_errors(cache):
    folder = cache.prewarm(DNABERT)
    (folder / "tokenizer.json").unlink()
    with pytest.raises(IntegrityError, match="tokenizer.json.*models fetch --repair"):
        cache.verify(DNABERT)
    (folder / MANIFEST).write_text("{not json")
    with pytest.raises(IntegrityError, match="MANIFEST"):
        cache.verify(DNABERT)
    cache.fetch(DNABERT, repair=True)
    cache.verify(DNABERT)


def test_crashed_publisher_leaves_no_entry_and_the_next_one_completes(cache):
    folder = cache.root / "tiny-esm2"
    folder.mkdir(parents=True)
    (folder / "esm2_t2_64_tiny.pt").write_bytes(b"half a file")  # files land before MANIFEST
    (folder / ".esm2_t2_64_tiny.pt.abc.tmp").write_bytes(b"temp of a killed writer")
    with pytest.raises(MissingModelError):
        cache.verify(ESM)
    path = cache.prewarm(ESM)
    load_esm(path)


def test_verify_and_load_never_write(cache):
    cache.prewarm(ESM)
    (cache.root / LOCK_NAME).unlink(missing_ok=True)
    before = snapshot(cache.root)
    with LoadedModels(resolve_profile("tiny", 300), cache) as models:
        cache.verify(ESM)
        cache.prewarm(ESM)  # present and verified: no lock taken, nothing written
        assert models.esm
    assert snapshot(cache.root) == before


def test_real_model_missing_offline_names_models_fetch(cache):
    with pytest.raises(MissingModelError, match="virnuc-hpc models fetch --model esm2-3b"):
        cache.prewarm(get_spec("esm2-3b"))
    assert not (cache.root / "esm2-3b").exists()


def test_fetch_of_a_real_model_offline_is_one_clear_error(cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["models", "fetch", "--model", "esm2_t6_8M_UR50D", "--cache", str(cache.root)]) == 2
    assert cache.entries() == []


def test_local_paths_bypass_the_cache(cache, tmp_path):
    other = ModelCache(tmp_path / "other")
    spec = spec_from_path(other.prewarm(ESM), "esm")
    assert cache.prewarm(spec) == spec.local_path
    assert not cache.root.exists()


def test_interleaved_publishers_without_a_lock_leave_a_verified_entry(cache, monkeypatch):
    """Publisher A is overtaken mid-entry by publisher B (as when flock excludes nobody); a
    reader checking after every file A renames always sees the entry complete and valid."""
    from virnuc_hpc.models import cache as cache_module

    real_publish = cache_module.publish_bytes
    states = []

    def racing_publish(final, data):
        if not states:
            states.append("B starts")
            cache.produce(DNABERT)  # B publishes the whole entry before A's first file lands
        record = real_publish(final, data)
        states.append(cache.status(DNABERT).state)
        return record

    monkeypatch.setattr(cache_module, "publish_bytes", racing_publish)
    cache.produce(DNABERT)
    files = len(DNABERT.files)
    # B's files land before its MANIFEST (entry absent, never corrupt); then A's over them
    assert states == ["B starts"] + ["missing"] * files + ["verified"] * files
    cache.verify(DNABERT)


def test_a_file_replaced_between_verification_and_loading_is_refused(cache, tmp_path,
                                                                     monkeypatch):
    """What is loaded must be what was hashed: a replacement in between is an error."""
    from virnuc_hpc.models import loaded

    for spec in resolve_profile("tiny", 500).specs():
        cache.prewarm(spec)
    checkpoint = next((cache.root / "tiny-esm2").glob("*.pt"))
    original = loaded.LOADERS["esm"]

    def replace_then_load(path, device="cpu", **kw):
        data = bytearray(checkpoint.read_bytes())
        data[-10] ^= 0xFF
        (tmp_path / "other").write_bytes(bytes(data))
        os.replace(tmp_path / "other", checkpoint)
        return original(path, device=device, **kw)

    monkeypatch.setitem(loaded.LOADERS, "esm", replace_then_load)
    with LoadedModels(resolve_profile("tiny", 500), cache) as models:
        with pytest.raises(IntegrityError) as caught:
            _ = models.esm
    message = str(caught.value)
    assert "changed while it was verified and loaded" in message and "\n" not in message
    assert "models fetch --repair --model tiny-esm2" in message


def test_a_cache_that_cannot_be_written_is_one_line_naming_it_and_the_fix(tmp_path,
                                                                         monkeypatch):
    from virnuc_hpc.core.errors import UserError

    monkeypatch.setenv("VIRNUC_HPC_FAULTS", "create:*=erofs@1+")
    spec = resolve_profile("tiny", 500).esm
    with pytest.raises(UserError) as caught:
        ModelCache(tmp_path / "ro").prewarm(spec)
    message = str(caught.value)
    assert str(tmp_path / "ro") in message and "VIRNUC_HPC_CACHE" in message
    assert "models fetch" in message and "\n" not in message

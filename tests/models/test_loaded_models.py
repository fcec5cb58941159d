"""One load per model per process; release really frees."""

import gc
import weakref

import pytest

from virnuc_hpc.models import LoadedModels, ModelCache, resolve_profile


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    cache = ModelCache(tmp_path_factory.mktemp("cache"))
    for spec in resolve_profile("tiny", 500).specs():
        cache.prewarm(spec)
    return cache


def test_loading_twice_returns_the_same_objects(cache):
    profile = resolve_profile("tiny", 500)
    with LoadedModels(profile, cache) as first, LoadedModels(profile, cache) as second:
        assert first.esm[0] is second.esm[0]
        assert first.dnabert[1] is second.dnabert[1]
        assert first.classifier is second.classifier
        assert first.fingerprints == second.fingerprints
        assert set(first.fingerprints) == {"tiny-dnabert-s", "tiny-esm2", "tiny-virnucpro-500"}
        assert first.biologically_meaningful is False


def test_release_frees_the_models(cache):
    models = LoadedModels(resolve_profile("tiny", 500), cache)
    refs = [weakref.ref(models.esm[0]), weakref.ref(models.dnabert[1]),
            weakref.ref(models.classifier)]
    models.release()
    gc.collect()
    assert [ref() for ref in refs] == [None, None, None]
    again = LoadedModels(resolve_profile("tiny", 500), cache)
    assert again.classifier is not None  # a fresh load after release works
    again.release()


def test_a_model_stays_while_another_holder_uses_it(cache):
    profile = resolve_profile("tiny", 500)
    first, second = LoadedModels(profile, cache), LoadedModels(profile, cache)
    ref = weakref.ref(first.classifier)
    assert second.classifier is ref()
    first.release()
    gc.collect()
    assert ref() is second.classifier
    second.release()
    gc.collect()
    assert ref() is None

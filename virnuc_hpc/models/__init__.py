"""Models: registry and profiles, the checksummed cache, tiny models, and the three loaders.

`LoadedModels` loads each model once per process and releases it explicitly. Names are
imported on first use: the registry and the cache never import torch, so commands that load
no model (`plan`, `status`, `models list`) start at once."""

from __future__ import annotations

import importlib

_HOMES = {
    "LoadedModels": "loaded", "MLPClassifier": "classifier", "load_classifier": "classifier",
    "DnabertModel": "dnabert", "load_dnabert": "dnabert", "masked_mean": "dnabert",
    "load_esm": "esm", "MissingModelError": "cache", "ModelCache": "cache",
    "model_fingerprint": "cache", "profile_fingerprints": "cache", "ModelSpec": "registry",
    "Profile": "registry", "get_spec": "registry", "resolve_profile": "registry",
    "spec_from_path": "registry",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)

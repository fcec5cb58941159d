"""The profile's models loaded once per process, and released explicitly (`LoadedModels`)."""

from __future__ import annotations

import gc
import threading

import torch

from ..core.faults import fault_point
from .cache import ModelCache, model_fingerprint
from .classifier import MLPClassifier, load_classifier
from .dnabert import load_dnabert
from .esm import load_esm
from .precision import dtype_of
from .registry import ModelSpec, Profile

LOADERS = {"dnabert": load_dnabert, "esm": load_esm, "classifier": load_classifier}
Key = tuple[str, str, str, str, str]  # kind, path, fingerprint, device, precision

# Key -> loaded object; shared by every LoadedModels in the process
_loaded: dict[Key, object] = {}
_users: dict[Key, int] = {}
_guard = threading.Lock()


def _acquire(key: Key) -> object:
    with _guard:
        if key not in _loaded:
            kind, path, _, device, precision = key
            fault_point("models.load", kind)
            _loaded[key] = _load(kind, path, device, precision)
        _users[key] = _users.get(key, 0) + 1
        return _loaded[key]


def _load(kind: str, path: str, device: str, precision: str) -> object:
    """The encoders on `device` at `precision`, cast there; the classifier stays fp32 (the
    scores always come from fp32 features)."""
    if kind == "classifier":
        return LOADERS[kind](path, device=device)
    return LOADERS[kind](path, device=device, dtype=dtype_of(precision))


def _drop(key: Key) -> bool:
    """One user fewer; True when that was the last (the model is no longer held)."""
    with _guard:
        _users[key] -= 1
        if _users[key] == 0:
            del _users[key], _loaded[key]
            return True
        return False


class LoadedModels:
    """The profile's three models, verified then loaded lazily, once per process.

    `.dnabert` is (tokenizer, DnabertModel), `.esm` is (ESM model, alphabet), both on `device`
    at `precision`; `.classifier` is an eval-mode fp32 MLPClassifier. `release()` (or leaving
    the `with` block) drops them."""

    def __init__(self, profile: Profile, cache: ModelCache | None = None, device="cpu",
                 precision: str = "fp32"):
        self.profile, self.cache, self.device = profile, cache or ModelCache(), str(device)
        self.precision = precision
        self._keys: dict[str, Key] = {}
        self._objects: dict[str, object] = {}

    @property
    def biologically_meaningful(self) -> bool:
        return all(spec.biologically_meaningful for spec in self.profile.specs())

    @property
    def fingerprints(self) -> dict[str, str]:
        """The same as `cache.profile_fingerprints` for this profile."""
        return {spec.name: self._key(spec)[2] for spec in self.profile.specs()}

    def _key(self, spec: ModelSpec) -> Key:
        if spec.kind not in self._keys:
            path = self.cache.prewarm(spec)
            fingerprint = model_fingerprint(spec, path)
            self._keys[spec.kind] = (spec.kind, str(path), fingerprint, self.device,
                                     self.precision)
        return self._keys[spec.kind]

    def _get(self, spec: ModelSpec):
        if spec.kind not in self._objects:
            self._objects[spec.kind] = _acquire(self._key(spec))
            self.cache.check_unchanged(spec)  # what was loaded is what verify hashed
        return self._objects[spec.kind]

    @property
    def dnabert(self):
        return self._get(self.profile.dnabert)

    @property
    def esm(self):
        return self._get(self.profile.esm)

    @property
    def classifier(self) -> MLPClassifier:
        return self._get(self.profile.classifier)

    def release(self) -> None:
        """Drop this holder's models; a model nobody holds any more is freed at once."""
        freed = False
        for kind in list(self._objects):
            del self._objects[kind]
            freed |= _drop(self._keys[kind])
        if not freed:
            return  # still held by another LoadedModels of this process: nothing to free
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def __enter__(self) -> "LoadedModels":
        return self

    def __exit__(self, *exc) -> None:
        self.release()

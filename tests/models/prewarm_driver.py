"""Child process for the concurrent pre-warm tests: waits for a start signal, pre-warms the tiny
profile, loads all three models, and prints the sha256 of every file it loaded from.

argv: cache_root counter_file start_file lock|nolock
Every publication of an entry appends the entry name to counter_file. With `nolock` the
cache's FileLock is replaced by a lock that never excludes anyone (as flock on Lustre)."""

import json
import sys
import time
from pathlib import Path

from virnuc_hpc.core import fsio
from virnuc_hpc.models import LoadedModels, ModelCache, cache, resolve_profile


class NoLock:
    def __init__(self, *args, **kwargs):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None


def main() -> None:
    root, counter, start, mode = sys.argv[1:5]
    produce = cache.ModelCache.produce

    def counting_produce(self, spec, *args, **kwargs):
        with open(counter, "a") as handle:
            handle.write(spec.name + "\n")
        return produce(self, spec, *args, **kwargs)

    cache.ModelCache.produce = counting_produce
    if mode == "nolock":
        cache.FileLock = NoLock
    deadline = time.monotonic() + 120
    while not Path(start).exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    store = ModelCache(root)
    with LoadedModels(resolve_profile("tiny", 300), store) as models:
        assert models.dnabert and models.esm and models.classifier is not None
        loaded = {}
        for spec in resolve_profile("tiny", 300).specs():
            folder = store.entry_dir(spec)
            for name in json.loads((folder / cache.MANIFEST).read_text())["files"]:
                loaded[f"{spec.name}/{name}"] = fsio.sha256_file(folder / name)
        print(json.dumps({"files": loaded, "fingerprints": models.fingerprints}))


if __name__ == "__main__":
    main()

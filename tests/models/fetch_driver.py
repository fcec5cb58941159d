"""Child process for the concurrent download test: waits for a start signal, pre-warms the real
`dnabert-s` entry with download=True from the hub HF_ENDPOINT names, and prints the sha256 of
every file of the verified entry and its recorded revision.

argv: cache_root start_file lock|nolock   (nolock: the cache's FileLock excludes no one, as
flock on Lustre; see prewarm_driver.py)"""

import json
import sys
import time
from pathlib import Path

from prewarm_driver import NoLock

from virnuc_hpc.core import fsio
from virnuc_hpc.models import ModelCache, cache, get_spec


def main() -> None:
    root, start, mode = sys.argv[1:4]
    if mode == "nolock":
        cache.FileLock = NoLock
    import huggingface_hub  # noqa: F401  (imported before the start: the race is the download)

    deadline = time.monotonic() + 120
    while not Path(start).exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    store, spec = ModelCache(root), get_spec("dnabert-s")
    folder = store.prewarm(spec, download=True)
    files = json.loads((folder / cache.MANIFEST).read_text())
    loaded = {name: fsio.sha256_file(folder / name) for name in files["files"]}
    print(json.dumps({"files": loaded, "revision": files["revision"]}))


if __name__ == "__main__":
    main()

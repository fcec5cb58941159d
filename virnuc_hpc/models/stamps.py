"""Node-local stamps of model files already hashed on this machine, so that every task of a
node does not re-read 6 GB to hash a file nobody changed.

After a file of a cache entry hashes to its MANIFEST's sha256, a stamp records its identity
(device, inode, size, mtime and ctime, in ns) and that sha256, in a directory of this user's
on this machine (`$VIRNUC_HPC_STAMPS`, default `/tmp/virnuc-hpc-<uid>/stamps`; `off` turns
stamps off). The next verification on the node trusts the stamp only if the file's identity
is exactly the same: any write, truncation, chmod or replacement changes the ctime (which no
user can set back) or the inode. A file changed within `SETTLE_NS` before it was hashed gets
no stamp (a change in the same clock tick could leave the times equal, as git's "racy" index
entries), and so is hashed again next time. A stamp directory not owned by this user, or open
to others, is ignored.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path

from ..core.fsio import atomic_write, make_dirs

log = logging.getLogger(__name__)

SETTLE_NS = 2_000_000_000
Identity = tuple[int, int, int, int, int]  # dev, ino, size, mtime_ns, ctime_ns


def identity(path: Path) -> Identity:
    """What changes when a file is replaced, rewritten or truncated."""
    st = path.stat()
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def stamps_dir() -> Path | None:
    value = os.environ.get("VIRNUC_HPC_STAMPS", "")
    if value.lower() in ("off", "0", "none"):
        return None
    return Path(value) if value else Path("/tmp") / f"virnuc-hpc-{os.getuid()}" / "stamps"


class Stamps:
    """`lookup(path, identity)` -> the sha256 hashed on this node, or None; `record(...)`."""

    def __init__(self, root: Path | None = None):
        self.root = root if root is not None else stamps_dir()

    def _file(self, path: Path) -> Path:
        key = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:32]
        return self.root / f"{key}.json"

    def lookup(self, path: Path, ident: Identity) -> str | None:
        if self.root is None or not _private(self.root):
            return None
        try:
            stamp = json.loads(self._file(path).read_text())
        except (OSError, ValueError):
            return None
        if stamp.get("path") != str(path.resolve()) or tuple(stamp.get("identity", ())) != ident:
            return None
        return stamp.get("sha256")

    def record(self, path: Path, ident: Identity, sha256: str, hashed_at_ns: int) -> None:
        """Keep what was hashed, unless the file changed just before (or no stamp can be
        written here: stamps only save time, they are never needed)."""
        if self.root is None or ident[4] > hashed_at_ns - SETTLE_NS:
            return
        try:
            make_dirs(self.root)
            os.chmod(self.root, 0o700)
            stamp = {"path": str(path.resolve()), "identity": list(ident), "sha256": sha256,
                     "hashed": time.time()}
            atomic_write(self._file(path), json.dumps(stamp))
        except OSError as exc:
            log.debug("no verification stamp for %s (%s)", path, exc)


def _private(root: Path) -> bool:
    try:
        st = root.stat()
    except OSError:
        return False
    return st.st_uid == os.getuid() and not st.st_mode & 0o077

"""The one way this package writes files: atomically, fsynced, with sha256 helpers.

Nothing the package creates is world-writable: files get the mode open() would give less the
"others may write" bit, directories are made by `make_dirs` likewise, and the CLI clears that
bit from the process umask (`deny_world_write`) so that what libraries and child processes
create follows too."""

from __future__ import annotations

import hashlib
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

from .faults import fault_point

CHUNK = 1 << 20


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


WORLD_WRITE = 0o002
FILE_MODE = 0o666 & ~(_current_umask() | WORLD_WRITE)  # open()'s mode, never world-writable
DIR_MODE = 0o777 & ~(_current_umask() | WORLD_WRITE)


def deny_world_write() -> None:
    """Add "others may not write" to this process's umask (what it and its children create)."""
    os.umask(_current_umask() | WORLD_WRITE)


def make_dirs(path: str | os.PathLike) -> Path:
    """`mkdir -p` whose new directories are never world-writable, whatever the umask."""
    path = Path(path)
    missing = [p for p in (path, *path.parents) if not p.is_dir()]
    for directory in reversed(missing):
        try:
            directory.mkdir()
        except FileExistsError:
            continue  # made by another process meanwhile (or a file: the caller will say)
        os.chmod(directory, DIR_MODE)
    return path


def fsync_dir(directory: Path) -> None:
    """Make a rename inside `directory` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_beside(path: Path) -> Path:
    """A new, unique, empty temp file in `path`'s directory (so the final rename is atomic),
    with the mode open() would give (mkstemp alone gives 0600)."""
    fault_point("create", path)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.fchmod(fd, FILE_MODE)
    os.close(fd)
    return Path(name)


def publish(tmp: Path, path: Path, check: Callable[[Path], None] | None = None) -> None:
    """fsync `tmp`, let `check` inspect it (raise to refuse), rename it over `path`, fsync the
    directory. A reader sees the old file or the complete new one; `tmp` never survives a
    failure."""
    try:
        fault_point("write", path)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        if check is not None:
            check(tmp)
        fault_point("rename", path)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


@contextmanager
def atomic_open(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Write through a temp file beside `path`, published (see `publish`) when the block ends
    without error; on error `path` is untouched."""
    path = Path(path)
    make_dirs(path.parent)
    tmp = temp_beside(path)
    try:
        with open(tmp, "wb") as handle:
            yield handle
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    publish(tmp, path)


def atomic_write(path: str | os.PathLike, data: bytes | str) -> None:
    """Write `data` to `path` atomically."""
    with atomic_open(path) as handle:
        handle.write(data.encode() if isinstance(data, str) else data)


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()

"""Opening an input file as a byte stream of lines, or refusing it with a one-line reason.

Only a regular file is read: `plan` reads it twice (parsed, and hashed for the run's
fingerprint) and a resumed `predict` or `submit` hashes it again, so a named pipe or a process
substitution (`<(zcat ...)`) is refused, as are devices and sockets. Compression
is recognised by its magic bytes, not the file name: gzip and bgzip, bzip2, xz, and zstd
(`compression.zstd`, or its backport before Python 3.14). A leading UTF-8 byte order mark is
dropped; a file with any carriage return in its first block is read with universal newlines
(CR-only and mixed endings, as Biopython reads them). Errors while decompressing or reading
become `InputError`s naming the file and the fix.
"""

from __future__ import annotations

import bz2
import errno
import gzip
import io
import lzma
import os
import stat
import sys
import zlib
from pathlib import Path
from typing import BinaryIO, Callable

from ..core.errors import InputError

BLOCK = 1 << 20
UTF8_BOM = b"\xef\xbb\xbf"
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
MAGIC_BYTES = 6
NOT_REGULAR = ((stat.S_ISFIFO, "a named pipe or process substitution"),
               (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
               (stat.S_ISSOCK, "a socket"))
REREAD_FIX = ("plan reads the input twice (parsed, and hashed for the run's fingerprint), and "
              "a resumed predict or submit hashes it again: save it to a regular file first "
              "(e.g. `zcat reads.fq.gz > reads.fq`, or give the .gz file itself)")


def _zstd():
    try:
        from compression import zstd  # Python 3.14+
    except ImportError:
        from backports import zstd
    return zstd


COMPRESSIONS: dict[str, tuple[bytes, Callable[[Path], BinaryIO]]] = {
    "gzip": (b"\x1f\x8b", lambda p: gzip.open(p, "rb")),
    "bzip2": (b"BZh", lambda p: bz2.open(p, "rb")),
    "xz": (b"\xfd7zXZ\x00", lambda p: lzma.open(p, "rb")),
    "zstd": (b"\x28\xb5\x2f\xfd", lambda p: _zstd().open(p, "rb")),
}


def check_input(path: str | Path) -> None:
    """Refuse anything but an existing, readable regular file (symbolic links followed)."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise _open_error(path, exc) from None
    if stat.S_ISDIR(mode):
        raise InputError(path, "", "is a directory", "give a FASTA or FASTQ file")
    for test, kind in NOT_REGULAR:
        if test(mode):
            raise InputError(path, "", f"is {kind}, not a regular file", REREAD_FIX)


def _open_error(path: Path, exc: OSError) -> InputError:
    if exc.errno == errno.ENOENT and path.is_symlink():
        return InputError(path, "", f"is a symbolic link to a missing file ({os.readlink(path)})",
                          "point the link at an existing file, or give the file itself")
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return InputError(path, "", "no such file", "check the path")
    if exc.errno == errno.ELOOP:
        return InputError(path, "", "is a symbolic link loop",
                          "point the link at the real file (see `ls -l`)")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return InputError(path, "", "permission denied",
                          "make it readable (`chmod u+r`) or give a readable copy")
    return InputError(path, "", f"cannot be opened ({exc.strerror or exc})",
                      "check the path and the file system")


def compression_of(path: Path) -> str | None:
    """The compression format named by the file's magic bytes, None for plain text."""
    with open(path, "rb") as handle:
        magic = handle.read(MAGIC_BYTES)
    return next((name for name, (prefix, _) in COMPRESSIONS.items()
                 if magic.startswith(prefix)), None)


def open_input(path: str | Path) -> BinaryIO:
    """The decompressed bytes of `path`, BOM dropped, line breaks as `\\n` where needed."""
    path = Path(path)
    check_input(path)
    try:
        name = compression_of(path)
        handle = COMPRESSIONS[name][1](path) if name else open(path, "rb", buffering=BLOCK)
    except OSError as exc:
        raise _open_error(path, exc) from None
    try:
        return _text_stream(path, handle)
    except BaseException as exc:
        handle.close()
        raise read_error(path, exc, "line 1") or exc from None


def _text_stream(path: Path, handle) -> BinaryIO:
    head = handle.peek(BLOCK)[:BLOCK]
    if head.startswith(UTF16_BOMS):
        raise InputError(path, "line 1", "UTF-16 text (it starts with a UTF-16 byte order mark)",
                         "convert it to ASCII/UTF-8 (`iconv -f UTF-16 -t UTF-8`)")
    if head.startswith(UTF8_BOM):
        handle.read(len(UTF8_BOM))
    if b"\r" in head:
        return io.BufferedReader(UniversalNewlines(handle), BLOCK)  # type: ignore[return-value]
    return handle


class UniversalNewlines(io.RawIOBase):
    """`source` with every line break (`\\r\\n`, or a lone `\\r`) read as `\\n`."""

    def __init__(self, source: BinaryIO):
        super().__init__()
        self.source, self.held = source, b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.held + self.source.read(len(buffer))
        while data.endswith(b"\r") and (more := self.source.read(1)):
            data += more  # a `\r` at the end of a block may be the first half of `\r\n`
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        size = min(len(data), len(buffer))
        buffer[:size], self.held = data[:size], data[size:]
        return size

    def close(self) -> None:
        if not self.closed:
            self.source.close()
        super().close()


def _data_errors() -> tuple[type[BaseException], ...]:
    loaded = sys.modules.get("compression.zstd") or sys.modules.get("backports.zstd")
    return (EOFError, zlib.error, lzma.LZMAError) + ((loaded.ZstdError,) if loaded else ())


def read_error(path: Path, exc: BaseException, where: str) -> InputError | None:
    """The InputError for a failure while reading `path` (None: not a reading problem)."""
    if isinstance(exc, _data_errors()) or (isinstance(exc, OSError) and exc.errno is None):
        name = compression_of(path) or "compressed"
        return InputError(path, where, f"the {name} data is truncated or corrupt ({exc})",
                          f"re-copy or re-compress the file (check it with `{name} -t`)")
    if isinstance(exc, OSError):
        return InputError(path, where, f"read error ({exc.strerror or exc})",
                          "check the disk or network file system, then re-copy the file")
    return None


__all__ = ["COMPRESSIONS", "check_input", "compression_of", "open_input", "read_error"]

"""Opening input: line-ending conversion at block boundaries, compression by magic bytes,
and the one-line errors for files that cannot be opened or read."""

import bz2
import errno
import gzip
import io
import lzma

import pytest

from virnuc_hpc.core.errors import InputError
from virnuc_hpc.sequences import source
from virnuc_hpc.sequences.source import UniversalNewlines, compression_of, open_input


@pytest.mark.parametrize("block", range(1, 9))
def test_universal_newlines_at_every_block_boundary(block):
    data = b">a\r\nAC\rGT\r\r\n>b\n\rTT\r"
    reader = io.BufferedReader(UniversalNewlines(io.BytesIO(data)), buffer_size=block)
    assert reader.read().split(b"\n") == data.splitlines() + [b""]


def test_compression_is_told_by_magic_bytes_not_the_name(tmp_path):
    text = b">a\nACGT\n"
    for name, packed in {"gzip": gzip.compress(text), "bzip2": bz2.compress(text),
                         "xz": lzma.compress(text), "zstd": source._zstd().compress(text),
                         None: text}.items():
        path = tmp_path / "reads.txt"
        path.write_bytes(packed)
        assert compression_of(path) == name
        with open_input(path) as handle:
            assert handle.read() == text


def test_permission_denied_and_read_errors_are_one_line(tmp_path, monkeypatch):
    path = tmp_path / "reads.fa"
    path.write_bytes(b">a\nACGT\n")

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(source, "open", denied, raising=False)
    with pytest.raises(InputError, match="reads.fa: permission denied; fix: make it readable"):
        open_input(path)
    error = source.read_error(path, OSError(errno.EIO, "Input/output error"), "line 7")
    assert str(error).endswith("line 7: read error (Input/output error); fix: check the disk "
                               "or network file system, then re-copy the file")

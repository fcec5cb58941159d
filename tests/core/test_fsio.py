"""The one atomic write: a failure leaves the old file and no temp file; modes follow umask."""

import os
import stat

import pytest

from virnuc_hpc.core.fsio import FILE_MODE, atomic_open, atomic_write, publish, temp_beside


def test_error_inside_the_block_leaves_the_old_file_and_no_temp(tmp_path):
    path = tmp_path / "out.txt"
    atomic_write(path, "old\n")
    with pytest.raises(RuntimeError):
        with atomic_open(path) as handle:
            handle.write(b"half a new file")
            raise RuntimeError("killed mid-write")
    assert path.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_a_refusing_check_keeps_the_old_file(tmp_path):
    path = tmp_path / "model.bin"
    atomic_write(path, b"good")
    tmp = temp_beside(path)
    tmp.write_bytes(b"corrupt")

    def refuse(candidate):
        assert candidate.read_bytes() == b"corrupt"
        raise ValueError("checksum mismatch")

    with pytest.raises(ValueError):
        publish(tmp, path, refuse)
    assert path.read_bytes() == b"good" and not tmp.exists()


def test_files_get_the_mode_open_would_give(tmp_path):
    path = tmp_path / "shared.txt"
    atomic_write(path, "x")
    assert stat.S_IMODE(path.stat().st_mode) == FILE_MODE
    assert FILE_MODE & stat.S_IROTH              # readable by other users of a shared cache


def test_nothing_is_world_writable_even_with_umask_000(tmp_path):
    import os

    from virnuc_hpc.core.fsio import make_dirs

    previous = os.umask(0)
    try:
        made = make_dirs(tmp_path / "a" / "b")
        atomic_write(made / "c" / "file.txt", "x")
    finally:
        os.umask(previous)
    created = [tmp_path / "a", made, made / "c", made / "c" / "file.txt"]
    assert [p for p in created if p.stat().st_mode & stat.S_IWOTH] == []
    assert all(p.exists() for p in created)

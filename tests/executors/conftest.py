"""Fixtures for executor tests: a real SLURM cluster (session scope) and a fake task command."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from slurm_cluster import (APT_PACKAGES, SlurmCluster, install_allowed, install_slurm,
                           missing_binaries)

FAKE_TASK = Path(__file__).with_name("fake_task.py")


@pytest.fixture(scope="session")
def slurm_cluster():
    """slurmctld + slurmd on free ports in a temp dir; SLURM_CONF and PATH point at it.

    Missing SLURM binaries are installed only with CI=true or VIRNUC_INSTALL_SLURM=1; otherwise
    the tests that need the cluster are skipped, saying what to install.
    """
    if missing_binaries():
        if not install_allowed():
            pytest.skip(f"SLURM not installed ({', '.join(missing_binaries())} missing): "
                        f"apt-get install {' '.join(APT_PACKAGES)}, or set VIRNUC_INSTALL_SLURM=1")
        install_slurm()
    root = Path(tempfile.mkdtemp(prefix="vslurm-"))   # short path: slurmd puts sockets here
    cluster = SlurmCluster(root)
    cluster.start()
    saved = {k: os.environ.get(k) for k in ("SLURM_CONF", "PATH")}
    os.environ.update(cluster.env())
    try:
        yield cluster
    finally:
        cluster.stop()
        if os.environ.get("VIRNUC_KEEP_SLURM") != "1":   # keep state and logs for debugging
            shutil.rmtree(root, ignore_errors=True)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class FakeRun:
    """A run dir whose tasks are fake_task.py: modes per index, attempts recorded as JSON lines."""

    def __init__(self, root: Path, planned: int):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        (root / "planned").write_text(str(planned))

    def task_argv(self, index: int) -> list[str]:
        return [sys.executable, str(FAKE_TASK), str(self.root), str(index)]

    @property
    def reduce_argv(self) -> list[str]:
        return [sys.executable, str(FAKE_TASK), str(self.root), "reduce"]

    def mode(self, index: int, mode: str) -> None:
        (self.root / "mode").mkdir(exist_ok=True)
        (self.root / "mode" / str(index)).write_text(mode)

    def sleep(self, seconds: float) -> None:
        (self.root / "sleep").write_text(str(seconds))

    def attempts(self) -> list[dict]:
        import json
        path = self.root / "attempts.jsonl"
        return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []

    def reduces(self) -> list[dict]:
        import json
        path = self.root / "reduce.jsonl"
        return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []

    def done(self) -> list[int]:
        return sorted(int(p.parent.name) for p in (self.root / "tasks").glob("*/DONE"))


@pytest.fixture
def fake_run(tmp_path):
    return lambda planned, name="run": FakeRun(tmp_path / name, planned)

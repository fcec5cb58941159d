"""Fixtures for executor tests: a fake task command, a scontrol answering from captured text
(data/), and the commands through which submit would queue (the real cluster: tests/conftest.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.executors.fake_slurm import FakeSlurm


FAKE_TASK = Path(__file__).with_name("fake_task.py")


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


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch) -> FakeSlurm:
    """Fake SLURM commands first on PATH (a real test cluster's SLURM_CONF is then unused):
    sbatch prints job ids 101, 102...; MaxArraySize = 3; scontrol shows the captured cluster."""
    fake = FakeSlurm(tmp_path / "fakebin", max_array_size=3)
    monkeypatch.setenv("PATH", f"{fake.bin}:/usr/bin:/bin")
    return fake

"""Eight processes pre-warm an empty cache at once: with the lock, one publication per entry;
with the lock made a no-op (flock on Lustre), every process still loads checksum-valid models."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from virnuc_hpc.models import resolve_profile, tiny

DRIVER = Path(__file__).with_name("prewarm_driver.py")
PROCESSES = 8


def expected_sha256() -> dict[str, str]:
    profile = resolve_profile("tiny", 300)
    expected = {}
    for spec in profile.specs():
        for name, data in tiny.files_for(spec.kind, chunk_size=spec.chunk_size or 0).items():
            expected[f"{spec.name}/{name}"] = hashlib.sha256(data).hexdigest()
    return expected


def run_prewarmers(tmp_path: Path, mode: str) -> tuple[list[dict], list[str]]:
    root, counter, start = tmp_path / "cache", tmp_path / "produced.log", tmp_path / "go"
    children = [
        subprocess.Popen([sys.executable, str(DRIVER), str(root), str(counter), str(start), mode],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(PROCESSES)
    ]
    start.touch()
    results = []
    for child in children:
        out, err = child.communicate(timeout=600)
        assert child.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results, counter.read_text().split()


@pytest.mark.parametrize("mode", ["lock", "nolock"])
def test_eight_processes_prewarm_an_empty_cache(tmp_path, mode):
    results, produced = run_prewarmers(tmp_path, mode)
    expected = expected_sha256()
    for result in results:
        assert result["files"] == expected  # every process loaded checksum-valid files
    assert len({json.dumps(r["fingerprints"], sort_keys=True) for r in results}) == 1
    names = [spec.name for spec in resolve_profile("tiny", 300).specs()]
    if mode == "lock":
        assert sorted(produced) == sorted(names)  # exactly one publication per entry
    else:
        assert set(produced) == set(names)
    leftovers = [p for p in (tmp_path / "cache").rglob("*.tmp")]
    assert leftovers == []

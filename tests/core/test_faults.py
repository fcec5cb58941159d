"""The fault hook: inert without VIRNUC_HPC_FAULTS, exact about which call it hits."""

from __future__ import annotations

import errno

import pytest

from virnuc_hpc.core import faults
from virnuc_hpc.core.faults import FaultSpecError, fault_point, parse
from virnuc_hpc.core.fsio import atomic_write


def test_without_the_variable_nothing_happens(monkeypatch):
    monkeypatch.delenv(faults.ENV, raising=False)
    for _ in range(3):
        fault_point("write", "/any/file")
    monkeypatch.setenv(faults.ENV, "")
    fault_point("write", "/any/file")


def test_rules_parse_and_bad_rules_are_refused():
    assert parse("write:*/DONE=kill, embed.batch=eio@3+") == [
        ("write:*/DONE", "kill", 1, False), ("embed.batch", "eio", 3, True)]
    for bad in ("write=explode", "=kill", "write=kill@0", "write=kill@x"):
        with pytest.raises(FaultSpecError):
            parse(bad)


def test_the_nth_matching_call_fires_and_names_its_target(monkeypatch):
    monkeypatch.setenv(faults.ENV, "write:*/part-*=enospc@2")
    fault_point("write", "/run/tasks/00000/DONE")          # other target: not counted
    fault_point("write", "/run/tasks/00000/part-00000.json")
    with pytest.raises(OSError) as caught:
        fault_point("write", "/run/tasks/00000/part-00001.json")
    assert caught.value.errno == errno.ENOSPC
    assert caught.value.filename == "/run/tasks/00000/part-00001.json"
    fault_point("write", "/run/tasks/00000/part-00002.json")   # once only without `+`


def test_a_repeating_rule_fires_on_every_later_call(monkeypatch):
    monkeypatch.setenv(faults.ENV, "embed.batch=eio@2+")
    fault_point("embed.batch", "EsmEncoder")
    for _ in range(3):
        with pytest.raises(OSError):
            fault_point("embed.batch", "EsmEncoder")


def test_a_new_value_restarts_the_counts(monkeypatch):
    monkeypatch.setenv(faults.ENV, "reduce.merged=eio@2")
    fault_point("reduce.merged")
    monkeypatch.setenv(faults.ENV, "reduce.merged=eio@2 ")
    fault_point("reduce.merged")                             # first call under the new value
    with pytest.raises(OSError):
        fault_point("reduce.merged")


def test_an_injected_write_error_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "record.json"
    atomic_write(target, "old")
    for point in ("create", "write", "rename"):
        monkeypatch.setenv(faults.ENV, f"{point}:*/record.json=eio")
        with pytest.raises(OSError):
            atomic_write(target, "new")
        assert target.read_text() == "old" and sorted(tmp_path.iterdir()) == [target]

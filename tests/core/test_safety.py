"""Safety of run dirs and caches: no pickle of run outputs is loaded, nothing created is
world-writable, records cannot name paths outside the run dir, symlinks are not followed out."""

from __future__ import annotations

import ast
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO
from tests.helpers_run import plan, run_all
from virnuc_hpc.core.errors import IntegrityError
from virnuc_hpc.plan import load_manifest, load_plan
from virnuc_hpc.reduce.merge import reduce_run, verify_run
from virnuc_hpc.core.rundir import RunDir
from virnuc_hpc.views.status import shard_state
from virnuc_hpc.parts import read_done, resume_point, verify_task
from virnuc_hpc.task.run import run_task, task_options

EXAMPLE = REPO / "examples" / "reads.fa"
PACKAGE = REPO / "virnuc_hpc"


# -- no pickle of run outputs ---------------------------------------------------------------

def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            owner = getattr(getattr(func, "value", None), "id", "")
            yield node, owner, name


def _keyword(node: ast.Call, name: str):
    return next((k.value for k in node.keywords if k.arg == name), None)


def pickle_loads(source: str) -> list[str]:
    """Calls that could unpickle: pickle/joblib/dill loads, np.load with allow_pickle=True,
    torch.load without weights_only=True."""
    found = []
    for node, owner, name in _calls(ast.parse(source)):
        flag = _keyword(node, "weights_only")
        if (owner in ("pickle", "joblib", "dill", "cloudpickle") and name in ("load", "loads")) \
                or name in ("read_pickle", "Unpickler") \
                or (name == "load" and owner in ("np", "numpy") and
                    getattr(_keyword(node, "allow_pickle"), "value", False) is not False) \
                or (name == "load" and owner == "torch" and
                    getattr(flag, "value", None) is not True):
            found.append(f"line {node.lineno}: {owner}.{name}")
    return found


def test_the_scan_finds_pickle_loads():
    assert pickle_loads("import pickle\npickle.load(f)\n") == ["line 2: pickle.load"]
    assert pickle_loads("np.load(p)\nnp.load(p, allow_pickle=True)\n") == ["line 2: np.load"]
    assert pickle_loads("torch.load(p)\n") == ["line 1: torch.load"]
    assert pickle_loads("torch.load(p, weights_only=True)\nnp.load(p, allow_pickle=False)\n") \
        == []


def test_no_pickle_is_ever_loaded_by_the_package():
    found = {str(path.relative_to(REPO)): calls for path in sorted(PACKAGE.rglob("*.py"))
             if (calls := pickle_loads(path.read_text()))}
    assert found == {}


# -- nothing world-writable ------------------------------------------------------------------

def test_with_umask_000_nothing_the_package_creates_is_world_writable(tiny_cache, tmp_path):
    """plan, run-task, reduce, status and a fresh model cache, through the CLI."""
    script = ("import os, sys; os.umask(0); from virnuc_hpc.cli import main; "
              "sys.exit(main(sys.argv[1:]))")
    env = dict(os.environ, VIRNUC_HPC_CACHE=str(tmp_path / "cache"))
    run = tmp_path / "deep" / "run"
    for argv in (["models", "fetch", "--profile", "tiny"],
                 ["plan", EXAMPLE, "--run-dir", run, "--models", "tiny", "--shards", "2"],
                 ["run-task", run, "--index", "0"], ["run-task", run, "--index", "1"],
                 ["reduce", run], ["status", run]):
        done = subprocess.run([sys.executable, "-c", script, *map(str, argv)], env=env,
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    created = [p for root in (tmp_path / "deep", tmp_path / "cache")
               for p in (root, *root.rglob("*"))]
    assert len(created) > 30
    writable = [str(p) for p in created if p.lstat().st_mode & stat.S_IWOTH]
    assert writable == []


# -- records naming paths outside the run dir ------------------------------------------------

@pytest.fixture(scope="module")
def done_run(tiny_cache, tmp_path_factory):
    run = tmp_path_factory.mktemp("safety") / "run"
    plan(EXAMPLE, run, shards=2, part_rows=4)
    run_all(run)
    return run


@pytest.fixture
def run_copy(done_run, tmp_path):
    return Path(shutil.copytree(done_run, tmp_path / "run", symlinks=True))


def _edit_json(path: Path, edit) -> None:
    record = json.loads(path.read_text())
    edit(record)
    path.write_text(json.dumps(record))


def _one_line(exc: Exception) -> str:
    text = str(exc)
    assert "\n" not in text and "outside the run dir" in text
    return text


def test_a_manifest_naming_etc_passwd_is_refused(run_copy):
    manifest = RunDir(run_copy).manifest(1)
    _edit_json(manifest, lambda m: m["ids"].update(file="../../etc/passwd"))
    with pytest.raises(IntegrityError) as caught:
        load_manifest(run_copy, 1)
    assert "../../etc/passwd" in _one_line(caught.value) and "re-plan" in str(caught.value)
    assert "outside the run dir" in " ".join(verify_run(run_copy)[0].problems)


def test_a_plan_naming_a_manifest_outside_is_refused(run_copy):
    _edit_json(RunDir(run_copy).plan, lambda p: p["shards"][0].update(manifest="/etc/passwd"))
    with pytest.raises(IntegrityError) as caught:
        load_plan(run_copy)
    assert "/etc/passwd" in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("where", ["DONE", "sidecar"])
def test_done_or_sidecar_naming_a_path_outside_is_refused(run_copy, where):
    task = RunDir(run_copy).task(1)
    path = task.done if where == "DONE" else task.sidecar(0)
    _edit_json(path, lambda r: r.update(path="/etc/passwd"))
    if where == "DONE":
        with pytest.raises(IntegrityError) as caught:
            read_done(task.root)
        assert "/etc/passwd" in _one_line(caught.value) and "resubmit" in str(caught.value)
        assert shard_state(run_copy, 1)["state"] == "corrupt"
    problems = verify_task(task.root, load_manifest(run_copy, 1).expectation())
    assert any("outside the run dir" in p for p in problems)
    result = reduce_run(run_copy)
    assert not result.ok and result.bad_indices == [1]


# -- symlinks out of the run dir -------------------------------------------------------------

def test_a_task_dir_that_is_a_symlink_out_is_refused_not_written_through(done_run, tmp_path):
    run = tmp_path / "run"
    plan(EXAMPLE, run, shards=2, part_rows=4)
    outside = tmp_path / "outside"
    outside.mkdir()
    (run / "tasks").mkdir()
    (run / "tasks" / "00000").symlink_to(outside)
    with pytest.raises(IntegrityError) as caught:
        run_task(run, 0, task_options(run, "cpu"))
    assert _one_line(caught.value) and list(outside.iterdir()) == []
    assert any("outside the run dir" in p for p in verify_run(run)[0].problems)


def test_a_part_that_is_a_symlink_out_is_not_read_and_is_replaced_not_written_through(
        run_copy, tmp_path):
    task = RunDir(run_copy).task(0)
    outside = tmp_path / "outside.safetensors"
    shutil.copyfile(task.part(1), outside)
    before = outside.read_bytes()
    task.part(1).unlink()
    task.part(1).symlink_to(outside)
    problems = verify_task(task.root, load_manifest(run_copy, 0).expectation())
    assert any("symlink out of the task dir" in p for p in problems)
    assert resume_point(task.root).parts == 1          # parts after the link are redone
    assert not reduce_run(run_copy).ok
    task.done.unlink()
    run_task(run_copy, 0, task_options(run_copy, "cpu"))
    assert not task.part(1).is_symlink() and outside.read_bytes() == before
    assert reduce_run(run_copy).ok


def test_a_results_dir_that_is_a_symlink_out_is_refused(run_copy, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    RunDir(run_copy).results.symlink_to(outside)
    with pytest.raises(IntegrityError) as caught:
        reduce_run(run_copy)
    assert _one_line(caught.value) and list(outside.iterdir()) == []

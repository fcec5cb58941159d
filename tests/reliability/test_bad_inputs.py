"""The bad-input corpus (tests/reliability/bad_inputs.py) through `translate`, `plan` and
`predict --models tiny`: exit 2 with one line naming the file, the problem and the fix, or
every sequence accounted for.

The commands run through the CLI's `main()` in this process: the same parser, dispatch, error
printing and exit code (an exception other than the one-line error fails the test), and
predict's tasks are still subprocesses. A fresh interpreter per call would cost seconds while
the CLI imports torch at start-up, times three commands and 44 kinds. The real CLI in a
subprocess runs for the process substitution (through bash: all three commands refuse it)
and for the two huge kinds (`translate` and `plan`, peak RSS read from wait4; `predict` on a
scaled-down input).
"""

from __future__ import annotations

import csv
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO
from tests.reliability.bad_inputs import CORPUS, DOC, KINDS, Kind, render
from virnuc_hpc.cli import main
from virnuc_hpc.plan import iter_shard_records, load_plan
from virnuc_hpc.core.rundir import RunDir

SMALL = [kind.name for kind in CORPUS if kind.huge is None]
PROCESSED = [name for name in SMALL if KINDS[name].processed]
HUGE = [kind.name for kind in CORPUS if kind.huge is not None]
GiB = 1 << 30
HUGE_TIMEOUT_S = 600  # a guard against a hang, not a speed target (bench figures: the doc)


def test_the_corpus_has_at_least_25_kinds_each_refused_or_accounted():
    assert len(CORPUS) >= 25 and len(KINDS) == len(CORPUS)
    for kind in CORPUS:
        assert (kind.error is not None) == (kind.fix is not None), kind.name
        assert kind.processed == (kind.rows is not None or kind.huge is not None), kind.name


def test_the_doc_table_is_the_corpus(tmp_path):
    doc = DOC.read_text()
    assert render(doc, tmp_path) == doc, \
        "docs/reliability.md is out of date: run `python -m tests.reliability.bad_inputs`"


# --- running the commands --------------------------------------------------------------

def _argument(kind: Kind, folder: Path) -> str:
    made = kind.make(folder)
    return made if kind.shell else str(made)


def _via_bash(argument: str, *args) -> tuple[int, str, str]:
    line = " ".join([shlex.quote(sys.executable), "-m", "virnuc_hpc", args[0], argument,
                     *map(shlex.quote, map(str, args[1:]))])
    done = subprocess.run(["bash", "-c", line], capture_output=True, text=True, cwd=REPO)
    return done.returncode, done.stdout, done.stderr


def _in_process(capsys, command: str, argument: str, *args) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([command, argument, *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def _run(kind: Kind, capsys, command: str, argument: str, *args) -> tuple[int, str, str]:
    if kind.shell:
        return _via_bash(argument, command, *args)
    return _in_process(capsys, command, argument, *args)


def _translate(kind, capsys, argument, out: Path):
    return _run(kind, capsys, "translate", argument, "--nucleotide-out", out / "n.fa",
                "--protein-out", out / "p.faa", "--chunks-out", out / "c.fa",
                "--accounting-out", out / "a.tsv")


def _assert_refused(kind: Kind, command: str, argument: str, result) -> None:
    code, _, err = result
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    problem, fix = lines[0].split("; fix: ", 1)
    assert problem.startswith(f"virnuc-hpc {command}: error: "), lines[0]
    assert (argument if not kind.shell else "/dev/fd/") in problem, lines[0]
    assert kind.error in problem and kind.fix in fix, lines[0]


# --- every small kind through each command ---------------------------------------------

@pytest.mark.parametrize("name", SMALL)
def test_translate(name, tmp_path, capsys):
    kind, out = KINDS[name], tmp_path / "out"
    out.mkdir()
    argument = _argument(kind, tmp_path)
    result = _translate(kind, capsys, argument, out)
    if not kind.processed:
        _assert_refused(kind, "translate", argument, result)
        assert not list(out.iterdir())  # nothing half-written is published
        return
    assert result[0] == 0, result[2]
    assert _accounting(out / "a.tsv") == list(kind.rows)
    if kind.same_as is not None:
        clean = clean_outputs(kind.same_as, tmp_path / "clean", capsys)
        for name in ("n.fa", "p.faa"):
            assert (out / name).read_bytes() == clean[name], name
        assert (out / "c.fa").read_bytes() == kind.chunks_as(clean["c.fa"])


CLEAN_OUTPUTS: dict = {}


def clean_outputs(make, folder: Path, capsys) -> dict[str, bytes]:
    """translate's outputs for a clean input, made once per session."""
    if make not in CLEAN_OUTPUTS:
        folder.mkdir()
        code, _, err = _in_process(capsys, "translate", str(make(folder)), "--nucleotide-out",
                                   folder / "n.fa", "--protein-out", folder / "p.faa",
                                   "--chunks-out", folder / "c.fa")
        assert code == 0, err
        CLEAN_OUTPUTS[make] = {name: (folder / name).read_bytes()
                               for name in ("n.fa", "p.faa", "c.fa")}
    return CLEAN_OUTPUTS[make]


@pytest.mark.parametrize("name", SMALL)
def test_plan(name, tmp_path, capsys, tiny_cache):
    kind, run = KINDS[name], tmp_path / "run"
    argument = _argument(kind, tmp_path)
    result = _run(kind, capsys, "plan", argument, "--run-dir", run, "--models", "tiny",
                  "--shards", 2)
    if not kind.processed:
        _assert_refused(kind, "plan", argument, result)
        assert not (run / "plan.json").exists() and not (run / "shards").exists()
        return
    assert result[0] == 0, result[2]
    assert _replanned_ids(run) == [rid for rid, _ in kind.rows]


@pytest.mark.parametrize("name", SMALL)
def test_predict(name, tmp_path, capsys, tiny_cache):
    kind, out = KINDS[name], tmp_path / "out"
    argument = _argument(kind, tmp_path)
    result = _run(kind, capsys, "predict", argument, "-o", out, "--models", "tiny",
                  "--no-report")   # the report has its own tests
    if not kind.processed:
        _assert_refused(kind, "predict", argument, result)
        assert not (out / "plan.json").exists()
        return
    assert result[0] == 0, result[2]
    _assert_predicted(out, list(kind.rows))


def _accounting(path: Path) -> list[tuple[str, str]]:
    with open(path, encoding="utf-8") as handle:
        return [(row["id"], row["skip_reason"]) for row in csv.DictReader(handle, delimiter="\t")]


def _replanned_ids(run: Path) -> list[str]:
    """Every shard's records as its task re-reads them (IDs, lengths and digests checked),
    merged back into input order."""
    records = [r for s in load_plan(run).shards for r in iter_shard_records(run, s.index)]
    assert sorted(r.ordinal for r in records) == list(range(len(records)))
    return [r.id for r in sorted(records, key=lambda r: r.ordinal)]


def _assert_predicted(out: Path, rows: list[tuple[str, str]] | None,
                      ids: list[str] | None = None) -> None:
    with open(RunDir(out).predictions, encoding="utf-8") as handle:
        got = [(r["sequence_id"], r["skip_reason"], int(r["kept_frames"]))
               for r in csv.DictReader(handle, delimiter="\t")]
    if rows is not None:
        assert [(rid, reason) for rid, reason, _ in got] == rows
    if ids is not None:
        assert [rid for rid, _, _ in got] == ids
    assert all((frames > 0) != bool(reason) for _, reason, frames in got)
    summary = json.loads(RunDir(out).summary.read_text())
    assert summary["input_sequences"] == len(got) == summary["predicted"] + summary["skipped"]


# --- the two huge kinds ----------------------------------------------------------------

def _bounded(*args) -> tuple[subprocess.CompletedProcess, int]:
    """Run the CLI in a subprocess; its result and peak RSS in bytes (from wait4)."""
    with open(os.devnull, "wb") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "virnuc_hpc", *map(str, args)],
                                stdout=sink, stderr=subprocess.PIPE, cwd=REPO)
    try:
        err = proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        proc.stderr.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return subprocess.CompletedProcess(args, proc.returncode, "", err.decode()), \
        usage.ru_maxrss * 1024


def _huge(kind: Kind, folder: Path, size: int) -> Path:
    folder.mkdir(exist_ok=True)
    return kind.huge(folder, size)


@pytest.mark.parametrize("name", HUGE)
def test_huge_translate_and_plan_in_bounded_memory(name, tmp_path, tiny_cache):
    kind = KINDS[name]
    full, translated, _ = kind.sizes
    whole = _huge(kind, tmp_path / "plan", full)
    acc = tmp_path / "acc.tsv"
    source = whole if translated == full else _huge(kind, tmp_path / "translate", translated)
    done, peak = _bounded("translate", source,
                          "--nucleotide-out", tmp_path / "n.fa", "--protein-out",
                          tmp_path / "p.faa", "--accounting-out", acc)
    assert done.returncode == 0 and peak < GiB, (done.stderr, peak)
    assert [rid for rid, _ in _accounting(acc)] == kind.ids(translated)
    done, peak = _bounded("plan", whole, "--run-dir", tmp_path / "run", "--models", "tiny")
    assert done.returncode == 0 and peak < GiB, (done.stderr, peak)
    assert load_plan(tmp_path / "run").sequences == len(kind.ids(full))


@pytest.mark.parametrize("name", HUGE)
def test_huge_predict_scaled_down(name, tmp_path, capsys, tiny_cache):
    kind = KINDS[name]
    small = kind.sizes[2]
    source = _huge(kind, tmp_path / "in", small)
    result = _in_process(capsys, "predict", str(source), "-o", tmp_path / "out", "--models",
                         "tiny")
    assert result[0] == 0, result[2]
    _assert_predicted(tmp_path / "out", None, kind.ids(small))

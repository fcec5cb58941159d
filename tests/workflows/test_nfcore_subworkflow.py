"""The nf-core style subworkflow subworkflows/local/virnuchpc (VIRNUCHPC: PLAN, then one
RUN_TASK per shard, then REDUCE), checked without Nextflow (not installed here: neither
Nextflow nor nf-test runs it in these tests).

What is checked: meta.yml matches the subworkflow meta schema (subworkflows/meta-schema.json,
written from nf-core's); main.nf includes the three modules from their paths, calls them in
order, feeds RUN_TASK PLAN's shards one item per shard and REDUCE PLAN's run with the grouped
RUN_TASK folders, and its take:/emit: match meta.yml; the nf-test file asserts only on emitted
channels. Then the modules' shell, rendered from their `script:` GStrings, runs as the
subworkflow would run it: PLAN on the bundled example sheet (3 shards, tiny models), each
RUN_TASK in a fresh work dir holding only a copy of its shard's folder, REDUCE with the run dir
and every task folder linked in; each sample's results equal `virnuc-hpc predict`'s byte for
byte. The `stub:` blocks run the same chain and create every declared output.
"""

from __future__ import annotations

import copy
import re
import shutil
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.helpers import REPO
from tests.workflows.conftest import SHEET, example_samples
from tests.workflows.nfcore import (SUBWORKFLOW, SUBWORKFLOW_SCHEMA, Module, nf_blocks,
                                    schema_errors, section)
from virnuc_hpc.core.rundir import RunDir

MAIN_NF = (SUBWORKFLOW / "main.nf").read_text()
META = yaml.safe_load((SUBWORKFLOW / "meta.yml").read_text())
NF_TEST = (SUBWORKFLOW / "tests" / "main.nf.test").read_text()
PLAN, RUN_TASK, REDUCE = Module("plan"), Module("runtask"), Module("reduce")
PREFIX = "study"
SHARDS = 3


# --- the subworkflow's files ----------------------------------------------------------------

def test_meta_yml_matches_the_subworkflow_meta_schema():
    jsonschema.Draft7Validator.check_schema(SUBWORKFLOW_SCHEMA)
    assert schema_errors(SUBWORKFLOW_SCHEMA, META) == []
    assert META["name"] == SUBWORKFLOW.name
    assert META["components"] == [f"virnuchpc/{m.name}" for m in (PLAN, RUN_TASK, REDUCE)]


@pytest.mark.parametrize("key, value", [
    ("components", None), ("components", []), ("maintainers", None), ("name", "VIRNUCHPC"),
    ("input", [{"ch_samplesheet": {"description": "no structure"}}]),
    ("output", {"results": {"description": "a map, not a list", "structure": []}}),
])
def test_the_schema_refuses_what_nf_core_refuses(key, value):
    meta = copy.deepcopy(META)
    if value is None:
        del meta[key]
    else:
        meta[key] = value
    assert schema_errors(SUBWORKFLOW_SCHEMA, meta)


def main_body() -> str:
    return section(MAIN_NF, "main", "emit")


def includes() -> dict[str, Path]:
    return {name: (SUBWORKFLOW / path).resolve() for name, path in
            re.findall(r"include \{ (\w+)\s*\} from '([^']+)'", MAIN_NF)}


def calls() -> list[tuple[str, list[str]]]:
    """The modules main: calls, in order, each with its argument expressions."""
    return [(name, [a.strip() for a in args.split(",")]) for name, args in
            re.findall(r"^    (VIRNUCHPC_\w+) \(\s*(.*?)\s*\)$", main_body(), re.M)]


def definition(channel: str) -> str:
    """The expression a `ch_x = ...` statement of main: assigns (up to the next blank line)."""
    return re.search(rf"^    {channel} = (.*?)(?:\n\n|\Z)", main_body(), re.M | re.S).group(1)


def lineage(expression: str) -> str:
    """The expression with every channel it reads replaced by its definition, recursively."""
    return re.sub(r"\b(ch_\w+)(?:\.\w+)?\b",
                  lambda m: (f"({lineage(definition(m[1]))})"
                             if re.search(rf"^    {m[1]} = ", main_body(), re.M) else m[0]),
                  expression)


def test_the_subworkflow_includes_the_three_modules_from_their_paths():
    assert includes() == {m.process: (m.dir / "main").resolve()        # main.nf, as nf-core
                          for m in (PLAN, RUN_TASK, REDUCE)}
    assert all(path.with_suffix(".nf").is_file() for path in includes().values())


def test_the_subworkflow_calls_plan_then_run_task_then_reduce():
    assert [name for name, _ in calls()] == [PLAN.process, RUN_TASK.process, REDUCE.process]
    take = section(MAIN_NF, "take", "main").split("//")[0].strip()
    assert calls()[0][1] == [take]


def test_run_task_gets_plans_shards_one_item_per_shard():
    (arg,) = dict(calls())[RUN_TASK.process]
    source = lineage(arg)
    assert source.lstrip("(").startswith(f"{PLAN.process}.out.shards")
    assert ".flatMap" in source or ".transpose()" in source
    assert f"{PLAN.process}.out.table" in source           # runtime_min, mem_mb into meta


def test_reduce_gets_plans_run_and_the_grouped_task_folders():
    run, tasks = dict(calls())[REDUCE.process]
    assert run.endswith(".run") and tasks.endswith(".tasks")
    source = lineage(run)
    assert f"{PLAN.process}.out.run" in source and f"{RUN_TASK.process}.out.task" in source
    assert ".groupTuple()" in source or ".collect()" in source
    assert re.search(r"\.multiMap \{ meta, run, tasks ->\s*run:\s*\[ meta, run \]\s*"
                     r"tasks:\s*tasks\s*\}", source)


def test_every_out_reference_is_an_emit_of_that_module():
    by_process = {m.process: m for m in (PLAN, RUN_TASK, REDUCE)}
    references = re.findall(r"\b(VIRNUCHPC_\w+)\.out\.(\w+)", MAIN_NF)
    assert len(references) >= 5
    for process, emit in references:
        assert emit in by_process[process].meta["output"], (process, emit)


def test_take_and_emit_match_meta_yml():
    take = re.findall(r"^    (\w+)", section(MAIN_NF, "take", "main"), re.M)
    assert take == [next(iter(channel)) for channel in META["input"]]
    emits = re.findall(r"^    (\w+)\s*=", MAIN_NF.split("\n    emit:\n")[1], re.M)
    assert emits == [next(iter(channel)) for channel in META["output"]]
    assert "versions" not in emits                       # versions: the topic channel


def test_the_nf_test_file_asserts_on_emitted_channels_and_bundled_files():
    assert nf_blocks(NF_TEST) and nf_blocks(MAIN_NF)
    assert 'workflow "VIRNUCHPC"' in NF_TEST and 'script "../main.nf"' in NF_TEST
    used = set(re.findall(r"workflow\.out\.(\w+)", NF_TEST))
    assert used and used <= {next(iter(channel)) for channel in META["output"]}
    bundled = re.findall(r'file\("\$\{baseDir\}/([^"]+)"', NF_TEST)
    assert bundled and all((REPO / path).is_file() for path in bundled)
    assert 'options "-stub"' in NF_TEST
    config = (SUBWORKFLOW / "tests" / "nextflow.config").read_text()
    assert f"--shards {SHARDS}" in config and "meta.runtime_min" in config


# --- the modules' shell, chained as the subworkflow chains them ---------------------------

def stage_sheet(workdir: Path) -> Path:
    workdir.mkdir(parents=True)
    for source in (SHEET, *(SHEET.parent / f"{s}.fa" for s in example_samples())):
        (workdir / source.name).symlink_to(source)
    return workdir


def chain(root: Path, label: str) -> dict:
    """PLAN, then each RUN_TASK in a fresh work dir holding a copy of its shard's folder only,
    then REDUCE with PLAN's run dir (as `plan`) and every task folder linked in."""
    values = {"samplesheet": SHEET.name, "prefix": PREFIX,
              "args": PLAN.ext_args() if label == "script" else ""}
    plan = PLAN.run(label, stage_sheet(root / "plan"), values)
    planned = PLAN.assert_declared(plan, values)
    tasks = []
    for shard in planned["shards"]:
        work = root / f"runtask-{shard.name}"
        work.mkdir()
        shutil.copytree(shard, work / shard.name, symlinks=True)
        task_values = {"shard": shard.name, "shard.name": shard.name, "args": "",
                       "index": str(int(shard.name)), "device": "auto"}
        RUN_TASK.run(label, work, task_values)
        (task,) = RUN_TASK.assert_declared(work, task_values)["task"]
        tasks.append(task)
    work = root / "reduce"
    work.mkdir()
    (work / "plan").symlink_to(planned["run"][0])
    for task in tasks:
        (work / task.name).symlink_to(task)
    reduce_values = {"run": "plan", "tasks": " ".join(t.name for t in tasks), "prefix": PREFIX,
                     "args": REDUCE.ext_args() if label == "script" else ""}
    REDUCE.run(label, work, reduce_values)
    return {"plan": planned, "tasks": tasks,
            "reduce": REDUCE.assert_declared(work, reduce_values), "reduce_dir": work}


@pytest.fixture(scope="module")
def scripted(tiny_cache, tmp_path_factory) -> dict:
    return chain(tmp_path_factory.mktemp("subworkflow"), "script")


def test_plan_writes_one_folder_per_shard_and_the_table(scripted):
    planned = scripted["plan"]
    assert [p.name for p in planned["shards"]] == [f"{i:05d}" for i in range(SHARDS)]
    rows = planned["table"][0].read_text().splitlines()
    assert rows[0].split("\t") == ["shard", "inputs", "sequences", "chunks", "minutes_est",
                                   "runtime_min", "mem_mb", "gpus"]
    assert [row.split("\t")[1] for row in rows[1:]] == [p.name for p in planned["shards"]]


def test_each_task_is_named_by_its_shard_and_done(scripted):
    assert [t.name for t in scripted["tasks"]] == [f"task-{i:05d}" for i in range(SHARDS)]
    assert all((t / "DONE").is_file() and (t / "accounting.tsv").is_file()
               for t in scripted["tasks"])


def test_reduce_equals_predict_and_leaves_the_plan_untouched(scripted, predicted_example):
    found = scripted["reduce"]
    assert [p.name for p in found["results"]] == sorted(example_samples())
    assert found["report"] == []                                       # --no-report
    assert {p.name for p in found["multiqc"]} >= {"virnuc_hpc_general_stats_mqc.json"}
    ours, theirs = RunDir(scripted["reduce_dir"] / PREFIX), RunDir(predicted_example)
    for sample in example_samples():
        for mine, reference in zip(ours.outputs(sample), theirs.outputs(sample), strict=True):
            assert mine.read_bytes() == reference.read_bytes(), f"{sample}/{mine.name}"
    assert not (scripted["plan"]["run"][0] / "results").exists()


def test_the_stubs_chain_and_write_every_declared_output(tmp_path):
    stubbed = chain(tmp_path, "stub")
    assert [p.name for p in stubbed["plan"]["shards"]] == ["00000"]
    assert [t.name for t in stubbed["tasks"]] == ["task-00000"]
    assert [p.name for p in stubbed["reduce"]["results"]] == sorted(example_samples())

"""The nf-core style modules modules/local/virnuchpc/* (predict, plan, runtask, reduce),
checked without Nextflow (it is not installed here, so neither Nextflow nor nf-test ever runs
a module in these tests).

What is checked, for every module: its files parse; meta.yml matches the module meta schema
(modules/meta-schema.json, written from nf-core's); main.nf takes the inputs and emits the
outputs meta.yml declares, under the name its path gives, and sends its versions to the
`versions` topic (one `versions_<tool>` tuple per tool, repeated under meta.yml's topics) with
an eval that prints this environment's version; environment.yml installs this version; the
nf-test file asserts only on emitted channels and bundled files. For predict, the shell that
main.nf's `script:` and `stub:` blocks hold, rendered from their GStrings with the values a
task would have, writes what the output globs declare (the script's results equal `virnuc-hpc
predict` on the same sheet). The plan, runtask and reduce scripts run in
test_nfcore_subworkflow.py.
"""

from __future__ import annotations

import copy
import re
import tomllib
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.helpers import REPO
from tests.workflows.conftest import SHEET, example_samples
from tests.workflows.nfcore import (MODULE_SCHEMA, PROCESS_VALUE, Module, bash, element_names,
                                    module_names, nf_blocks, schema_errors)
from virnuc_hpc.core.rundir import RunDir
from virnuc_hpc.core.versions import tool_versions

MODULES = [Module(name) for name in module_names()]
PREDICT = Module("predict")
PREFIX = "study"


def test_every_module_is_checked():
    assert [m.name for m in MODULES] == ["plan", "predict", "reduce", "runtask"]


@pytest.mark.parametrize("module", MODULES, ids=str)
def test_meta_yml_matches_the_module_meta_schema(module):
    jsonschema.Draft7Validator.check_schema(MODULE_SCHEMA)
    assert schema_errors(MODULE_SCHEMA, module.meta) == []


def broken(path: tuple, value) -> dict:
    """PREDICT's meta with the item at `path` replaced by `value` (removed when None)."""
    meta = copy.deepcopy(PREDICT.meta)
    *parents, last = path
    holder = meta
    for key in parents:
        holder = holder[key]
    if value is None:
        del holder[last]
    else:
        holder[last] = value
    return meta


VERSIONS = PREDICT.meta["output"]["versions_virnuchpc"]


@pytest.mark.parametrize("path, value", [
    (("maintainers",), None), (("output",), None), (("keywords",), ["virus", "example", "x"]),
    (("keywords",), ["virus", "qc"]), (("tools", 0, "virnuc-hpc", "doi"), None),
    (("tools", 0, "virnuc-hpc", "licence"), []), (("input", 0, 1, "samplesheet", "type"), "csv"),
    (("output", "versions_virnuchpc", 0, 1, "virnuc-hpc", "description"), None),
    (("output",), [{"versions": VERSIONS}]), (("name",), "VirNuc-Predict"),
    (("topics",), None), (("topics", "versions"), []),
    (("output", "versions"), [{"versions.yml": {"type": "file", "description": "versions"}}]),
    (("topics", "versions", 0, 2), {"virnuc-hpc --version": {"type": "string",
                                                             "description": "not an eval"}}),
], ids=lambda v: "/".join(map(str, v)) if isinstance(v, tuple) else None)
def test_the_schema_refuses_what_nf_core_refuses(path, value):
    assert schema_errors(MODULE_SCHEMA, broken(path, value))


@pytest.mark.parametrize("module", MODULES, ids=str)
def test_name_process_and_tags_follow_the_module_path(module):
    tool, subtool = module.dir.relative_to(REPO / "modules" / "local").parts
    assert module.meta["name"] == f"{tool}_{subtool}"
    assert module.process == module.meta["name"].upper()
    assert f'process "{module.process}"' in module.nf_test
    assert 'script "../main.nf"' in module.nf_test and f'tag "{tool}/{subtool}"' in module.nf_test


@pytest.mark.parametrize("module", MODULES, ids=str)
def test_main_nf_takes_the_inputs_and_emits_the_outputs_meta_yml_declares(module):
    assert module.inputs() == [element_names([channel]) for channel in module.meta["input"]]
    assert list(module.outputs()) == list(module.meta["output"])
    for emit, elements in module.outputs().items():
        assert elements == element_names(module.meta["output"][emit]), emit


@pytest.mark.parametrize("module", MODULES, ids=str)
def test_versions_go_to_the_versions_topic_and_the_evals_print_this_version(module, tmp_path):
    versions = module.versions()
    assert "versions_virnuchpc" in versions and "versions.yml" not in module.main_nf
    assert all(emit == "versions_" + tool.replace("-", "") for emit, (tool, _) in versions.items())
    assert module.topics() == {emit: "versions" for emit in versions}
    assert module.meta["topics"]["versions"] == [module.meta["output"][e][0] for e in versions]
    expected = tool_versions()
    for tool, command in versions.values():
        printed = bash(command, tmp_path).stdout
        assert printed.strip() == expected[tool] and printed.count("\n") == 1, (tool, printed)


@pytest.mark.parametrize("module", MODULES, ids=str)
def test_environment_yml_installs_this_version_of_virnuc_hpc(module):
    env = yaml.safe_load((module.dir / "environment.yml").read_text())
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert set(env) == {"channels", "dependencies"} and "name" not in env
    assert set(env["channels"]) == {"conda-forge", "bioconda"}
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pip == [f"virnuc-hpc=={project['version']}"]
    python = next(d for d in env["dependencies"] if str(d).startswith("conda-forge::python="))
    minimum = tuple(map(int, project["requires-python"].removeprefix(">=").split(".")))
    assert tuple(map(int, python.split("=")[-1].split("."))) >= minimum
    assert f"'virnuc:{project['version']}'" in module.main_nf


@pytest.mark.parametrize("module", MODULES, ids=str)
def test_the_nf_test_file_asserts_on_emitted_channels_and_bundled_files(module):
    assert nf_blocks(module.nf_test) and nf_blocks(module.main_nf)
    used = set(re.findall(r"process\.out\.(\w+)", module.nf_test))
    assert used and used <= set(module.meta["output"])
    by_process = {m.process: m for m in MODULES}
    for process, emit in re.findall(r"\b(VIRNUCHPC_\w+)\.out\.(\w+)", module.nf_test):
        assert emit in by_process[process].meta["output"], (process, emit)
    for script in re.findall(r'script "\.\./\.\./(\w+)/main\.nf"', module.nf_test):
        assert f'run("{Module(script).process}")' in module.nf_test
    bundled = re.findall(r'file\("\$\{baseDir\}/([^"]+)"', module.nf_test)
    assert bundled and all((REPO / path).is_file() for path in bundled)
    assert 'options "-stub"' in module.nf_test
    assert (REPO / "nf-test.config").is_file()


@pytest.mark.parametrize("module", MODULES, ids=str)
def test_gpu_work_is_labelled_as_nf_core_labels_it(module):
    labels = re.findall(r"^\s*label '(\w+)'", module.main_nf, re.M)
    assert labels[0] in {"process_single", "process_low", "process_medium", "process_high"}
    assert ("process_gpu" in labels) == (module.name == "runtask")


def stage(workdir: Path) -> Path:
    """The task's work dir as Nextflow stages it: the sheet and its files linked in."""
    workdir.mkdir()
    for source in (SHEET, *(SHEET.parent / f"{s}.fa" for s in example_samples())):
        (workdir / source.name).symlink_to(source)
    return workdir


def predict_values(args: str) -> dict[str, str]:
    return {"samplesheet": SHEET.name, "prefix": PREFIX, "args": args, "parallel": "1"}


def test_the_script_writes_what_the_outputs_declare_and_equals_predict(predicted_example,
                                                                      tmp_path):
    args = PREDICT.ext_args()
    assert "--models tiny" in args
    workdir = PREDICT.run("script", stage(tmp_path / "work"), predict_values(args))
    found = PREDICT.assert_declared(workdir, predict_values(args))
    assert found["report"] == []                                       # --no-report
    assert [p.name for p in found["results"]] == sorted(example_samples())
    ours, theirs = RunDir(workdir / PREFIX), RunDir(predicted_example)
    for sample in example_samples():
        for mine, reference in zip(ours.outputs(sample), theirs.outputs(sample), strict=True):
            assert mine.read_bytes() == reference.read_bytes(), f"{sample}/{mine.name}"
    assert yaml.safe_load(ours.versions.read_text())["virnuc_hpc"] == tool_versions()


def test_the_stub_writes_what_the_outputs_declare(tmp_path):
    workdir = PREDICT.run("stub", stage(tmp_path / "work"), predict_values(""))
    found = PREDICT.assert_declared(workdir, predict_values(""))
    assert [p.name for p in found["results"]] == sorted(example_samples())
    assert PROCESS_VALUE not in str(found)

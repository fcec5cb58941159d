"""The nf-core style module modules/local/virnuchpc/predict, checked without Nextflow (it is
not installed here, so neither Nextflow nor nf-test ever runs the module in these tests).

What is checked: its files parse; meta.yml matches the module meta schema
(modules/meta-schema.json, written from nf-core's); main.nf takes the inputs and emits the
outputs meta.yml declares, under the name its path gives; environment.yml installs this
version; the nf-test file asserts only on emitted channels and bundled files; and the shell
that main.nf's `script:` and `stub:` blocks hold, rendered from their GStrings with the values a
task would have, writes what the output globs declare (the script's results equal `virnuc-hpc
predict` on the same sheet).
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import textwrap
import tomllib
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.helpers import REPO
from tests.workflows.conftest import SHEET, example_samples, tools_env
from virnuc_hpc.core.rundir import RunDir
from virnuc_hpc.core.versions import tool_versions

MODULE = REPO / "modules" / "local" / "virnuchpc" / "predict"
MAIN_NF = (MODULE / "main.nf").read_text()
META = yaml.safe_load((MODULE / "meta.yml").read_text())
SCHEMA = json.loads((REPO / "modules" / "meta-schema.json").read_text())
NF_TEST = (MODULE / "tests" / "main.nf.test").read_text()
PREFIX = "study"


def schema_errors(meta: dict) -> list[str]:
    return [e.message for e in jsonschema.Draft7Validator(SCHEMA).iter_errors(meta)]


def section(text: str, label: str, end: str) -> str:
    """The lines of main.nf from `label:` to `end:`."""
    return text.split(f"\n    {label}:\n", 1)[1].split(f"\n    {end}:\n", 1)[0]


def outputs() -> dict[str, list[str]]:
    """emit name -> the elements of its output line (`meta`, then path globs)."""
    found = {}
    for line in section(MAIN_NF, "output", "when").splitlines():
        if (emit := re.search(r"emit:\s*(\w+)", line)) is not None:
            paths = re.findall(r'path\(?\s*"([^"]+)"', line)
            found[emit.group(1)] = (["meta"] if "val(meta)" in line else []) + paths
    return found


def element_names(channel: list) -> list[str]:
    """meta.yml's names of a channel's elements (a tuple is a list of elements)."""
    items = channel[0] if isinstance(channel[0], list) else channel
    return [name for element in items for name in element]


def render(block: str, values: dict[str, str]) -> str:
    """The shell of a `script:`/`stub:` block's GString: `${name}` replaced by `values`, `\\$`
    and `\\\\` unescaped, the common indent stripped (as Nextflow does)."""
    body = re.search(r'"""\n(.*?)"""', block, re.S).group(1)
    body = re.sub(r"(?<!\\)\$\{([\w.]+)\}", lambda m: values[m.group(1)], body)
    return textwrap.dedent(body.replace("\\$", "$").replace("\\\\", "\\"))


def stage(workdir: Path) -> Path:
    """The task's work dir as Nextflow stages it: the sheet and its files linked in."""
    workdir.mkdir()
    for source in (SHEET, *(SHEET.parent / f"{s}.fa" for s in example_samples())):
        (workdir / source.name).symlink_to(source)
    return workdir


def run_block(label: str, end: str | None, workdir: Path, args: str) -> Path:
    text = MAIN_NF.split(f"\n    {label}:\n", 1)[1]
    block = text if end is None else text.split(f"\n    {end}:\n", 1)[0]
    shell = render(block, {"samplesheet": SHEET.name, "prefix": PREFIX, "args": args,
                           "parallel": "1", "task.process": "VIRNUCHPC_PREDICT"})
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", shell], cwd=stage(workdir),
                          capture_output=True, text=True, env=tools_env())
    assert done.returncode == 0, shell + done.stdout + done.stderr
    return workdir


def test_meta_yml_matches_the_module_meta_schema():
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    assert schema_errors(META) == []


def broken(path: tuple, value) -> dict:
    """META with the item at `path` replaced by `value` (or removed when value is None)."""
    meta = copy.deepcopy(META)
    *parents, last = path
    holder = meta
    for key in parents:
        holder = holder[key]
    if value is None:
        del holder[last]
    else:
        holder[last] = value
    return meta


@pytest.mark.parametrize("path, value", [
    (("maintainers",), None), (("output",), None), (("keywords",), ["virus", "example", "x"]),
    (("keywords",), ["virus", "qc"]), (("tools", 0, "virnuc-hpc", "doi"), None),
    (("tools", 0, "virnuc-hpc", "licence"), []), (("input", 0, 1, "samplesheet", "type"), "csv"),
    (("output", "versions", 0, "versions.yml", "description"), None),
    (("output",), [{"versions": META["output"]["versions"]}]), (("name",), "VirNuc-Predict"),
], ids=lambda v: "/".join(map(str, v)) if isinstance(v, tuple) else None)
def test_the_schema_refuses_what_nf_core_refuses(path, value):
    assert schema_errors(broken(path, value))


def test_name_process_and_tags_follow_the_module_path():
    tool, subtool = MODULE.relative_to(REPO / "modules" / "local").parts
    assert META["name"] == f"{tool}_{subtool}"
    assert re.search(r"^process (\w+) \{", MAIN_NF, re.M).group(1) == META["name"].upper()
    assert f'process "{META["name"].upper()}"' in NF_TEST and 'script "../main.nf"' in NF_TEST
    assert f'tag "{tool}/{subtool}"' in NF_TEST


def test_main_nf_takes_the_inputs_and_emits_the_outputs_meta_yml_declares():
    taken = re.findall(r"(?:val|path)\((\w+)\)", section(MAIN_NF, "input", "output"))
    assert taken == [name for channel in META["input"] for name in element_names([channel])]
    assert list(outputs()) == list(META["output"])
    for emit, elements in outputs().items():
        assert elements == element_names(META["output"][emit]), emit
    assert outputs()["versions"] == ["versions.yml"]


def test_environment_yml_installs_this_version_of_virnuc_hpc():
    env = yaml.safe_load((MODULE / "environment.yml").read_text())
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert set(env) == {"channels", "dependencies"} and "name" not in env
    assert set(env["channels"]) == {"conda-forge", "bioconda"}
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pip == [f"virnuc-hpc=={project['version']}"]
    python = next(d for d in env["dependencies"] if str(d).startswith("conda-forge::python="))
    minimum = tuple(map(int, project["requires-python"].removeprefix(">=").split(".")))
    assert tuple(map(int, python.split("=")[-1].split("."))) >= minimum


def test_the_nf_test_file_asserts_on_emitted_channels_and_bundled_files():
    assert NF_TEST.count("{") == NF_TEST.count("}") and NF_TEST.count("(") == NF_TEST.count(")")
    used = set(re.findall(r"process\.out\.(\w+)", NF_TEST))
    assert used and used <= set(META["output"])
    bundled = re.findall(r'file\("\$\{baseDir\}/([^"]+)"', NF_TEST)
    assert bundled and all((REPO / path).is_file() for path in bundled)
    assert (MODULE / "tests" / "nextflow.config").is_file() and (REPO / "nf-test.config").is_file()


def output_types() -> dict[str, str]:
    """emit name -> the type its path asks for (`file`, `dir`; Nextflow's default: any)."""
    lines = section(MAIN_NF, "output", "when").splitlines()
    return {re.search(r"emit:\s*(\w+)", line).group(1): kind.group(1)
            for line in lines if (kind := re.search(r"type:\s*'(\w+)'", line))}


def declared(workdir: Path) -> dict[str, list[Path]]:
    """What each output glob of main.nf matches in a task's work dir, as Nextflow matches:
    hidden files left out, a `type` kept to."""
    types, found = output_types(), {}
    for emit, elements in outputs().items():
        paths = workdir.glob(elements[-1].replace("${prefix}", PREFIX))
        keep = {"dir": Path.is_dir, "file": Path.is_file}.get(types.get(emit), Path.exists)
        found[emit] = sorted(p for p in paths if keep(p) and not p.name.startswith("."))
    return found


def test_the_script_writes_what_the_outputs_declare_and_equals_predict(predicted_example,
                                                                      tmp_path):
    config = (MODULE / "tests" / "nextflow.config").read_text()
    args = re.search(r"ext\.args = '([^']*)'", config).group(1)
    workdir = run_block("script", "stub", tmp_path / "work", args)
    found = declared(workdir)
    assert all(found[emit] for emit in found if emit != "report")      # report: --no-report
    assert [p.name for p in found["results"]] == sorted(example_samples())
    ours, theirs = RunDir(workdir / PREFIX), RunDir(predicted_example)
    for sample in example_samples():
        for mine, reference in zip(ours.outputs(sample), theirs.outputs(sample)):
            assert mine.read_bytes() == reference.read_bytes(), f"{sample}/{mine.name}"
    versions = yaml.safe_load((workdir / "versions.yml").read_text())
    assert versions == {"VIRNUCHPC_PREDICT": tool_versions()}
    assert (workdir / "versions.yml").read_text().split("\n", 1)[1] == \
        ours.versions.read_text().split("\n", 1)[1]


def test_the_stub_writes_what_the_outputs_declare(tmp_path):
    workdir = run_block("stub", None, tmp_path / "work", "")
    found = declared(workdir)
    assert all(found[emit] for emit in found if emit != "report")
    assert [p.name for p in found["results"]] == sorted(example_samples())
    assert yaml.safe_load((workdir / "versions.yml").read_text()) == {
        "VIRNUCHPC_PREDICT": tool_versions()}

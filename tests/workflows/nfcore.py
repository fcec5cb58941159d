"""Reading the nf-core style modules (modules/local/virnuchpc/*) and the subworkflow
(subworkflows/local/virnuchpc) without Nextflow, which is not installed here: their meta.yml
against the schemas, their main.nf sections, and the shell of their `script:`/`stub:` blocks,
rendered from the GStrings with the values a task would have and run in a work dir laid out as
Nextflow stages one. Shared by test_nfcore_module.py and test_nfcore_subworkflow.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import textwrap
from functools import cached_property
from pathlib import Path

import jsonschema
import yaml

from tests.helpers import REPO
from tests.workflows.conftest import tools_env

MODULES = REPO / "modules" / "local" / "virnuchpc"
SUBWORKFLOW = REPO / "subworkflows" / "local" / "virnuchpc"
MODULE_SCHEMA = json.loads((REPO / "modules" / "meta-schema.json").read_text())
SUBWORKFLOW_SCHEMA = json.loads((REPO / "subworkflows" / "meta-schema.json").read_text())
PROCESS_VALUE = '${task.process}'


def schema_errors(schema: dict, meta: dict) -> list[str]:
    return [e.message for e in jsonschema.Draft7Validator(schema).iter_errors(meta)]


def section(text: str, label: str, end: str | None) -> str:
    """The lines of a main.nf from `label:` to `end:` (to the end with None)."""
    body = text.split(f"\n    {label}:\n", 1)[1]
    return body if end is None else body.split(f"\n    {end}:\n", 1)[0]


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


def bash(shell: str, cwd: Path) -> subprocess.CompletedProcess:
    """`shell` run as Nextflow runs a task's script (bash, -eu -o pipefail), with the venv's
    programs first on PATH; asserts it succeeded."""
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", shell], cwd=cwd,
                          capture_output=True, text=True, env=tools_env())
    assert done.returncode == 0, shell + done.stdout + done.stderr
    return done


class Module:
    """One module folder: modules/local/virnuchpc/<name>."""

    def __init__(self, name: str):
        self.name = name
        self.dir = MODULES / name
        self.main_nf = (self.dir / "main.nf").read_text()
        self.meta = yaml.safe_load((self.dir / "meta.yml").read_text())
        self.nf_test = (self.dir / "tests" / "main.nf.test").read_text()
        self.process = re.search(r"^process (\w+) \{", self.main_nf, re.M).group(1)

    def __repr__(self) -> str:
        return self.name

    @cached_property
    def config(self) -> str:
        path = self.dir / "tests" / "nextflow.config"
        return path.read_text() if path.is_file() else ""

    def ext_args(self, process: str | None = None) -> str:
        """ext.args the module's test config gives `process` (this module's by default)."""
        block = re.search(r"withName: '%s' \{(.*?)\}" % (process or self.process), self.config,
                          re.S)
        args = re.search(r"ext\.args = '([^']*)'", block.group(1)) if block else None
        return args.group(1) if args else ""

    def inputs(self) -> list[list[str]]:
        """The input channels, each the names of its elements."""
        lines = section(self.main_nf, "input", "output").splitlines()
        return [re.findall(r"(?:val|path)\((\w+)", line) for line in lines
                if re.match(r"\s*(tuple|path|val)\b", line)]

    def outputs(self) -> dict[str, list[str]]:
        """emit name -> the elements of its output line: `meta` then path globs, or for a
        versions tuple `${task.process}`, the tool and its eval."""
        found = {}
        for line in section(self.main_nf, "output", "when").splitlines():
            if (emit := re.search(r"emit:\s*(\w+)", line)) is None:
                continue
            if f'val("{PROCESS_VALUE}")' in line:
                found[emit.group(1)] = [PROCESS_VALUE, re.search(r"val\('([^']+)'\)", line)[1],
                                        re.search(r"eval\('([^']+)'\)", line)[1]]
            else:
                paths = re.findall(r'path\(?\s*"([^"]+)"', line)
                found[emit.group(1)] = (["meta"] if "val(meta)" in line else []) + paths
        return found

    def topics(self) -> dict[str, list[str]]:
        """emit name -> the topic its output line sends to."""
        lines = section(self.main_nf, "output", "when").splitlines()
        return {re.search(r"emit:\s*(\w+)", line)[1]: topic[1] for line in lines
                if (topic := re.search(r"topic:\s*(\w+)", line))}

    def versions(self) -> dict[str, tuple[str, str]]:
        """versions emit -> (tool, eval command)."""
        return {emit: (elements[1], elements[2]) for emit, elements in self.outputs().items()
                if elements[0] == PROCESS_VALUE}

    def output_types(self) -> dict[str, str]:
        """emit name -> the type its path asks for (`file`, `dir`; Nextflow's default: any)."""
        lines = section(self.main_nf, "output", "when").splitlines()
        return {re.search(r"emit:\s*(\w+)", line).group(1): kind.group(1)
                for line in lines if (kind := re.search(r"type:\s*'(\w+)'", line))}

    def optional(self) -> set[str]:
        lines = section(self.main_nf, "output", "when").splitlines()
        return {re.search(r"emit:\s*(\w+)", line)[1] for line in lines
                if "optional: true" in line}

    def run(self, label: str, workdir: Path, values: dict[str, str]) -> Path:
        """Run the `script` or `stub` block in `workdir` (already staged)."""
        block = section(self.main_nf, label, "stub" if label == "script" else None)
        bash(render(block, {"task.process": self.process, **values}), workdir)
        return workdir

    def declared(self, workdir: Path, values: dict[str, str]) -> dict[str, list[Path]]:
        """What each path output glob matches in a task's work dir, as Nextflow matches:
        hidden files left out, a `type` kept to."""
        types, found = self.output_types(), {}
        for emit, elements in self.outputs().items():
            if elements[0] == PROCESS_VALUE:
                continue
            glob = re.sub(r"\$\{([\w.]+)\}", lambda m: values[m.group(1)], elements[-1])
            keep = {"dir": Path.is_dir, "file": Path.is_file}.get(types.get(emit), Path.exists)
            found[emit] = sorted(p for p in workdir.glob(glob)
                                 if keep(p) and not p.name.startswith("."))
        return found

    def assert_declared(self, workdir: Path, values: dict[str, str]) -> dict[str, list[Path]]:
        """Every non-optional output matched something: what Nextflow needs for the task to
        succeed."""
        found = self.declared(workdir, values)
        missing = [emit for emit in found if not found[emit] and emit not in self.optional()]
        assert not missing, f"{self}: no file for {missing} in {sorted(workdir.rglob('*'))}"
        return found


def module_names() -> list[str]:
    return sorted(p.parent.name for p in MODULES.glob("*/main.nf"))


def nf_blocks(text: str) -> bool:
    """Braces and parentheses balance (a cheap syntax check of a Groovy file)."""
    return text.count("{") == text.count("}") and text.count("(") == text.count(")")

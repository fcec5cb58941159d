"""Read the container recipes and pyproject.toml, and check them against each other.

Each `*_problems` function takes recipe text and returns what is wrong with it (empty: fine),
so the tests run them on the real files and on broken copies.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONTAINERFILE = ROOT / "Containerfile"
APPTAINER_DEF = ROOT / "apptainer.def"
CLI = "virnuc-hpc"
# What the image promises at run time: the model cache at /models, the hub offline.
CACHE_ENV = {
    "VIRNUC_HPC_CACHE": "/models",
    "HF_HOME": "/models",
    "TORCH_HOME": "/models",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
}
EXAMPLE_IN_IMAGE = "/opt/virnuc/examples/reads.fa"
SIF_USAGE = "apptainer run --nv -B cache:/models virnuc.sif predict reads.fa -o out"
OCI_LABELS = ("title", "version", "source", "licenses")
_PIN = re.compile(r"(?<![\w.-])([A-Za-z][A-Za-z0-9._-]*)==([0-9][^\s\"'\\,;)]*)")
_DIGEST_PINNED = re.compile(r"^[\w./-]+:[\w.-]+@sha256:[0-9a-f]{64}$")


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(proj: dict) -> dict[str, str]:
    """{distribution: version} of the `name==version` dependencies of [project] (an
    environment marker after `;` is allowed)."""
    found = (_PIN.fullmatch(dep.split(";")[0].replace(" ", "")) for dep in proj["dependencies"])
    return {normalize(m[1]): m[2] for m in found if m}


def pin_problems(text: str, proj: dict) -> list[str]:
    """Every `name==version` written in a recipe must be the project's own pin."""
    want = pins(proj)
    return [
        f"{m[0]} disagrees with pyproject.toml ({want.get(normalize(m[1]), 'not pinned there')})"
        for m in _PIN.finditer(text)
        if want.get(normalize(m[1])) != m[2]
    ]


# ---- Containerfile -------------------------------------------------------------------------


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs: comments dropped, continuation lines joined."""
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    logical = re.sub(r"\\\n", " ", "\n".join(lines))
    pairs = (ln.strip().split(None, 1) for ln in logical.splitlines() if ln.strip())
    return [(p[0].upper(), p[1] if len(p) > 1 else "") for p in pairs]


def _assignments(text: str, keyword: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for _, rest in (i for i in instructions(text) if i[0] == keyword):
        out.update(word.split("=", 1) for word in shlex.split(rest) if "=" in word)
    return out


def args(text: str) -> dict[str, str]:
    return {
        rest.split("=", 1)[0]: rest.split("=", 1)[1] if "=" in rest else ""
        for kw, rest in instructions(text)
        if kw == "ARG"
    }


def env(text: str) -> dict[str, str]:
    return _assignments(text, "ENV")


def labels(text: str) -> dict[str, str]:
    return _assignments(text, "LABEL")


def _expand(value: str, arg_defaults: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}", lambda m: arg_defaults.get(m[1], m[0]), value)


def base_image_problems(text: str) -> list[str]:
    base = args(text).get("BASE_IMAGE", "")
    problems = (
        [] if _DIGEST_PINNED.match(base) else [f"BASE_IMAGE {base!r} not pinned by tag+digest"]
    )
    if not re.search(r"/cuda:[\d.]+-\S*runtime", base):
        problems.append(f"BASE_IMAGE {base!r} is not a CUDA runtime image")
    if ("FROM", "${BASE_IMAGE}") not in instructions(text):
        problems.append("FROM does not use ${BASE_IMAGE}")
    return problems + _cuda_index_problems(base, args(text).get("TORCH_INDEX_URL", ""))


def _cuda_index_problems(base: str, index: str) -> list[str]:
    cuda = re.search(r"/cuda:(\d+)\.(\d+)", base)
    wheel = re.search(r"/whl/cu(\d+)$", index)
    if not (cuda and wheel):
        return [f"TORCH_INDEX_URL {index!r} is not a CUDA wheel index"]
    same = wheel[1] == cuda[1] + cuda[2]
    return (
        []
        if same
        else [f"torch wheels cu{wheel[1]} do not match the base's CUDA {cuda[1]}.{cuda[2]}"]
    )


def metadata_problems(text: str, proj: dict) -> list[str]:
    """Version, licence and OCI labels agree with pyproject.toml."""
    arg_defaults = args(text)
    found = {
        k.rsplit(".", 1)[1]: _expand(v, arg_defaults)
        for k, v in labels(text).items()
        if k.startswith("org.opencontainers.image.")
    }
    problems = [f"OCI label {name} missing or empty" for name in OCI_LABELS if not found.get(name)]
    if found.get("version") != proj["version"]:
        problems.append(f"version label {found.get('version')!r} != project {proj['version']!r}")
    if found.get("licenses") != proj["license"]["text"]:
        problems.append(f"licenses label {found.get('licenses')!r} != {proj['license']['text']!r}")
    return problems + pin_problems(text, proj)


def runtime_problems(text: str, proj: dict) -> list[str]:
    """Entrypoint is the CLI, the user is not root, the cache and offline variables are set."""
    instrs = instructions(text)
    problems = [
        f"ENV {k}={env(text).get(k)!r}, want {v!r}"
        for k, v in CACHE_ENV.items()
        if env(text).get(k) != v
    ]
    entry = [json.loads(rest) for kw, rest in instrs if kw == "ENTRYPOINT"]
    if entry[-1:] != [[CLI]] or CLI not in proj["scripts"]:
        problems.append(f"ENTRYPOINT {entry[-1:]} is not [{CLI!r}] (a [project.scripts] entry)")
    users = [rest.split(":")[0] for kw, rest in instrs if kw == "USER"]
    if not users or users[-1] in ("root", "0"):
        problems.append(f"runs as root (USER {users[-1:]})")
    return problems


def install_problems(text: str) -> list[str]:
    """Python packages come from pyproject.toml: torch's pin read from it, then the project."""
    runs = " ".join(rest for kw, rest in instructions(text) if kw == "RUN")
    problems = []
    if not re.search(
        r"tomllib.*pyproject\.toml.*torch==.*--index-url \"\$\{TORCH_INDEX_URL\}\"", runs
    ):
        problems.append("torch is not installed from the pyproject.toml pin via TORCH_INDEX_URL")
    if not re.search(r"pip install (--no-cache-dir )?\./", runs):
        problems.append("the project itself is not pip-installed from the build context")
    if not re.search(rf"mv examples {Path(EXAMPLE_IN_IMAGE).parent}(\s|$)", runs):
        problems.append(f"the example input is not kept at {EXAMPLE_IN_IMAGE}")
    return problems


# ---- apptainer.def -------------------------------------------------------------------------


def def_sections(text: str) -> tuple[dict[str, str], dict[str, str]]:
    """(header {Bootstrap, From, ...}, {section name: body}) of a Singularity/Apptainer recipe."""
    head, *parts = re.split(r"^%(\w+)[ \t]*$", text, flags=re.M)
    header = dict(
        (k.strip(), v.strip())
        for k, v in (ln.split(":", 1) for ln in head.splitlines() if re.match(r"^\w+:", ln))
    )
    return header, {name: body for name, body in zip(parts[::2], parts[1::2])}


def _exports(body: str) -> dict[str, str]:
    return dict(re.findall(r"^\s*export\s+(\w+)=(\S+)\s*$", body, flags=re.M))


def apptainer_problems(text: str, proj: dict, image_env: dict[str, str]) -> list[str]:
    header, sec = def_sections(text)
    version = proj["version"]
    problems = (
        []
        if header.get("Bootstrap") in ("docker-daemon", "docker-archive")
        else [f"Bootstrap {header.get('Bootstrap')!r}: want docker-daemon or docker-archive"]
    )
    if not re.search(rf"virnuc[-:]{re.escape(version)}(\.tar)?$", header.get("From", "")):
        problems.append(f"From {header.get('From')!r} is not the built image of version {version}")
    missing = {"labels", "environment", "runscript", "test", "help"} - set(sec)
    problems += [f"section %{name} missing" for name in sorted(missing)]
    if missing:
        return problems
    problems += _section_problems(sec, version, image_env)
    return problems + pin_problems(text, proj)


def _section_problems(sec: dict[str, str], version: str, image_env: dict[str, str]) -> list[str]:
    exports = _exports(sec["environment"])
    problems = [
        f"%environment {k}={exports.get(k)!r}, want {v!r}"
        for k, v in CACHE_ENV.items()
        if exports.get(k) != v
    ]
    problems += [
        f"%environment {k}={v!r} but the image has {image_env.get(k)!r}"
        for k, v in exports.items()
        if image_env.get(k) != v
    ]
    if sec["runscript"].split() != ["exec", CLI, '"$@"']:
        problems.append(f'%runscript is not `exec {CLI} "$@"`: {sec["runscript"].strip()!r}')
    if not re.search(
        rf"^\s*{CLI} predict {EXAMPLE_IN_IMAGE} -o \S+ --models tiny\s*$", sec["test"], flags=re.M
    ):
        problems.append("%test does not run the tiny demo on the bundled example")
    if SIF_USAGE not in " ".join(sec["help"].split()):
        problems.append(f"%help lacks the usage `{SIF_USAGE}`")
    if not re.search(
        rf"^\s*org\.opencontainers\.image\.version\s+{re.escape(version)}\s*$",
        sec["labels"],
        flags=re.M,
    ):
        problems.append(f"%labels has no org.opencontainers.image.version {version}")
    return problems

"""apptainer.def: parsed with spython (Apptainer itself cannot be installed here) and by section.

Checked: bootstrapped from the image Containerfile builds, the same cache variables, %runscript
calls the CLI, %test runs the tiny demo, %help has the usage, versions equal the project's.
"""

from __future__ import annotations

import pytest
from spython.main.parse.parsers import SingularityParser

from tests.containers import recipes
from tests.containers.recipes import APPTAINER_DEF, CACHE_ENV, CLI, CONTAINERFILE

TEXT = APPTAINER_DEF.read_text()
IMAGE_ENV = recipes.env(CONTAINERFILE.read_text())


def _problems(text: str) -> list[str]:
    return recipes.apptainer_problems(text, recipes.project(), IMAGE_ENV)


def test_spython_parses_the_recipe():
    recipe = SingularityParser(str(APPTAINER_DEF)).recipe["spython-base"]
    header, _ = recipes.def_sections(TEXT)
    assert recipe.fromHeader == header["From"]
    assert recipe.cmd == f'exec {CLI} "$@"'
    environ = dict(item.split("=", 1) for item in recipe.environ)
    assert {k: environ.get(k) for k in CACHE_ENV} == CACHE_ENV
    assert any(
        f"org.opencontainers.image.version {recipes.project()['version']}" == label
        for label in recipe.labels
    )
    assert any(f"{CLI} predict {recipes.EXAMPLE_IN_IMAGE}" in line for line in recipe.install)


def test_sections_versions_and_environment_agree_with_the_image_and_pyproject():
    assert _problems(TEXT) == []


def test_example_path_in_test_is_where_the_image_keeps_it():
    assert recipes.install_problems(CONTAINERFILE.read_text()) == []
    assert recipes.EXAMPLE_IN_IMAGE in recipes.def_sections(TEXT)[1]["test"]


@pytest.mark.parametrize(
    "old, new, expected",
    [
        ("Bootstrap: docker-archive", "Bootstrap: library", "Bootstrap 'library'"),
        ("From: build/virnuc-0.1.0.tar", "From: build/virnuc-0.0.9.tar", "is not the built image"),
        (
            "org.opencontainers.image.version 0.1.0",
            "org.opencontainers.image.version 0.2",
            "%labels has no",
        ),
        ("export HF_HOME=/models", "export HF_HOME=/scratch/hf", "%environment HF_HOME"),
        (
            "    export HF_HUB_DISABLE_TELEMETRY=1\n",
            "    export HF_HUB_DISABLE_TELEMETRY=1\n    export TORCH_HOME=/opt/torch\n",
            "but the image has '/models'",
        ),
        ('exec virnuc-hpc "$@"', 'exec python "$@"', "%runscript"),
        ("--models tiny\n", "--models real\n", "%test does not run the tiny demo"),
        ("-B cache:/models virnuc.sif", "virnuc.sif", "%help lacks the usage"),
        ("%help\n", "%post\n", "section %help missing"),
        ("%test\n", "%test\n    pip install torch==2.0.0\n", "torch==2.0.0"),
    ],
)
def test_checks_notice_a_broken_recipe(old, new, expected):
    assert old in TEXT
    problems = _problems(TEXT.replace(old, new, 1))
    assert any(expected in p for p in problems), problems

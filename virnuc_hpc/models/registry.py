"""What each model is, where it comes from, and the profiles that bundle the three models."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import ConfigError

KINDS = ("dnabert", "esm", "classifier")
PROFILES = ("real", "tiny")
CHUNK_SIZES = (300, 500)

DNABERT_S_REPO = "zhihan1996/DNABERT-S"
# The hub revision fetched. `models fetch` records the commit it resolves to in the entry's
# MANIFEST, and later repairs of that entry fetch that same commit.
DNABERT_S_REVISION = "main"
FAIR_ESM_URL = "https://dl.fbaipublicfiles.com/fair-esm/models/{name}.pt"
VIRNUCPRO_URL = "https://github.com/Li-Jing-1997/VirNucPro/raw/main/{chunk}_model.pth"
ESM_DIMS = {"8M": 320, "35M": 480, "150M": 640, "650M": 1280, "3B": 2560, "15B": 5120,
            "670M": 1280, "85M": 768, "43M": 768}
ESM_NAME = re.compile(r"^esm(1|1b|1v|2)_t(\d+)_(\d+[MB])_UR\w+$")
ESM_UNFETCHABLE = {"esm1v_t33_650M_UR90S"}  # an alias of _1, with no file of its own


@dataclass(frozen=True)
class ModelFile:
    name: str
    url: str | None = None  # direct download; None for hub files and generated ones
    sha256: str | None = None  # where published; otherwise pinned by the entry MANIFEST
    optional: bool = False


@dataclass(frozen=True)
class ModelSpec:
    """One model. `source` is 'hf:<repo>', 'fair-esm:<name>', 'url', 'tiny' or 'path'."""

    name: str
    kind: str
    dim: int  # embedding width for encoders, input width for the classifier
    source: str
    files: tuple[ModelFile, ...] = ()
    revision: str | None = None
    biologically_meaningful: bool = True
    chunk_size: int | None = None
    local_path: Path | None = field(default=None, compare=False)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ConfigError(f"model kind {self.kind!r} unknown; valid: {', '.join(KINDS)}")

    @property
    def generated(self) -> bool:
        return self.source == "tiny"

    @property
    def main_file(self) -> str | None:
        """The file a loader opens; None for DNABERT folders (the loader opens the folder)."""
        return None if self.kind == "dnabert" else self.files[0].name

    def load_path(self, entry_dir: Path) -> Path:
        return entry_dir if self.main_file is None else entry_dir / self.main_file


@dataclass(frozen=True)
class Profile:
    dnabert: ModelSpec
    esm: ModelSpec
    classifier: ModelSpec

    def specs(self) -> tuple[ModelSpec, ModelSpec, ModelSpec]:
        return self.dnabert, self.esm, self.classifier


def _files(*names: str, optional: tuple[str, ...] = ()) -> tuple[ModelFile, ...]:
    required = tuple(ModelFile(n) for n in names)
    return required + tuple(ModelFile(n, optional=True) for n in optional)


def esm_spec(esm_name: str, name: str | None = None, known: bool = False) -> ModelSpec:
    """A fair-esm pretrained model by its fair-esm name (validated against fair-esm's list,
    which imports torch, unless `known`)."""
    match = ESM_NAME.match(esm_name)
    if not match or esm_name in ESM_UNFETCHABLE or \
            not (known or esm_name in fair_esm_names()):
        raise ConfigError(
            f"{esm_name!r} is not a fair-esm sequence model; valid: {', '.join(fair_esm_names())}"
        )
    url = FAIR_ESM_URL.format(name=esm_name)
    return ModelSpec(name or esm_name, "esm", ESM_DIMS[match.group(3)], f"fair-esm:{esm_name}",
                     (ModelFile(f"{esm_name}.pt", url=url),))


def fair_esm_names() -> list[str]:
    import esm.pretrained

    names = (n for n in dir(esm.pretrained) if ESM_NAME.match(n) and n not in ESM_UNFETCHABLE)
    return sorted(n for n in names if ESM_NAME.match(n).group(3) in ESM_DIMS)


# The tiny profile's shape and file names (tiny.py builds the models to match)
TINY_DIMS = {"dnabert": 96, "esm": 64}
TINY_ESM_FILE = "esm2_t2_64_tiny.pt"  # the stem must start with 'esm2' for fair-esm's loader
TINY_CLASSIFIER_FILE = "model.pth"


def _virnucpro(chunk: int) -> ModelSpec:
    url = VIRNUCPRO_URL.format(chunk=chunk)
    return ModelSpec(f"virnucpro-{chunk}", "classifier", 768 + 2560, "url",
                     (ModelFile(f"{chunk}_model.pth", url=url),), chunk_size=chunk)


def _tiny_classifier(chunk: int) -> ModelSpec:
    return ModelSpec(f"tiny-virnucpro-{chunk}", "classifier", sum(TINY_DIMS.values()), "tiny",
                     _files(TINY_CLASSIFIER_FILE), biologically_meaningful=False,
                     chunk_size=chunk)


DNABERT_FILES = ("config.json", "pytorch_model.bin", "tokenizer.json", "tokenizer_config.json")
REGISTRY: dict[str, ModelSpec] = {
    "dnabert-s": ModelSpec("dnabert-s", "dnabert", 768, f"hf:{DNABERT_S_REPO}",
                           _files(*DNABERT_FILES, optional=("special_tokens_map.json",)),
                           revision=DNABERT_S_REVISION),
    "virnucpro-300": _virnucpro(300),
    "virnucpro-500": _virnucpro(500),
    "tiny-dnabert-s": ModelSpec("tiny-dnabert-s", "dnabert", TINY_DIMS["dnabert"], "tiny",
                                _files(*DNABERT_FILES, "special_tokens_map.json"),
                                biologically_meaningful=False),
    "tiny-esm2": ModelSpec("tiny-esm2", "esm", TINY_DIMS["esm"], "tiny",
                           _files(TINY_ESM_FILE), biologically_meaningful=False),
    "tiny-virnucpro-300": _tiny_classifier(300),
    "tiny-virnucpro-500": _tiny_classifier(500),
}
ALIASES = {"esm2-3b": "esm2_t36_3B_UR50D"}
# fair-esm ESM-2 architectures: name -> (layers, embed_dim, heads); `bench` builds them
ESM2_ARCHS = {
    "esm2_t6_8M_UR50D": (6, 320, 20),
    "esm2_t12_35M_UR50D": (12, 480, 20),
    "esm2_t30_150M_UR50D": (30, 640, 20),
    "esm2_t33_650M_UR50D": (33, 1280, 20),
    "esm2_t36_3B_UR50D": (36, 2560, 40),
    "esm2_t48_15B_UR50D": (48, 5120, 40),
}
BENCH_MODELS = ["esm2-3b", "dnabert-s", *ESM2_ARCHS]


def get_spec(name: str) -> ModelSpec:
    """A registry entry, an alias ('esm2-3b'), or any fair-esm model by its fair-esm name."""
    if name in REGISTRY:
        return REGISTRY[name]
    if name in ALIASES:
        return esm_spec(ALIASES[name], name, known=True)
    if ESM_NAME.match(name):
        return esm_spec(name)
    valid = sorted(REGISTRY) + sorted(ALIASES) + ["<any fair-esm name, e.g. esm2_t6_8M_UR50D>"]
    raise ConfigError(f"model {name!r} unknown; valid: {', '.join(valid)}")


def spec_from_path(path, kind: str, dim: int | None = None) -> ModelSpec:
    """A model given as a local path: a DNABERT-style folder or a checkpoint file."""
    if kind not in KINDS:
        raise ConfigError(f"model kind {kind!r} unknown; valid: {', '.join(KINDS)}")
    path = Path(path).expanduser().resolve()
    expect_dir = kind == "dnabert"
    if (path.is_dir() if expect_dir else path.is_file()) is False:
        what = "a DNABERT-style folder" if expect_dir else "a checkpoint file"
        raise ConfigError(f"{path}: not {what}; fix: give an existing path for the {kind} model")
    files = () if expect_dir else (ModelFile(path.name),)
    return ModelSpec(f"path:{path}", kind, dim or 0, "path", files, local_path=path)


def resolve_profile(name: str, chunk_size: int) -> Profile:
    if name not in PROFILES:
        raise ConfigError(f"model profile {name!r} unknown; valid: {', '.join(PROFILES)}")
    if chunk_size not in CHUNK_SIZES:
        raise ConfigError(
            f"chunk size {chunk_size} has no classifier; valid: {', '.join(map(str, CHUNK_SIZES))}"
        )
    prefix = "tiny-" if name == "tiny" else ""
    dnabert = get_spec(f"{prefix}dnabert-s")
    esm = get_spec("tiny-esm2" if name == "tiny" else "esm2-3b")
    return Profile(dnabert, esm, get_spec(f"{prefix}virnucpro-{chunk_size}"))


"""The run's options (`RunConfig`): what changes how features are computed, validated once,
early, and recorded in plan.json, where every stage reads them back as this type (so every
task of a run computes the same way, and the fingerprint covers them). They are settled for
where the tasks run at plan (plan/settle.py)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

import yaml

from .errors import ConfigError
from .shapes import CPU_SHAPES, WIDTH_STEP, Shapes

PRECISIONS = ("fp32", "bf16", "fp16")
PRECISION_CHOICES = ("auto", *PRECISIONS)  # auto: settled at plan for where the tasks run
FEATURES = ("fp32", "fp16", "none")  # what a part keeps of each frame's features
DEFAULT_FEATURES = "none"  # VirNucPro's outputs, the report and status need only the scores


@dataclass(frozen=True)
class RunConfig:
    precision: str = "fp32"
    tokens_per_batch: int | None = None
    part_rows: int = 2048
    compile: bool = False  # torch.compile the ESM-2 layers of the bf16/fp16 fused path
    features: str = DEFAULT_FEATURES  # stored per kept frame: fp32, fp16 or none (scores only)
    dedup: bool = True  # identical reads run-wide, and identical frames in a part, once
    invariant: bool = True  # fixed-shape batches: a row's bits never depend on its batch
    chunk_tokens: int = CPU_SHAPES.chunk_tokens  # the fixed shapes (shapes.py), settled
    group_tokens: int = CPU_SHAPES.group_tokens  # at plan for where the tasks run

    @property
    def shapes(self) -> Shapes | None:
        """The run's fixed shapes, or None for length-sorted batches (`--no-invariant`)."""
        return Shapes(self.chunk_tokens, self.group_tokens) if self.invariant else None

    def batching(self) -> dict:
        """How the run batches, as plan.json records it (beside the precision)."""
        if not self.invariant:
            return {"invariant": False, "batches": "length-sorted, padded-token budget"}
        return {"invariant": True, "chunk_tokens": self.chunk_tokens,
                "group_tokens": self.group_tokens, "width_step": WIDTH_STEP}

    def describe_batching(self) -> str:
        """One line for the dry-run table, status and the report."""
        if not self.invariant:
            return "length-sorted (--no-invariant): a row's last bits may depend on its batch"
        return (f"invariant: fixed shapes ({self.chunk_tokens} tokens a call, attention "
                f"{self.group_tokens} padded tokens a call): a row's bits never depend on its "
                "batch")

    def __post_init__(self):
        check_precision(self.precision)
        for name in ("tokens_per_batch", "part_rows", "chunk_tokens", "group_tokens"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        check_compile(self.compile, self.precision)
        check_features(self.features)
        if not isinstance(self.dedup, bool):
            raise ConfigError(f"dedup must be true or false, got {self.dedup!r} (--no-dedup or "
                              "`dedup:` in the config)")
        if not isinstance(self.invariant, bool):
            raise ConfigError(f"invariant must be true or false, got {self.invariant!r} "
                              "(--no-invariant or `invariant:` in the config)")

    def as_dict(self) -> dict:
        """Only non-default values: a default run keeps the same fingerprint as before."""
        defaults = {f.name: f.default for f in fields(self)}
        return {k: v for k, v in asdict(self).items() if v != defaults[k]}

    @classmethod
    def from_dict(cls, data: dict) -> "RunConfig":
        valid = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(valid))
        if unknown:
            raise ConfigError(f"unknown run option(s) {', '.join(unknown)}; valid: "
                              f"{', '.join(valid)}")
        return cls(**data)


def check_compile(compile_layers, precision: str) -> None:
    if not isinstance(compile_layers, bool):
        raise ConfigError(f"compile must be true or false, got {compile_layers!r}")
    if compile_layers and precision == "fp32":
        raise ConfigError("compile applies to the bf16/fp16 fused ESM-2 path; fp32 runs "
                          "fair-esm's reference forward; fix: add --precision bf16, or drop "
                          "--compile")


def check_features(features) -> None:
    """Refused at plan, not at the first part of a task: the choice decides every part's bytes."""
    if features not in FEATURES:
        raise ConfigError(f"features {features!r} is not one of {', '.join(FEATURES)} "
                          "(--features or `features:` in the config); fix: fp32 or fp16 to keep "
                          "each frame's features (to cluster or train on them), none for the "
                          "scores only")


def read_options(path: str | Path | None) -> dict:
    """The options of a YAML config file (`--config`), as a mapping; {} without one."""
    if not path:
        return {}
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the config ({exc}); fix the YAML") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of option: value")
    return dict(data)


def check_precision(precision: str) -> None:
    """The one check of a precision's name (the torch dtypes: models/precision.py)."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)} "
                          "(--precision or `precision:` in the config)")

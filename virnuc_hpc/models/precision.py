"""The one table from a precision's name (core/config.PRECISIONS) to its torch dtype."""

from __future__ import annotations

import torch

from ..core.config import PRECISIONS, check_precision

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
assert tuple(DTYPES) == PRECISIONS


def dtype_of(precision: str) -> torch.dtype:
    """torch's dtype for a precision's name (refused, naming the choices, if unknown)."""
    check_precision(precision)
    return DTYPES[precision]

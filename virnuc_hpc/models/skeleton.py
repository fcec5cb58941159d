"""Modules built as skeletons, for a checkpoint to fill (`load_state_dict(assign=True)`).

Inside `skeleton()` the `nn.init` functions that modules' `reset_parameters` call do nothing,
so parameters are only allocated (`torch.empty`: address space, no page touched) and never
initialised: building ESM-2 3B or DNABERT-S takes milliseconds instead of a random
initialisation of every weight that the checkpoint then overwrites (about 50 s for ESM-2 3B).
Assigning the checkpoint's tensors releases the untouched allocations. (The meta device would
do the same, but its reference decompositions cost a second of imports on first use.)
Parameters the checkpoint lacks must be set by the caller.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn

INITIALISERS = ("uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_",
                "eye_", "dirac_", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_",
                "kaiming_normal_", "orthogonal_", "sparse_")


def _unchanged(tensor: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    return tensor


@contextmanager
def skeleton() -> Iterator[None]:
    saved = {name: getattr(nn.init, name) for name in INITIALISERS}
    for name in saved:
        setattr(nn.init, name, _unchanged)
    try:
        yield
    finally:
        for name, function in saved.items():
            setattr(nn.init, name, function)

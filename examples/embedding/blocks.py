"""A block of your own, registered as the spec op `gated_linear`.

`autoarch.op` reads the arguments from ``__init__``: ``x: autoarch.Shape`` is the
tensor input (the constructor gets its shape, batch excluded), ``out: int`` and
``gate`` (one of two names) are checked in the spec like a built-in op's arguments.
Parameters are counted from an instance; FLOPs, given here as a formula, would
otherwise be counted by torch's FlopCounterMode on one example.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

import autoarch


@autoarch.op(
    shape=lambda x, out, **_: (*x[:-1], out),
    # two matmuls [.., d] x [d, out], 2 FLOPs per multiply-add (as torch counts them)
    flops=lambda x, out, **_: 2 * 2 * math.prod(x[:-1]) * x[-1] * out,
    checks={"out": lambda v: None if v > 0 else f"must be positive, got {v}"},
)
class GatedLinear(nn.Module):
    """[..., d] -> [..., out]: value * gate(x), a GLU-style gated linear layer."""

    def __init__(self, x: autoarch.Shape, out: int,
                 gate: Literal["sigmoid", "silu"] = "sigmoid"):
        super().__init__()
        self.value = nn.Linear(x[-1], out)
        self.gate = nn.Linear(x[-1], out)
        self.act = torch.sigmoid if gate == "sigmoid" else nn.functional.silu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.value(x) * self.act(self.gate(x))

"""Lowering of `linear` (rule in compiler/ops/linear.py): one ``nn.Linear`` on the last axis."""

from __future__ import annotations

from typing import Any

import torch.fx as fx
from torch import nn

from .lower import Emitter, lowering


@lowering("linear", sliced=("out",))
def _linear(em: Emitter, n: dict[str, Any], xs: list[fx.Node]) -> fx.Node:
    a = n["attrs"]
    return em.module(nn.Linear(n["in_shapes"][0][-1], a["out"], bias=a["bias"]), xs[0])

"""Lowerings of the shape-preserving ops (rules in compiler/ops/elementwise.py):
activations, norms, dropout, zero and identity."""

from __future__ import annotations

from typing import Any

import torch
import torch.fx as fx
import torch.nn.functional as F  # noqa: N812
from torch import nn

from ...compiler.ops import registry
from ...compiler.ops.elementwise import norm_width
from .lower import Emitter, lowering

_FUNCTIONS = {"relu": F.relu, "gelu": F.gelu, "silu": F.silu, "selu": F.selu, "elu": F.elu,
              "tanh": torch.tanh, "sigmoid": torch.sigmoid}
#: the registry's activations by name (a name it lists without a function fails here)
ACTIVATIONS = {name: _FUNCTIONS[name] for name in registry.ACTIVATIONS}

Node = dict[str, Any]


class FeatureBatchNorm(nn.Module):
    """BatchNorm over the feature (last) axis of a sequence ``[b, n, d]``."""

    def __init__(self, d: int):
        super().__init__()
        self.bn = nn.BatchNorm1d(d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(x.transpose(1, 2)).transpose(1, 2)


def norm_module(kind: str, shape: tuple[int, ...]) -> nn.Module | None:
    if kind == "none":
        return None
    width = norm_width(kind, shape)
    if kind == "layernorm":
        return nn.LayerNorm(width)
    if kind == "rmsnorm":
        return nn.RMSNorm(width)
    if len(shape) == 1:
        return nn.BatchNorm1d(width)
    if len(shape) == 2:
        return FeatureBatchNorm(width)
    return nn.BatchNorm2d(width)


@lowering("layernorm", "rmsnorm", "batchnorm", "norm")
def _norm(em: Emitter, n: Node, xs: list[fx.Node]) -> fx.Node:
    kind = n["attrs"]["kind"] if n["op"] == "norm" else n["op"]
    mod = norm_module(kind, n["shape"])
    return xs[0] if mod is None else em.module(mod, xs[0])


@lowering(*ACTIVATIONS)
def _activation(em: Emitter, n: Node, xs: list[fx.Node]) -> fx.Node:
    return em.function(ACTIVATIONS[n["op"]], xs[0])


@lowering("act")
def _act(em: Emitter, n: Node, xs: list[fx.Node]) -> fx.Node:
    return em.function(ACTIVATIONS[n["attrs"]["kind"]], xs[0])


@lowering("dropout")
def _dropout(em: Emitter, n: Node, xs: list[fx.Node]) -> fx.Node:
    return em.module(nn.Dropout(n["attrs"]["p"]), xs[0])


@lowering("zero")
def _zero(em: Emitter, n: Node, xs: list[fx.Node]) -> fx.Node:
    return em.function(torch.zeros_like, xs[0])


@lowering("identity")
def _identity(em: Emitter, n: Node, xs: list[fx.Node]) -> fx.Node:
    return xs[0]

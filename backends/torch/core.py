"""Lowerings of the tensor arithmetic (rules in compiler/ops/core.py): `a + b`, `a * b`,
a tensor times a number. The graph's input and output are placeholders that
``lower_graph`` makes itself."""

from __future__ import annotations

import operator
from typing import Any

import torch.fx as fx

from .lower import Emitter, lowering

Node = dict[str, Any]


@lowering("add")
def _add(em: Emitter, n: Node, xs: list[fx.Node]) -> fx.Node:
    return em.function(operator.add, *xs)


@lowering("mul")
def _mul(em: Emitter, n: Node, xs: list[fx.Node]) -> fx.Node:
    return em.function(operator.mul, *xs)


@lowering("scale")
def _scale(em: Emitter, n: Node, xs: list[fx.Node]) -> fx.Node:
    return em.function(operator.mul, xs[0], n["attrs"]["factor"])

"""Lowerings of the ops that only move data (rules in compiler/ops/shape_ops.py):
reshape, flatten, patchify, mean, concat.

Shapes in the IR exclude the batch dimension; here axis k of the IR is tensor
axis k + 1 (negative axes are the same on both).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.fx as fx

from .lower import Emitter, lowering

Node = dict[str, Any]


def _axis(axis: int) -> int:
    return axis + 1 if axis >= 0 else axis


def patchify(x: torch.Tensor, size: int) -> torch.Tensor:
    """[b, c, h, w] -> [b, (h/size)(w/size), c size^2]: patches in row-major order."""
    b, c, h, w = x.shape
    x = x.reshape(b, c, h // size, size, w // size, size).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b, (h // size) * (w // size), c * size * size)


torch.fx.wrap("patchify")


@lowering("reshape")
def _reshape(em: Emitter, n: Node, xs: list[fx.Node]) -> fx.Node:
    return em.function(torch.reshape, xs[0], (-1, *n["shape"]))


@lowering("flatten")
def _flatten(em: Emitter, n: Node, xs: list[fx.Node]) -> fx.Node:
    return em.function(torch.flatten, xs[0], 1)


@lowering("patchify")
def _patchify(em: Emitter, n: Node, xs: list[fx.Node]) -> fx.Node:
    return em.function(patchify, xs[0], n["attrs"]["size"])


@lowering("mean")
def _mean(em: Emitter, n: Node, xs: list[fx.Node]) -> fx.Node:
    return em.function(torch.mean, xs[0], _axis(n["attrs"]["axis"]))


@lowering("concat")
def _concat(em: Emitter, n: Node, xs: list[fx.Node]) -> fx.Node:
    return em.function(torch.cat, tuple(xs), _axis(n["attrs"]["axis"]))

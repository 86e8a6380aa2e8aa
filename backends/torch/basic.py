"""Lowerings of the core ops: arithmetic, linear, norms, activations, shape ops, conv, pools.

Shapes in the IR exclude the batch dimension; here axis k of the IR is tensor
axis k + 1 (negative axes are the same on both).
"""

from __future__ import annotations

import math
import operator
from typing import Any

import torch
import torch.fx as fx
import torch.nn.functional as F  # noqa: N812
from torch import nn

from .lower import Emitter, lowering

ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu, "silu": F.silu, "selu": F.selu, "elu": F.elu,
               "tanh": torch.tanh, "sigmoid": torch.sigmoid}

Node = dict[str, Any]


def _axis(axis: int) -> int:
    return axis + 1 if axis >= 0 else axis


# ---- arithmetic --------------------------------------------------------------


@lowering("add")
def _add(em: Emitter, n: Node, xs: list[fx.Node]) -> fx.Node:
    return em.function(operator.add, *xs)


@lowering("mul")
def _mul(em: Emitter, n: Node, xs: list[fx.Node]) -> fx.Node:
    return em.function(operator.mul, *xs)


@lowering("scale")
def _scale(em: Emitter, n: Node, xs: list[fx.Node]) -> fx.Node:
    return em.function(operator.mul, xs[0], n["attrs"]["factor"])


# ---- linear ------------------------------------------------------------------


@lowering("linear")
def _linear(em: Emitter, n: Node, xs: list[fx.Node]) -> fx.Node:
    a = n["attrs"]
    return em.module(nn.Linear(n["in_shapes"][0][-1], a["out"], bias=a["bias"]), xs[0])


# ---- normalisation, activations, dropout ---------------------------------------


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
    if kind == "layernorm":
        return nn.LayerNorm(shape[-1])
    if kind == "rmsnorm":
        return nn.RMSNorm(shape[-1])
    if len(shape) == 1:
        return nn.BatchNorm1d(shape[0])
    if len(shape) == 2:
        return FeatureBatchNorm(shape[-1])
    return nn.BatchNorm2d(shape[0])


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


# ---- shape ops ------------------------------------------------------------------


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


# ---- conv and pools ("same" padding, TF style) ------------------------------------


def same_padding(size: int, k: int, s: int) -> tuple[int, int]:
    """(before, after) on one axis: output ceil(size / s)."""
    total = max((math.ceil(size / s) - 1) * s + k - size, 0)
    return total // 2, total - total // 2


def _pad(shape: tuple[int, ...], k: int, s: int) -> tuple[int, int, int, int]:
    top, bottom = same_padding(shape[1], k, s)
    left, right = same_padding(shape[2], k, s)
    return (left, right, top, bottom)  # F.pad order: last axis first


def _symmetric(pad: tuple[int, int, int, int]) -> tuple[int, int] | None:
    """(top, left) when "same" padding is the same on both sides: torch pads it itself."""
    left, right, top, bottom = pad
    return (top, left) if (left, top) == (right, bottom) else None


class SameConv2d(nn.Module):
    """Conv2d with TF "same" padding: its own padding when symmetric, else F.pad first."""

    def __init__(self, in_shape: tuple[int, ...], out: int, k: int, s: int, bias: bool):
        super().__init__()
        pad = _pad(in_shape, k, s)
        sym = _symmetric(pad)
        self.pad = None if sym is not None else pad
        self.conv = nn.Conv2d(in_shape[0], out, k, stride=s, bias=bias, padding=sym or 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad is not None:
            x = F.pad(x, self.pad)
        return self.conv(x)


class SamePool2d(nn.Module):
    """Max or average pooling with "same" padding; the average leaves padding out (TF)."""

    def __init__(self, kind: str, in_shape: tuple[int, ...], k: int, s: int):
        super().__init__()
        self.kind, self.k, self.s = kind, k, s
        pad = _pad(in_shape, k, s)
        self.sym = _symmetric(pad)
        self.pad = pad
        if kind == "avgpool" and self.sym is None:  # real cells under each window
            ones = F.pad(torch.ones(1, 1, *in_shape[1:]), pad)
            self.register_buffer("cells", F.avg_pool2d(ones, k, s) * (k * k), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.k, self.s
        if self.sym is not None:  # torch pads by itself; the average excludes padding
            if self.kind == "maxpool":
                return F.max_pool2d(x, k, s, padding=self.sym)
            return F.avg_pool2d(x, k, s, padding=self.sym, count_include_pad=False)
        if self.kind == "maxpool":
            return F.max_pool2d(F.pad(x, self.pad, value=float("-inf")), k, s)
        return F.avg_pool2d(F.pad(x, self.pad), k, s) * (k * k) / self.cells


@lowering("conv")
def _conv(em: Emitter, n: Node, xs: list[fx.Node]) -> fx.Node:
    a = n["attrs"]
    mod = SameConv2d(n["in_shapes"][0], a["out"], a["kernel"], a["stride"], a["bias"])
    return em.module(mod, xs[0])


@lowering("avgpool", "maxpool")
def _pool(em: Emitter, n: Node, xs: list[fx.Node]) -> fx.Node:
    a = n["attrs"]
    return em.module(SamePool2d(n["op"], n["in_shapes"][0], a["k"], a["stride"] or a["k"]),
                     xs[0])

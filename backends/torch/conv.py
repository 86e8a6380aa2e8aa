"""Lowerings of conv, avgpool and maxpool (rules in compiler/ops/conv.py), with TF "same"
padding as the rule file's :func:`same_padding` and :func:`pool_stride` define it."""

from __future__ import annotations

from typing import Any

import torch
import torch.fx as fx
import torch.nn.functional as F  # noqa: N812
from torch import nn

from ...compiler.ops.conv import pool_stride, same_padding
from .lower import Emitter, lowering, op_call

Node = dict[str, Any]


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


@lowering("conv", sliced=("out",))
def _conv(em: Emitter, n: Node, xs: list[fx.Node]) -> fx.Node:
    a = n["attrs"]
    mod = SameConv2d(n["in_shapes"][0], a["out"], a["kernel"], a["stride"], a["bias"])
    return em.module(mod, xs[0])


@lowering("avgpool", "maxpool")
def _pool(em: Emitter, n: Node, xs: list[fx.Node]) -> fx.Node:
    c = op_call(n)
    return em.module(SamePool2d(n["op"], c.x, c.k, pool_stride(c)), xs[0])

"""Lowerings of the MLP-family blocks: mlp, glu, mixer (structures in docs/ops.md)."""

from __future__ import annotations

from typing import Any

import torch
import torch.fx as fx
from torch import nn

from .basic import ACTIVATIONS
from .lower import Emitter, lowering

Node = dict[str, Any]


class MLP(nn.Module):
    """Narrow-wide-narrow: fc2(act(fc1(x)))."""

    def __init__(self, d: int, hidden: int, out: int, act: str, bias: bool):
        super().__init__()
        self.fc1 = nn.Linear(d, hidden, bias=bias)
        self.fc2 = nn.Linear(hidden, out, bias=bias)
        self.act = ACTIVATIONS[act]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class GLU(nn.Module):
    """Gated linear unit: w3(act(w1 x) * w2 x); SwiGLU with act = silu."""

    def __init__(self, d: int, hidden: int, act: str, bias: bool):
        super().__init__()
        self.w1 = nn.Linear(d, hidden, bias=bias)
        self.w2 = nn.Linear(d, hidden, bias=bias)
        self.w3 = nn.Linear(hidden, d, bias=bias)
        self.act = ACTIVATIONS[act]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w3(self.act(self.w1(x)) * self.w2(x))


class TokenMixer(nn.Module):
    """MLP-Mixer's token mixing: an MLP across the n tokens of [b, n, d]."""

    def __init__(self, n: int, hidden: int, bias: bool):
        super().__init__()
        self.fc1 = nn.Linear(n, hidden, bias=bias)
        self.fc2 = nn.Linear(hidden, n, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.transpose(1, 2)
        return self.fc2(nn.functional.gelu(self.fc1(t))).transpose(1, 2)


def _frozen(mod: nn.Module, a: dict[str, Any]) -> nn.Module:
    if a["frozen"]:
        mod.requires_grad_(False)
    return mod


@lowering("mlp")
def _mlp(em: Emitter, n: Node, xs: list[fx.Node]) -> fx.Node:
    a = n["attrs"]
    d = n["in_shapes"][0][-1]
    hidden = a["hidden"] or (a["expand"] or 4) * d
    return em.module(_frozen(MLP(d, hidden, a["out"] or d, a["act"], a["bias"]), a), xs[0])


@lowering("glu")
def _glu(em: Emitter, n: Node, xs: list[fx.Node]) -> fx.Node:
    a = n["attrs"]
    d = n["in_shapes"][0][-1]
    return em.module(_frozen(GLU(d, a["hidden"], a["act"], a["bias"]), a), xs[0])


@lowering("mixer")
def _mixer(em: Emitter, n: Node, xs: list[fx.Node]) -> fx.Node:
    a = n["attrs"]
    return em.module(_frozen(TokenMixer(n["in_shapes"][0][0], a["hidden"], a["bias"]), a),
                     xs[0])

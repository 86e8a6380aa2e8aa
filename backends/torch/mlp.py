"""Lowerings of the dense blocks: mlp, glu, mixer, moe (rules in compiler/ops/mlp.py,
structures in docs/ops.md)."""

from __future__ import annotations

from typing import Any

import torch
import torch.fx as fx
from torch import nn

from ...compiler.ops.mlp import mlp_dims
from .elementwise import ACTIVATIONS
from .lower import Emitter, lowering, op_call

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


class MixtureOfExperts(nn.Module):
    """Top-k routed MLP experts (each a narrow-wide-narrow GELU MLP).

    Each expert runs only on the positions routed to it, so the work is ``top_k``
    expert passes per position. After every forward, ``aux_loss`` holds the
    Switch-Transformer load-balancing loss ``E * sum_e f_e P_e`` (``f_e``: share
    of routed slots that went to expert ``e``; ``P_e``: its mean router
    probability), which a trainer adds, scaled, to the task loss.
    """

    def __init__(self, d: int, experts: int, top_k: int, hidden: int, bias: bool):
        super().__init__()
        self.top_k = top_k
        self.router = nn.Linear(d, experts, bias=False)
        self.experts = nn.ModuleList(MLP(d, hidden, d, "gelu", bias) for _ in range(experts))
        self.aux_loss = torch.zeros(())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.reshape(-1, x.shape[-1])
        logits = self.router(t)
        probs = torch.softmax(logits, dim=-1)
        gate, idx = probs.topk(self.top_k, dim=-1)  # Switch/GShard: not renormalised, so
        # the router learns from the task loss even with top_k = 1
        out = torch.zeros_like(t)
        for e, expert in enumerate(self.experts):
            rows, slot = (idx == e).nonzero(as_tuple=True)
            if rows.numel():
                out.index_add_(0, rows, expert(t[rows]) * gate[rows, slot, None])
        share = torch.bincount(idx.flatten(), minlength=len(self.experts)).to(t.dtype)
        self.aux_loss = len(self.experts) * (share / idx.numel() * probs.mean(0)).sum()
        return out.reshape(x.shape)


@lowering("mlp", sliced=("hidden", "expand", "out"))
def _mlp(em: Emitter, n: Node, xs: list[fx.Node]) -> fx.Node:
    a = n["attrs"]
    d, hidden, out = mlp_dims(op_call(n))
    return em.module(MLP(d, hidden, out, a["act"], a["bias"]), xs[0])


@lowering("glu", sliced=("hidden",))
def _glu(em: Emitter, n: Node, xs: list[fx.Node]) -> fx.Node:
    a = n["attrs"]
    d = n["in_shapes"][0][-1]
    return em.module(GLU(d, a["hidden"], a["act"], a["bias"]), xs[0])


@lowering("mixer", sliced=("hidden",))
def _mixer(em: Emitter, n: Node, xs: list[fx.Node]) -> fx.Node:
    a = n["attrs"]
    return em.module(TokenMixer(n["in_shapes"][0][0], a["hidden"], a["bias"]), xs[0])


@lowering("moe", sliced=("hidden",))
def _moe(em: Emitter, n: Node, xs: list[fx.Node]) -> fx.Node:
    a = n["attrs"]
    d = n["in_shapes"][0][-1]
    mod = MixtureOfExperts(d, a["experts"], a["top_k"], a["hidden"], a["bias"])
    return em.module(mod, xs[0])

"""Attention lowering (rule in compiler/ops/attention.py): softmax (scaled_dot_product_attention), linear, gla and hedgehog
kinds, with separate, shared or symmetric query/key maps (structures in docs/ops.md).

gla (gated linear attention, on the linear kind's features and normaliser): a
per-feature forget gate ``log alpha = max(logsigmoid(g2(g1(x))) / 16, -5)``.
Causal: ``S_t = diag(alpha_t) S_{t-1} + phi(k_t)^T v_t`` (and ``z_t`` alike), read
as ``phi(q_t) S_t / phi(q_t) . z_t``; computed in chunks of ``GLA_CHUNK`` positions
with decays taken relative to the state before the chunk, so no factor exceeds
``exp(5 * GLA_CHUNK)`` (finite in fp32) and the FLOPs are those of the running
state. Non-causal: every query reads the final state, key ``j`` decayed by
``exp(B_n - B_j) <= 1``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.fx as fx
import torch.nn.functional as F  # noqa: N812
from torch import nn

from ...compiler.ops.attention import GATE_RANK, attention_dims
from ...kernels import gla
from .lower import Emitter, lowering, op_call

#: positions per chunk of causal gla; with log alpha >= GLA_MIN_LOG_GATE the largest
#: factor inside a chunk is exp(-GLA_MIN_LOG_GATE * GLA_CHUNK) = e^80: finite in fp32
GLA_CHUNK = 16
GLA_MIN_LOG_GATE = -5.0


class Attention(nn.Module):
    """Multi-head self-attention on [b, n, d]; heads are contiguous blocks of the width."""

    def __init__(self, d: int, heads: int, kind: str, qk: str, causal: bool, bias: bool):
        super().__init__()
        self.h, self.dk, self.kind, self.qk, self.causal = heads, d // heads, kind, qk, causal
        names = []
        if qk == "separate":
            self.wq, self.wk = nn.Linear(d, d, bias=bias), nn.Linear(d, d, bias=bias)
        elif qk == "shared":  # one bilinear matrix: q = x W_qk, k = x
            self.wqk = nn.Linear(d, d, bias=bias)
        else:  # symmetric: q_h = x_h S_h, k = x; S_h kept as its upper triangle (about half)
            rows, cols = torch.triu_indices(self.dk, self.dk)
            self.register_buffer("rows", rows, persistent=False)
            self.register_buffer("cols", cols, persistent=False)
            start = torch.eye(self.dk)[rows, cols] + torch.randn(heads, len(rows)) / self.dk
            self.a = nn.Parameter(start)
            names.append("a")
        self.wv, self.wo = nn.Linear(d, d, bias=bias), nn.Linear(d, d, bias=bias)
        if kind == "gla":  # low-rank data-dependent forget gate
            self.g1 = nn.Linear(d, GATE_RANK, bias=False)
            self.g2 = nn.Linear(GATE_RANK, d, bias=bias)
        if kind == "hedgehog":  # phi(t) = [exp(t W + b), exp(-(t W + b))], W from identity
            self.fw = nn.Parameter(torch.eye(self.dk).repeat(heads, 1, 1))
            self.fb = nn.Parameter(torch.zeros(heads, 1, self.dk))
            names.append("fw")
        self.sparse_weight_names = tuple(names)

    def symmetric(self) -> torch.Tensor:
        """The heads' symmetric matrices S_h [h, dk, dk], built from their upper triangles."""
        upper = self.a.new_zeros(self.h, self.dk, self.dk)
        upper[:, self.rows, self.cols] = self.a
        return upper + upper.transpose(1, 2) - torch.diag_embed(upper.diagonal(dim1=1, dim2=2))

    def split(self, t: torch.Tensor) -> torch.Tensor:
        b, n, _ = t.shape
        return t.view(b, n, self.h, self.dk).transpose(1, 2)  # [b, h, n, dk]

    def features(self, t: torch.Tensor) -> torch.Tensor:
        if self.kind == "hedgehog":
            u = t @ self.fw + self.fb
            return torch.cat([torch.exp(u), torch.exp(-u)], dim=-1)
        return F.elu(t) + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        if self.qk == "separate":
            q, k = self.split(self.wq(x)), self.split(self.wk(x))
        elif self.qk == "shared":
            q, k = self.split(self.wqk(x)), self.split(x)
        else:
            k = self.split(x)
            q = k @ self.symmetric()
        v = self.split(self.wv(x))
        if self.kind == "softmax":
            o = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        elif self.kind == "gla":
            log_gate = (F.logsigmoid(self.g2(self.g1(x))) / 16).clamp(min=GLA_MIN_LOG_GATE)
            o = gla(self.features(q), self.features(k), v, self.split(log_gate),
                    causal=self.causal, chunk=GLA_CHUNK)
        else:
            o = linear_attention(self.features(q), self.features(k), v, self.causal)
        return self.wo(o.transpose(1, 2).reshape(b, n, d))


def linear_attention(fq: torch.Tensor, fk: torch.Tensor, v: torch.Tensor,
                     causal: bool) -> torch.Tensor:
    """phi(q) (phi(k)^T v) / (phi(q) . sum phi(k)), over all keys or (causal) keys <= i."""
    if not causal:
        num = fq @ (fk.transpose(-1, -2) @ v)
        den = fq @ fk.sum(-2)[..., None]
        return num / den
    state = torch.cumsum(fk[..., :, None] @ v[..., None, :], dim=-3)  # [b, h, n, F, dk]
    num = (fq[..., None, :] @ state).squeeze(-2)
    den = (fq[..., None, :] @ torch.cumsum(fk, dim=-2)[..., :, None]).squeeze(-1)
    return num / den


@lowering("attention")
def _attention(em: Emitter, n: dict[str, Any], xs: list[fx.Node]) -> fx.Node:
    a = n["attrs"]
    _, d, _ = attention_dims(op_call(n))
    mod = Attention(d, a["heads"], a["kind"], a["qk"], a["causal"], a["bias"])
    return em.module(mod, xs[0])

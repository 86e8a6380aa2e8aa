"""KAN blocks: group-rational (KAT), B-spline (efficient-KAN), RBF (FastKAN), ReLU-KAN
(rule in compiler/ops/kan.py, whose :func:`kan_widths` gives the layers).

Structures, parameter counts and FLOPs are in docs/ops.md; the basis functions are
elementwise (0 FLOPs), the matmuls are linear layers. The rational unit is
``autoarch.kernels.rational`` (closed-form backward; faster kernels slot in there
without changing the block).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.fx as fx
import torch.nn.functional as F  # noqa: N812
from torch import nn

from ...compiler.ops.kan import kan_widths
from ...kernels import fit_rational, rational
from .init import variance_preserving_
from .lower import Emitter, lowering, op_call

IDENTITY_NUMERATOR = (0.0, 1.0, 0.0, 0.0, 0.0, 0.0)


class GroupRational(nn.Module):
    """KAT's group-rational unit on the last axis: one numerator, a denominator per group.

    Channel ``c`` of ``i`` belongs to group ``c // (i / groups)`` (contiguous blocks).
    """

    def __init__(self, width: int, groups: int, start: str = "gelu"):
        super().__init__()
        self.width, self.groups = width, groups
        # GELU fitted for this denominator form (kernels/rational_fits.json; max error
        # 0.0032 on [-3, 3], not GELU outside it), or the identity
        num, den = fit_rational("gelu") if start == "gelu" else (IDENTITY_NUMERATOR, (0.0,) * 4)
        self.numerator = nn.Parameter(torch.tensor(num))
        self.denominator = nn.Parameter(torch.tensor([den] * groups))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # KAT shares the numerator across groups (a 1-D numerator)
        return rational(x, self.numerator, self.denominator, impl="auto")

    def unit(self, x: torch.Tensor) -> torch.Tensor:
        """The first group's F on a 1-D tensor (all groups start equal), in float64."""
        a = self.numerator.detach().double()[None]
        b = self.denominator.detach().double()[:1]
        return rational(x[:, None], a, b, impl="torch")[:, 0]


class RationalKAN(nn.Module):
    """One group-rational KAN layer, Linear(F(x)), or KAT's block fc2(F2(fc1(F1(x))))."""

    def __init__(self, d: int, out: int, groups: int, hidden: int | None, bias: bool):
        super().__init__()
        if hidden is None:
            self.f1, self.fc1 = GroupRational(d, groups, "gelu"), nn.Linear(d, out, bias=bias)
            self.f2 = self.fc2 = None
        else:
            self.f1, self.fc1 = GroupRational(d, groups, "identity"), nn.Linear(d, hidden, bias)
            self.f2, self.fc2 = GroupRational(hidden, groups, "gelu"), nn.Linear(hidden, out, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc1(self.f1(x))
        return h if self.f2 is None else self.fc2(self.f2(h))

    def init_variance_preserving(self) -> None:
        """KAT's rule: each linear gets std sqrt(gain / fan_in), gain 1 / E[F(x)^2] of the
        rational before it (the identity-started F1 gives gain 1); biases start at zero."""
        for f, fc in ((self.f1, self.fc1), (self.f2, self.fc2)):
            if fc is None:
                continue
            variance_preserving_(fc.weight, f.unit)
            if fc.bias is not None:
                nn.init.zeros_(fc.bias)


class BSplineKAN(nn.Module):
    """efficient-KAN: base(silu(x)) + spline(B(x)) with B-splines of order k on G intervals."""

    sparse_weight_names = ("spline_weight",)

    def __init__(self, i: int, o: int, grid: int, order: int, bias: bool):
        super().__init__()
        self.order = order
        h = 2.0 / grid
        knots = torch.arange(-order, grid + order + 1, dtype=torch.float32) * h - 1.0
        self.register_buffer("grid", knots.expand(i, -1).contiguous())
        self.base = nn.Linear(i, o, bias=bias)
        self.spline_weight = nn.Parameter(torch.randn(o, i, grid + order) * (0.1 / math.sqrt(i)))
        self.spline_scaler = nn.Parameter(torch.ones(o, i))

    def bases(self, x: torch.Tensor) -> torch.Tensor:
        """Cox-de Boor: (N, i) -> (N, i, G + k)."""
        g = self.grid
        x = x.unsqueeze(-1)
        b = ((x >= g[:, :-1]) & (x < g[:, 1:])).to(x.dtype)
        for p in range(1, self.order + 1):
            b = ((x - g[:, :-(p + 1)]) / (g[:, p:-1] - g[:, :-(p + 1)]) * b[..., :-1]
                 + (g[:, p + 1:] - x) / (g[:, p + 1:] - g[:, 1:-p]) * b[..., 1:])
        return b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.reshape(-1, x.shape[-1])
        weight = (self.spline_weight * self.spline_scaler[..., None]).flatten(1)
        y = self.base(F.silu(t)) + F.linear(self.bases(t).flatten(1), weight)
        return y.reshape(*x.shape[:-1], -1)


class RBFKAN(nn.Module):
    """FastKAN: Gaussian radial basis on layer-normalised x, plus a SiLU base branch."""

    def __init__(self, i: int, o: int, grid: int, bias: bool):
        super().__init__()
        self.norm = nn.LayerNorm(i)
        self.register_buffer("centers", torch.linspace(-2.0, 2.0, grid))
        self.width = 4.0 / (grid - 1) if grid > 1 else 1.0
        self.spline = nn.Linear(i * grid, o, bias=False)
        self.base = nn.Linear(i, o, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        phi = torch.exp(-((self.norm(x)[..., None] - self.centers) / self.width) ** 2)
        return self.spline(phi.flatten(-2)) + self.base(F.silu(x))


class ReLUKAN(nn.Module):
    """ReLU-KAN: R_m(x) = (relu(e_m - x) relu(x - s_m))^2 * 16 / (e_m - s_m)^4, then linear."""

    def __init__(self, i: int, o: int, grid: int, order: int, bias: bool):
        super().__init__()
        s = (torch.arange(grid + order, dtype=torch.float32) - order) / grid
        e = s + (order + 1) / grid
        self.register_buffer("start", s)
        self.register_buffer("end", e)
        self.register_buffer("scale", 16.0 / (e - s) ** 4)
        self.linear = nn.Linear(i * (grid + order), o, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[..., None]
        r = (F.relu(self.end - x) * F.relu(x - self.start)) ** 2 * self.scale
        return self.linear(r.flatten(-2))


def kan_layer(basis: str, i: int, o: int, a: dict[str, Any]) -> nn.Module:
    if basis == "bspline":
        return BSplineKAN(i, o, a["grid"], a["order"], a["bias"])
    if basis == "rbf":
        return RBFKAN(i, o, a["grid"], a["bias"])
    return ReLUKAN(i, o, a["grid"], a["order"], a["bias"])


@lowering("kan", sliced=("out", "hidden"))
def _kan(em: Emitter, n: dict[str, Any], xs: list[fx.Node]) -> fx.Node:
    a = n["attrs"]
    widths = kan_widths(op_call(n))
    if a["basis"] == "rational":  # one block, with KAT's two-layer initialisation
        d = widths[0][0]
        mod: nn.Module = RationalKAN(d, a["out"], a["groups"], a["hidden"], a["bias"])
    else:
        layers = [kan_layer(a["basis"], i, o, a) for i, o in widths]
        mod = layers[0] if len(layers) == 1 else nn.Sequential(*layers)
    return em.module(mod, xs[0])

"""kan(x, out, basis, groups, grid, order, hidden): Kolmogorov-Arnold layers.

Four bases, each one layer i -> o (G = grid, k = order, b = 1 with bias):

- ``rational`` (KAT): a group-rational unit (6 + 4 * groups parameters) then a
  dense layer: (6 + 4 groups) + i o + b o.
- ``bspline`` (efficient-KAN): base linear(SiLU(x)) + spline linear over the
  i (G + k) B-spline values, with a per-weight scaler: o i (G + k + 2) + b o.
- ``rbf`` (FastKAN): LayerNorm, G Gaussian bumps, a bias-free spline linear and
  a base linear(SiLU(x)): o i G + o i + b o + 2 i.
- ``relu`` (ReLU-KAN): G + k ReLU-product bumps per input, then one dense layer:
  o i (G + k) + b o.

With ``hidden`` the block is two such layers d -> hidden -> out (for rational:
KAT's fc2(F2(fc1(F1(x))))). docs/ops.md gives the modules exactly; backends/torch/kan.py
builds them, one layer per pair of :func:`kan_widths`.
"""

from __future__ import annotations

from .registry import (
    ArgSpec,
    OpCall,
    OpError,
    OpSpec,
    bias_params,
    lead,
    need_rank,
    positive,
    register,
)

BASES = ("rational", "bspline", "rbf", "relu")


def kan_widths(c: OpCall) -> list[tuple[int, int]]:
    """The (in, out) of each KAN layer of the call: one, or two with `hidden`."""
    d = c.x[-1]
    if c.hidden is None:
        return [(d, c.out)]
    return [(d, c.hidden), (c.hidden, c.out)]


def _check_groups(c: OpCall) -> None:
    if c.basis != "rational":
        return
    if c.x[-1] % c.groups:
        raise OpError(f"groups = {c.groups} does not divide the width {c.x[-1]}",
                      arg="groups")
    if c.hidden is not None and c.hidden % c.groups:
        raise OpError(f"groups = {c.groups} does not divide hidden = {c.hidden}",
                      arg="hidden")


def _shape(c: OpCall) -> tuple[int, ...]:
    need_rank(c.x, (1, 2, 3), "kan")
    _check_groups(c)
    return c.x[:-1] + (c.out,)


def _layer_params(c: OpCall, i: int, o: int) -> int:
    b = bias_params(c, o)
    g, k = c.grid, c.order
    if c.basis == "rational":
        return 6 + 4 * c.groups + i * o + b
    if c.basis == "bspline":
        return o * i * (g + k + 2) + b
    if c.basis == "rbf":
        return o * i * g + o * i + b + 2 * i
    return o * i * (g + k) + b  # relu


def _layer_macs(c: OpCall, i: int, o: int) -> int:
    """Multiply-adds of one layer at one position (matmuls only)."""
    g, k = c.grid, c.order
    if c.basis == "rational":
        return i * o
    if c.basis == "bspline":
        return i * o * (g + k + 1)
    if c.basis == "rbf":
        return i * o * (g + 1)
    return i * (g + k) * o  # relu


def _layer_weights(c: OpCall, i: int, o: int) -> int:
    """Entries of the layer's weight matrices (what a sparsity mask covers)."""
    if c.basis == "rational":
        return i * o
    return _layer_macs(c, i, o)


def _params(c: OpCall) -> int:
    _check_groups(c)
    return sum(_layer_params(c, i, o) for i, o in kan_widths(c))


def _flops(c: OpCall) -> int:
    return 2 * lead(c.x) * sum(_layer_macs(c, i, o) for i, o in kan_widths(c))


def _sparse(c: OpCall) -> int:
    return sum(_layer_weights(c, i, o) for i, o in kan_widths(c))


register(OpSpec(
    "kan",
    (ArgSpec("x", "tensor"),
     ArgSpec("out", "int", check=positive),
     ArgSpec("basis", "symbol", "rational", symbols=BASES),
     ArgSpec("groups", "int", 8, check=positive, doc="rational: channel groups"),
     ArgSpec("grid", "int", 5, check=positive, doc="bspline, rbf, relu: grid intervals"),
     ArgSpec("order", "int", 3, check=positive, doc="bspline, relu: spline order"),
     ArgSpec("hidden", "int", None, check=positive,
             doc="two KAN layers d -> hidden -> out (KAT block)")),
    _shape,
    params=_params,
    flops=_flops,
    sparse_weights=_sparse,
    parametric=True,
    doc="[..., d] -> [..., out]: Kolmogorov-Arnold layer (rational, bspline, rbf, relu)",
))

"""linear(x, out): a dense layer on the last axis (lowered by backends/torch/linear.py)."""

from __future__ import annotations

from .registry import ArgSpec, OpCall, OpSpec, dense, lead, need_rank, positive, register


def _shape(c: OpCall) -> tuple[int, ...]:
    need_rank(c.x, (1, 2, 3), "linear")
    return c.x[:-1] + (c.out,)


register(OpSpec(
    "linear",
    (ArgSpec("x", "tensor"), ArgSpec("out", "int", check=positive)),
    _shape,
    params=lambda c: dense(c.x[-1], c.out, c),
    flops=lambda c: 2 * lead(c.x) * c.x[-1] * c.out,
    sparse_weights=lambda c: c.x[-1] * c.out,
    parametric=True,
    doc="[..., d] -> [..., out]; `frozen = true` keeps the initial weights (hourglass lift)",
))

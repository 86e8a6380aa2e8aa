"""Internal ops: graph input and output, and tensor arithmetic (`a + b`, `a * b`).

The arithmetic is lowered by backends/torch/core.py; input and output by lower_graph.
"""

from __future__ import annotations

from .registry import ArgSpec, OpCall, OpError, OpSpec, register


def _same(c: OpCall) -> tuple[int, ...]:
    if c.a != c.b:
        what = "residual add" if c.op == "add" else "elementwise product"
        raise OpError(f"{what} of different shapes {list(c.a)} and {list(c.b)}",
                      hint="both sides of + and * must have the same shape")
    return c.a


register(OpSpec("input", (ArgSpec("shape", "ints"),), lambda c: tuple(c.shape), internal=True,
                doc="the model's input"))
register(OpSpec("output", (ArgSpec("x", "tensor"),), lambda c: c.x, internal=True,
                doc="the model's output"))
register(OpSpec("add", (ArgSpec("a", "tensor"), ArgSpec("b", "tensor")), _same,
                commutative=True, internal=True, doc="a + b (residual add)"))
register(OpSpec("mul", (ArgSpec("a", "tensor"), ArgSpec("b", "tensor")), _same,
                commutative=True, internal=True, doc="a * b (elementwise, gating)"))
register(OpSpec("scale", (ArgSpec("x", "tensor"), ArgSpec("factor", "float")), lambda c: c.x,
                internal=True, doc="a tensor times a number"))

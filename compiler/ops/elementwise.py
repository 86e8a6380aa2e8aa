"""Shape-preserving ops: activations, normalisation, dropout, zero and identity.

None of them does a matmul, so all count 0 FLOPs (as FlopCounterMode counts).
Lowered by backends/torch/elementwise.py.
"""

from __future__ import annotations

from .registry import ACTIVATIONS, ArgSpec, OpCall, OpSpec, fraction, need_rank, register

NORMS = ("layernorm", "rmsnorm", "batchnorm", "none")


def _same(c: OpCall) -> tuple[int, ...]:
    return c.x


def norm_width(kind: str, shape: tuple[int, ...]) -> int:
    """Length of the axis a norm normalises with its affine parameters: the features,
    or for batchnorm of an image [c, h, w] its channels. The lowering sizes norms by it."""
    if kind == "batchnorm" and len(shape) == 3:
        return shape[0]
    return shape[-1]


def norm_params(kind: str, shape: tuple[int, ...]) -> int:
    if kind == "none":
        return 0
    if kind == "rmsnorm":  # a scale only
        return norm_width(kind, shape)
    return 2 * norm_width(kind, shape)  # layernorm, batchnorm: weight and bias


X = ArgSpec("x", "tensor")

for _name in ACTIVATIONS:
    register(OpSpec(_name, (X,), _same, doc=f"{_name} activation"))

register(OpSpec("act", (X, ArgSpec("kind", "symbol", symbols=ACTIVATIONS)), _same,
                doc="activation chosen by name"))
register(OpSpec("identity", (X,), _same, doc="x unchanged"))
register(OpSpec("zero", (X,), _same, doc="zeros shaped like x (NAS 'none' edge)"))
register(OpSpec("dropout", (X, ArgSpec("p", "float", check=fraction)), _same,
                doc="dropout with probability p"))


def _norm(kind: str) -> OpSpec:
    def params(c: OpCall) -> int:
        return norm_params(kind, c.x)

    def shape(c: OpCall) -> tuple[int, ...]:
        if kind == "batchnorm":
            need_rank(c.x, (1, 2, 3), "batchnorm")
        return c.x

    return OpSpec(kind, (X,), shape, params=params, doc=f"{kind} over the feature axis")


for _kind in ("layernorm", "rmsnorm", "batchnorm"):
    register(_norm(_kind))


register(OpSpec(
    "norm", (X, ArgSpec("kind", "symbol", symbols=NORMS)), _same,
    params=lambda c: norm_params(c.kind, c.x),
    doc="normalisation chosen by name: layernorm, rmsnorm, batchnorm or none",
))

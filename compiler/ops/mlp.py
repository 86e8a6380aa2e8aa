"""Dense blocks: mlp, glu, mixer and moe (lowered by backends/torch/mlp.py).

The exact module each block lowers to (and so what its parameter and FLOP
formulas count) is written down in docs/ops.md.
"""

from __future__ import annotations

from .registry import (
    ACTIVATIONS,
    ArgSpec,
    OpCall,
    OpError,
    OpSpec,
    dense,
    lead,
    need_rank,
    positive,
    register,
)

X = ArgSpec("x", "tensor")


# ---- mlp(x, hidden = h | expand = e, out = d, act = gelu) -----------------


def mlp_dims(c: OpCall) -> tuple[int, int, int]:
    """(d, hidden, out) of an mlp call, with hidden / expand / out resolved.

    The one place the defaults (expand 4, out = d) are worked out; the lowering calls it.
    """
    d = c.x[-1]
    if c.hidden is not None and c.expand is not None:
        raise OpError("give `hidden` or `expand`, not both", arg="expand", kind="value")
    hidden = c.hidden if c.hidden is not None else (c.expand or 4) * d
    return d, hidden, c.out if c.out is not None else d


def _mlp_shape(c: OpCall) -> tuple[int, ...]:
    need_rank(c.x, (1, 2, 3), "mlp")
    _, _, out = mlp_dims(c)
    return c.x[:-1] + (out,)


def _mlp_params(c: OpCall) -> int:
    d, h, out = mlp_dims(c)
    return dense(d, h, c) + dense(h, out, c)


def _mlp_flops(c: OpCall) -> int:
    d, h, out = mlp_dims(c)
    return 2 * lead(c.x) * (d * h + h * out)


def _mlp_sparse(c: OpCall) -> int:
    d, h, out = mlp_dims(c)
    return d * h + h * out


register(OpSpec(
    "mlp",
    (X,
     ArgSpec("hidden", "int", None, check=positive, doc="hidden width"),
     ArgSpec("expand", "int", None, check=positive,
             doc="hidden width as a multiple of the input width (default 4)"),
     ArgSpec("out", "int", None, check=positive, doc="output width; default: input width"),
     ArgSpec("act", "symbol", "gelu", symbols=ACTIVATIONS)),
    _mlp_shape,
    params=_mlp_params,
    flops=_mlp_flops,
    sparse_weights=_mlp_sparse,
    parametric=True,
    doc="[..., d] -> [..., out]: linear(d, hidden), act, linear(hidden, out)",
))


# ---- glu(x, hidden, act = silu) ---------------------------------------------


def _last_axis_same(what: str):
    def shape(c: OpCall) -> tuple[int, ...]:
        need_rank(c.x, (1, 2, 3), what)
        return c.x
    return shape


register(OpSpec(
    "glu",
    (X,
     ArgSpec("hidden", "int", check=positive),
     ArgSpec("act", "symbol", "silu", symbols=ACTIVATIONS)),
    _last_axis_same("glu"),
    params=lambda c: 2 * dense(c.x[-1], c.hidden, c) + dense(c.hidden, c.x[-1], c),
    flops=lambda c: 2 * lead(c.x) * 3 * c.x[-1] * c.hidden,
    sparse_weights=lambda c: 3 * c.x[-1] * c.hidden,
    parametric=True,
    doc="[..., d] -> [..., d]: W3(act(W1 x) * W2 x) (SwiGLU when act = silu)",
))


# ---- mixer(x, hidden) --------------------------------------------------------


def _mixer_shape(c: OpCall) -> tuple[int, ...]:
    need_rank(c.x, (2,), "mixer")
    return c.x


register(OpSpec(
    "mixer",
    (X, ArgSpec("hidden", "int", check=positive)),
    _mixer_shape,
    params=lambda c: dense(c.x[0], c.hidden, c) + dense(c.hidden, c.x[0], c),
    flops=lambda c: 2 * c.x[1] * 2 * c.x[0] * c.hidden,
    sparse_weights=lambda c: 2 * c.x[0] * c.hidden,
    parametric=True,
    doc="[n, d] -> [n, d]: token-mixing MLP across the n axis (linear, gelu, linear)",
))


# ---- moe(x, experts, top_k, hidden) -----------------------------------------


def _moe_check(c: OpCall) -> None:
    if c.top_k > c.experts:
        raise OpError(f"top_k = {c.top_k} is more than the {c.experts} experts",
                      arg="top_k", kind="value")


def _moe_shape(c: OpCall) -> tuple[int, ...]:
    need_rank(c.x, (1, 2, 3), "moe")
    _moe_check(c)
    return c.x


def _moe_params(c: OpCall) -> int:
    d = c.x[-1]
    return d * c.experts + c.experts * (dense(d, c.hidden, c) + dense(c.hidden, d, c))


def _moe_flops(c: OpCall) -> int:
    _moe_check(c)
    d, n = c.x[-1], lead(c.x)
    return 2 * n * d * c.experts + c.top_k * 2 * n * 2 * d * c.hidden


register(OpSpec(
    "moe",
    (X,
     ArgSpec("experts", "int", check=positive),
     ArgSpec("top_k", "int", check=positive, doc="experts active per position (1..experts)"),
     ArgSpec("hidden", "int", check=positive, doc="hidden width of each expert mlp")),
    _moe_shape,
    params=_moe_params,
    flops=_moe_flops,
    sparse_weights=lambda c: c.x[-1] * c.experts + c.experts * 2 * c.x[-1] * c.hidden,
    parametric=True,
    doc="[..., d] -> [..., d]: a bias-free router picks top_k of `experts` gelu mlps",
))

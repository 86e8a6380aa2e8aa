"""The group-rational unit F(x) = P(x) / (1 + sum_i |b_i| |x|^i), with its closed-form backward.

``x`` is ``[..., d]``; ``numerator`` is ``[g, m + 1]`` (a_0..a_m) and ``denominator``
``[g, n]`` (b_1..b_n); channel ``c`` belongs to group ``c // (d / g)``. With
``R = P'(x)`` and ``S = sgn(x) sum_i i |b_i| |x|^(i-1)``:

    dF/dx = R / Q - S P / Q^2,   dF/da_i = x^i / Q,   dF/db_i = -P / Q^2 sgn(b_i) |x|^i

``impl``: ``"torch"`` is the reference (plain autograd through the formula);
``"fused"`` is a custom autograd function that evaluates the closed-form backward
and reduces the coefficient gradients per group, accumulating in fp32 whatever the
input dtype, in few whole-tensor ops: each Horner step is one ``addcmul`` against a
per-channel coefficient row, the coefficient gradients one reduction over a buffer
of running products (about 85 tensor ops forward and backward, against about 150 for
autograd through the formula; at training sizes the op count is what a CPU step
costs). ``"compiled"`` is the same function through ``torch.compile`` (seconds of
compile per process and shape; there to ask for by name). ``"auto"`` picks
``"triton"`` for CUDA tensors (kernels in ``triton_rational.py``; on a CPU they run
under Triton's interpreter with ``TRITON_INTERPRET=1``) and ``"fused"`` for CPU
tensors: a search trains many small candidates, each with its training, evaluation
and last-batch shapes, and compiling for each stalled the first epochs of every KAN
trial (4 s of a 6 s digits trial).
"""

from __future__ import annotations

import functools
import os

import torch

IMPLS = ("auto", "torch", "fused", "compiled", "triton")


def rational(x: torch.Tensor, numerator: torch.Tensor, denominator: torch.Tensor,
             impl: str = "auto") -> torch.Tensor:
    """F(x) per channel group; see the module docstring."""
    g, d = numerator.shape[0], x.shape[-1]
    if denominator.shape[0] != g or d % g:
        raise ValueError(f"{g} groups do not fit {tuple(denominator.shape)} coefficients "
                         f"and width {d}")
    if impl == "torch":
        return _reference(x, numerator, denominator)
    if impl == "auto":
        impl = "triton" if x.device.type == "cuda" else "fused"
    if impl == "triton":
        if x.device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
            raise ValueError("impl='triton' needs a CUDA tensor, or TRITON_INTERPRET=1 set "
                             "before the kernels load (Triton's CPU interpreter)")
        from .triton_rational import TritonRational  # triton loads only here

        return TritonRational.apply(x, numerator, denominator)
    if impl in ("fused", "compiled"):
        return _Rational.apply(x, numerator, denominator, impl == "compiled")
    raise ValueError(f"unknown impl {impl!r}; expected one of {', '.join(IMPLS)}")


def _grouped(x: torch.Tensor, g: int) -> torch.Tensor:
    return x.reshape(-1, g, x.shape[-1] // g)  # [N, g, channels per group]


def _p_q(xg: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """P(x) and Q(x) by Horner, coefficients broadcast per group."""
    p = a[:, -1, None].expand_as(xg)
    for i in range(a.shape[1] - 2, -1, -1):
        p = p * xg + a[:, i, None]
    ax, bb = xg.abs(), b.abs()
    q = bb[:, -1, None].expand_as(xg)
    for i in range(b.shape[1] - 2, -1, -1):
        q = q * ax + bb[:, i, None]
    return p, 1 + q * ax


def _reference(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    p, q = _p_q(_grouped(x, a.shape[0]), a.to(x.dtype), b.to(x.dtype))
    return (p / q).reshape(x.shape)


def _per_channel(coef: torch.Tensor, d: int) -> torch.Tensor:
    """[g, k] coefficients -> [k, d]: row i holds coefficient i of each channel's group,
    so every Horner step is one broadcast of a contiguous row (like a bias add)."""
    return coef.t().repeat_interleave(d // coef.shape[0], dim=1)


def _horner(rows: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """sum_i rows[i] x^i, one addcmul per degree (0 for no rows)."""
    if not len(rows):
        return torch.zeros((), dtype=x.dtype, device=x.device).expand_as(x)
    rows = rows.unbind(0)
    out = rows[-1].expand_as(x)
    for row in reversed(rows[:-1]):
        out = torch.addcmul(row, out, x)
    return out


def _forward_math(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor
                  ) -> tuple[torch.Tensor, ...]:
    """F(x), Q(x), |x| on ``x`` flattened to [N, d], and the per-channel rows of a, |b|."""
    d = x.shape[-1]
    ax = x.abs()
    rows_a, rows_b = _per_channel(a, d), _per_channel(b.abs(), d)
    q = torch.addcmul(torch.ones((), dtype=x.dtype, device=x.device), _horner(rows_b, ax), ax)
    return _horner(rows_a, x) / q, q, ax, rows_a, rows_b


def _power_sums(w: torch.Tensor, x: torch.Tensor, k: int) -> torch.Tensor:
    """[k, d]: row i is sum over rows of w x^i (running products in one buffer, then one
    reduction; a broadcast of x's powers against w is ten times slower on a CPU)."""
    out = torch.empty((k, *w.shape), dtype=w.dtype, device=w.device)
    if k:
        out[0] = w
    for i in range(1, k):
        torch.mul(out[i - 1], x, out=out[i])
    return out.sum(1)


def _backward_math(x: torch.Tensor, b: torch.Tensor, y: torch.Tensor, q: torch.Tensor,
                   ax: torch.Tensor, rows_a: torch.Tensor, rows_b: torch.Tensor,
                   grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """dx, da, db from what the forward saved (F = P / Q, Q, |x|: [N, d])."""
    g, d = b.shape[0], x.shape[-1]
    m, n = rows_a.shape[0] - 1, rows_b.shape[0]
    k = torch.arange(1, max(m, n) + 1, dtype=x.dtype, device=x.device)[:, None]
    t = grad / q  # dF/dP times the upstream gradient
    u = t * y  # P / Q^2 times it
    r = _horner(rows_a[1:] * k[:m], x)  # P'(x)
    s = _horner(rows_b * k[:n], ax) * torch.sign(x)  # dQ/dx
    dx = torch.addcmul(t * r, u, s, value=-1)  # (R - S P / Q) / Q
    ga = _power_sums(t, x, m + 1)  # dF/da_i = x^i / Q, summed per channel
    gb = _power_sums(u * ax, ax, n)  # -dF/db_i sgn(b_i) = P / Q^2 |x|^i
    ga = ga.reshape(m + 1, g, d // g).sum(2).t()  # summed over each group
    gb = -gb.reshape(n, g, d // g).sum(2).t() * torch.sign(b)
    return dx, ga, gb


@functools.cache
def _compiled() -> tuple:
    """The same math through torch.compile (inductor's C++ backend on CPU)."""
    # static shapes first; torch recompiles with dynamic ones only if a shape changes
    return torch.compile(_forward_math), torch.compile(_backward_math)


class _Rational(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, a, b, compiled):  # noqa: ANN001, ANN205 - autograd's signature
        acc = torch.promote_types(x.dtype, torch.float32)
        forward = _compiled()[0] if compiled else _forward_math
        xf, af, bf = x.reshape(-1, x.shape[-1]).to(acc), a.to(acc), b.to(acc)
        y, *saved = forward(xf, af, bf)
        ctx.save_for_backward(xf, bf, y, *saved)
        ctx.compiled, ctx.dtypes = compiled, (x.dtype, a.dtype, b.dtype)
        return y.reshape(x.shape).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        xf, *saved = ctx.saved_tensors
        backward = _compiled()[1] if ctx.compiled else _backward_math
        dx, ga, gb = backward(xf, *saved, grad.reshape(xf.shape).to(xf.dtype))
        tx, ta, tb = ctx.dtypes
        return dx.reshape(grad.shape).to(tx), ga.to(ta), gb.to(tb), None

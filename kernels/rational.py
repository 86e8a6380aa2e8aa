"""The group-rational unit F(x) = P(x) / (1 + sum_i |b_i| |x|^i), with its closed-form backward.

``x`` is ``[..., d]``; ``numerator`` is ``[g, m + 1]`` (a_0..a_m) and ``denominator``
``[g, n]`` (b_1..b_n); channel ``c`` belongs to group ``c // (d / g)``. With
``R = P'(x)`` and ``S = sgn(x) sum_i i |b_i| |x|^(i-1)``:

    dF/dx = R / Q - S P / Q^2,   dF/da_i = x^i / Q,   dF/db_i = -P / Q^2 sgn(b_i) |x|^i

``impl``: ``"torch"`` is the reference (plain autograd through the formula);
``"fused"`` is a custom autograd function that evaluates the closed-form backward
and reduces the coefficient gradients per group, accumulating in fp32 whatever
the input dtype; ``"compiled"`` is the same function through ``torch.compile``
(about 10x the naive eager formula on 512 x 256, after a first compile of seconds
per process and shape); ``"auto"`` picks ``"triton"`` for CUDA tensors (kernels in
``triton_rational.py``; on a CPU they run under Triton's interpreter with
``TRITON_INTERPRET=1``), and ``"fused"`` for CPU tensors: a search trains many
small candidates, each with its training, evaluation and last-batch shapes, and
compiling for each stalled the first epochs of every KAN trial (4 s of a 6 s digits
trial); ``"compiled"`` is there to ask for by name.
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


def _forward_math(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    p, q = _p_q(_grouped(x, a.shape[0]), a, b)
    return (p / q).reshape(x.shape)


def _backward_math(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor, grad: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = a.shape[0]
    xg, gg = _grouped(x, g), _grouped(grad, g)
    p, q = _p_q(xg, a, b)
    m, n = a.shape[1] - 1, b.shape[1]
    r = m * a[:, m, None].expand_as(xg)  # P'(x)
    for i in range(m - 1, 0, -1):
        r = r * xg + i * a[:, i, None]
    ax, bb = xg.abs(), b.abs()
    s = n * bb[:, n - 1, None].expand_as(xg)  # sum_i i |b_i| |x|^(i-1)
    for i in range(n - 1, 0, -1):
        s = s * ax + i * bb[:, i - 1, None]
    s = s * torch.sign(xg)
    inv_q = 1 / q
    dx = gg * (r - s * p * inv_q) * inv_q
    t = gg * inv_q  # dF/da_i = x^i / Q, summed over each group
    ga, power = [], torch.ones_like(xg)
    for _ in range(m + 1):
        ga.append((t * power).sum(dim=(0, 2)))
        power = power * xg
    u = -gg * p * inv_q * inv_q  # dF/db_i = -P / Q^2 sgn(b_i) |x|^i
    gb, power = [], ax
    for i in range(n):
        gb.append((u * power).sum(dim=(0, 2)) * torch.sign(b[:, i]))
        power = power * ax
    return dx.reshape(x.shape), torch.stack(ga, 1), torch.stack(gb, 1)


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
        ctx.save_for_backward(x, a, b)
        ctx.compiled = compiled
        return forward(x.to(acc), a.to(acc), b.to(acc)).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        x, a, b = ctx.saved_tensors
        acc = torch.promote_types(x.dtype, torch.float32)
        backward = _compiled()[1] if ctx.compiled else _backward_math
        dx, ga, gb = backward(x.to(acc), a.to(acc), b.to(acc), grad.to(acc))
        return dx.to(x.dtype), ga.to(a.dtype), gb.to(b.dtype), None

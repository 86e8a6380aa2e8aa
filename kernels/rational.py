"""The group-rational unit F(x) = P(x) / (1 + sum_i |b_i| |x|^i), with its closed-form backward.

``x`` is ``[..., d]``; ``numerator`` is ``[g, m + 1]`` (a_0..a_m) and ``denominator``
``[g, n]`` (b_1..b_n); channel ``c`` belongs to group ``c // (d / g)``. With
``R = P'(x)`` and ``S = sgn(x) sum_i i |b_i| |x|^(i-1)``:

    dF/dx = R / Q - S P / Q^2,   dF/da_i = x^i / Q,   dF/db_i = -P / Q^2 sgn(b_i) |x|^i

``impl``: ``"torch"`` is the reference (plain autograd through the formula).
``"cpu"`` is a C kernel (``rational_cpu.c``, built once per machine by ``cpu.py``;
float32, fp16 / bf16 converted to it): one vectorised pass over the tensor forward and
one backward, the coefficient gradients summed in float64 - two calls a step where
the eager forms make dozens of tensor ops. It runs on one thread (torch's OpenMP
workers, spinning after a matmul, took the other core from a thread of ours: a
two-way split of a [1024, 96] tensor ran twice as slow). ``"fused"`` is a custom
autograd function that evaluates the closed-form backward and reduces the coefficient
gradients per group, accumulating in fp32 whatever the input dtype, in few
whole-tensor ops: each Horner step is one ``addcmul`` against a per-channel
coefficient row, the coefficient gradients one reduction over a buffer of running
products (about 85 tensor ops forward and backward, against about 150 for autograd
through the formula).
``"compiled"`` is the same function through ``torch.compile`` (seconds of compile per
process and shape; there to ask for by name). ``"auto"`` picks ``"triton"`` for CUDA
tensors (kernels in ``triton_rational.py``; on a CPU they run under Triton's
interpreter with ``TRITON_INTERPRET=1``) and ``"cpu"`` for CPU tensors (``"fused"``
for float64, where no C compiler is present, or with ``AUTOARCH_CPU_KERNELS=0``).
Nothing on a CPU compiles per shape: a search trains many small candidates, each with
its training, evaluation and last-batch shapes, and compiling for each stalled the
first epochs of every KAN trial (4 s of a 6 s digits trial).
"""

from __future__ import annotations

import ctypes
import functools
import os

import torch

from . import cpu

IMPLS = ("auto", "torch", "cpu", "fused", "compiled", "triton")
#: the C kernel's bound on each polynomial's coefficients (MAXK in rational_cpu.c)
MAX_COEFFICIENTS = 16


def rational(x: torch.Tensor, numerator: torch.Tensor, denominator: torch.Tensor,
             impl: str = "auto") -> torch.Tensor:
    """F(x) per channel group; see the module docstring. A 1-D ``numerator`` is one
    numerator shared by every group (KAT's form)."""
    g, d = denominator.shape[0], x.shape[-1]
    if numerator.dim() not in (1, 2) or numerator.dim() == 2 and numerator.shape[0] != g \
            or d % g:
        raise ValueError(f"{tuple(numerator.shape)} and {tuple(denominator.shape)} "
                         f"coefficients do not fit width {d} in groups")
    if impl == "auto" and x.device.type == "cuda":
        impl = "triton"
    elif impl in ("auto", "cpu"):
        lib = _c_kernels() if _c_kernel_fits(x, numerator, denominator) else None
        if lib is not None:
            return _CRational.apply(x, numerator, denominator, lib)
        if impl == "cpu":
            raise ValueError(f"impl='cpu' needs a CPU tensor of at most 32-bit floats, at most "
                             f"{MAX_COEFFICIENTS} coefficients a polynomial, and the C kernel"
                             + (f" ({cpu.why_not('rational_cpu')})" if _c_kernels() is None
                                else ""))
        impl = "fused"
    if numerator.dim() == 1:
        numerator = numerator.expand(g, -1)
    if impl == "torch":
        return _reference(x, numerator, denominator)
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
    if not bb.shape[1]:  # no denominator terms: Q = 1
        return p, torch.ones_like(p)
    q = bb[:, -1, None].expand_as(xg)
    for i in range(b.shape[1] - 2, -1, -1):
        q = q * ax + bb[:, i, None]
    return p, 1 + q * ax


def _reference(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a = a if a.dim() == 2 else a[None]  # one numerator shared by every group
    p, q = _p_q(_grouped(x, b.shape[0]), a.to(x.dtype), b.to(x.dtype))
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


def _c_kernel_fits(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> bool:
    return (x.device.type == "cpu" and x.dtype != torch.float64
            and 1 <= a.shape[-1] <= MAX_COEFFICIENTS and b.shape[1] <= MAX_COEFFICIENTS)


_lib: list[ctypes.CDLL | None] = []  # the C kernel once looked for: [lib] or [None]


def _c_kernels() -> ctypes.CDLL | None:
    if not _lib:
        lib = cpu.load("rational_cpu")
        if lib is not None:
            ptr, i64 = ctypes.c_void_p, ctypes.c_int64
            fwd, bwd = lib.rational_forward_f32, lib.rational_backward_f32
            fwd.argtypes, fwd.restype = [ptr] * 4 + [i64] * 6, ctypes.c_int
            bwd.argtypes, bwd.restype = [ptr] * 7 + [i64] * 6, ctypes.c_int
        _lib.append(lib)
    return _lib[0]


F32 = torch.float32


def _f32(t: torch.Tensor) -> torch.Tensor:
    return t if t.dtype == F32 and t.is_contiguous() else t.to(F32).contiguous()


def _check(code: int) -> None:
    if code:  # -1; -2 (degrees above MAXK) is ruled out by _c_kernel_fits
        raise MemoryError("the rational C kernel could not allocate its scratch memory")


class _CRational(torch.autograd.Function):
    """The C kernel (float32): forward saves x and the coefficients, backward recomputes
    P and Q from them. Lean on purpose: at training sizes the Python around the two
    kernel calls is a good part of a step."""

    @staticmethod
    def forward(ctx, x, a, b, lib):  # noqa: ANN001, ANN205 - autograd's signature
        d = x.shape[-1]
        xf, af, bf = _f32(x).view(-1, d), _f32(a), _f32(b)
        rows, n = xf.shape[0], bf.shape[1]
        ga, m1 = (1, af.shape[0]) if af.dim() == 1 else af.shape
        y = torch.empty_like(xf)
        _check(lib.rational_forward_f32(xf.data_ptr(), af.data_ptr(), bf.data_ptr(), y.data_ptr(),
                                        rows, d, ga, bf.shape[0], m1, n))
        ctx.save_for_backward(xf, af, bf)
        ctx.lib, ctx.dtypes = lib, (x.dtype, a.dtype, b.dtype)
        y = y.view(x.shape)
        return y if x.dtype == F32 else y.to(x.dtype)

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        xf, af, bf = ctx.saved_tensors
        (rows, d), n, gb = xf.shape, bf.shape[1], bf.shape[0]
        ga, m1 = (1, af.shape[0]) if af.dim() == 1 else af.shape
        gf = _f32(grad).view(rows, d)
        dx, da, db = torch.empty_like(xf), torch.empty_like(af), torch.empty_like(bf)
        _check(ctx.lib.rational_backward_f32(xf.data_ptr(), gf.data_ptr(), af.data_ptr(),
                                             bf.data_ptr(), dx.data_ptr(), da.data_ptr(),
                                             db.data_ptr(), rows, d, ga, gb, m1, n))
        tx, ta, tb = ctx.dtypes
        dx = dx.view(grad.shape)
        return (dx if tx == F32 else dx.to(tx), da if ta == F32 else da.to(ta),
                db if tb == F32 else db.to(tb), None)


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

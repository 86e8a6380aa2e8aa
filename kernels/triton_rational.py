"""Triton kernels for the group-rational unit (imported only for ``impl="triton"``).

Grid: (row blocks, groups). Each program loads a ``BLOCK_R x BLOCK_C`` tile of one
group's channels, evaluates P and Q by Horner with that group's coefficients and,
in the backward, reduces the coefficient gradients over its tile and adds them
with one atomic per coefficient per program (FlashKAT), not one per element.
On a machine without a GPU the kernels run under Triton's interpreter when
``TRITON_INTERPRET=1`` is set before this module is imported.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

BLOCK_R = 32


@triton.jit
def _sign(v):
    return tl.where(v > 0, 1.0, tl.where(v < 0, -1.0, 0.0))


@triton.jit
def _tile(x_ptr, rows_total, width, per_group, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):
    group = tl.program_id(1)
    rows = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    lanes = tl.arange(0, BLOCK_C)
    mask = (rows[:, None] < rows_total) & (lanes[None, :] < per_group)
    offsets = rows[:, None] * width + group * per_group + lanes[None, :]
    return group, offsets, mask


@triton.jit
def _p_q(x, a_ptr, b_ptr, group, M: tl.constexpr, N: tl.constexpr):
    p = tl.zeros_like(x) + tl.load(a_ptr + group * (M + 1) + M)
    for j in tl.static_range(M):
        p = p * x + tl.load(a_ptr + group * (M + 1) + (M - 1 - j))
    ax = tl.abs(x)
    q = tl.zeros_like(x) + tl.abs(tl.load(b_ptr + group * N + (N - 1)))
    for j in tl.static_range(N - 1):
        q = q * ax + tl.abs(tl.load(b_ptr + group * N + (N - 2 - j)))
    return p, 1.0 + q * ax


# The row count changes from batch to batch (the last one, evaluation batches); were it
# specialized (divisible by 16 or not, or 1), each would compile the kernels again.
@triton.jit(do_not_specialize=["rows_total"])
def _forward(x_ptr, a_ptr, b_ptr, y_ptr, rows_total, width, per_group,
             M: tl.constexpr, N: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):
    group, offsets, mask = _tile(x_ptr, rows_total, width, per_group, BLOCK_R, BLOCK_C)
    x = tl.load(x_ptr + offsets, mask=mask, other=0.0).to(tl.float32)
    p, q = _p_q(x, a_ptr, b_ptr, group, M, N)
    tl.store(y_ptr + offsets, p / q, mask=mask)


@triton.jit(do_not_specialize=["rows_total"])
def _backward(x_ptr, g_ptr, a_ptr, b_ptr, dx_ptr, da_ptr, db_ptr, rows_total, width,
              per_group, M: tl.constexpr, N: tl.constexpr, BLOCK_R: tl.constexpr,
              BLOCK_C: tl.constexpr):
    group, offsets, mask = _tile(x_ptr, rows_total, width, per_group, BLOCK_R, BLOCK_C)
    x = tl.load(x_ptr + offsets, mask=mask, other=0.0).to(tl.float32)
    g = tl.load(g_ptr + offsets, mask=mask, other=0.0).to(tl.float32)  # 0 off the tile
    p, q = _p_q(x, a_ptr, b_ptr, group, M, N)
    ax = tl.abs(x)
    r = tl.zeros_like(x) + M * tl.load(a_ptr + group * (M + 1) + M)  # P'(x)
    for j in tl.static_range(M - 1):
        i = M - 1 - j
        r = r * x + i * tl.load(a_ptr + group * (M + 1) + i)
    s = tl.zeros_like(x) + N * tl.abs(tl.load(b_ptr + group * N + (N - 1)))
    for j in tl.static_range(N - 1):
        i = N - 1 - j  # coefficient b_i sits at index i - 1
        s = s * ax + i * tl.abs(tl.load(b_ptr + group * N + (i - 1)))
    s = s * _sign(x)
    inv_q = 1.0 / q
    tl.store(dx_ptr + offsets, g * (r - s * p * inv_q) * inv_q, mask=mask)
    t = g * inv_q
    power = tl.zeros_like(x) + 1.0
    for i in tl.static_range(M + 1):  # one atomic per coefficient per program
        tl.atomic_add(da_ptr + group * (M + 1) + i, tl.sum(tl.sum(t * power, axis=1), axis=0))
        power = power * x
    u = -g * p * inv_q * inv_q
    power = ax
    for i in tl.static_range(N):
        sb = _sign(tl.load(b_ptr + group * N + i))
        tl.atomic_add(db_ptr + group * N + i, sb * tl.sum(tl.sum(u * power, axis=1), axis=0))
        power = power * ax


def _launch(x2: torch.Tensor, a: torch.Tensor) -> tuple[tuple[int, int], dict]:
    rows, width = x2.shape
    groups = a.shape[0]
    per_group = width // groups
    meta = {"M": a.shape[1] - 1, "BLOCK_R": BLOCK_R, "BLOCK_C": triton.next_power_of_2(per_group)}
    return (triton.cdiv(rows, BLOCK_R), groups), {"per_group": per_group, **meta}


class TritonRational(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, a, b):  # noqa: ANN001, ANN205 - autograd's signature
        x2 = x.reshape(-1, x.shape[-1]).contiguous().float()
        af, bf = a.contiguous().float(), b.contiguous().float()
        y = torch.empty_like(x2)
        grid, meta = _launch(x2, af)
        _forward[grid](x2, af, bf, y, x2.shape[0], x2.shape[1], meta["per_group"],
                       M=meta["M"], N=bf.shape[1], BLOCK_R=meta["BLOCK_R"],
                       BLOCK_C=meta["BLOCK_C"])
        ctx.save_for_backward(x, a, b)
        return y.reshape(x.shape).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        x, a, b = ctx.saved_tensors
        x2 = x.reshape(-1, x.shape[-1]).contiguous().float()
        g2 = grad.reshape(x2.shape).contiguous().float()
        af, bf = a.contiguous().float(), b.contiguous().float()
        dx, da, db = torch.empty_like(x2), torch.zeros_like(af), torch.zeros_like(bf)
        grid, meta = _launch(x2, af)
        _backward[grid](x2, g2, af, bf, dx, da, db, x2.shape[0], x2.shape[1],
                        meta["per_group"], M=meta["M"], N=bf.shape[1],
                        BLOCK_R=meta["BLOCK_R"], BLOCK_C=meta["BLOCK_C"])
        return dx.reshape(x.shape).to(x.dtype), da.to(a.dtype), db.to(b.dtype)

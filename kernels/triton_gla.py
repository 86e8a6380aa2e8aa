"""Triton kernels for causal gated linear attention (imported only for ``impl="triton"``).

Layout: ``q, k`` and the chunk-local cumulative log gates ``b`` are ``[BH, n, F]``,
``v`` and ``o`` ``[BH, n, V]``, all contiguous; ``b_t = sum of log alpha_u`` over the
positions ``u <= t`` of ``t``'s chunk (computed in torch, fp32). With ``S`` the state
before a chunk and ``G = b`` at the chunk's last position:

    o_t     = (q_t * e^{b_t}) S + sum_{j <= t in chunk} A_tj v_j,
    A_tj    = sum_f q_tf k_jf e^{b_tf - b_jf},
    S_next  = e^{G} * S + sum_j (k_j * e^{G - b_j})^T v_j.

Every exponent the kernels take is at most 0 (the intra-chunk scores are summed per
feature with their exact pairwise decay, ``C`` columns of a ``[C, F]`` tile each,
instead of factoring ``e^{b_t}`` and ``e^{-b_j}`` apart), so nothing overflows
however strong the decay or long the sequence; the chunk size only trades speed.

Grid: ``(BH, V blocks)``; each program keeps its ``[F, BLOCK_V]`` slice of the state in
fp32 registers and walks the chunks. Backward: ``_bwd_dq`` walks forward, recomputing
the state, for ``dq``; ``_bwd_dkdv`` walks backward with the reverse state
``R = sum_{s after the chunk} diag(e^{B_s - B_end}) q_s^T do_s`` for ``dk`` and ``dv``.
``dq`` and ``dk`` are linear in the V columns, so each V block writes a partial sum
and torch adds the blocks. ``d log alpha`` comes after the kernels, in torch, from
the GLA identity ``dL/dB_t = q_t dq_t - k_t dk_t`` (``B = cumsum(log alpha)``; the
output depends on differences of ``B`` only): ``d log alpha_t = sum_{s >= t} dL/dB_s``.
Under ``TRITON_INTERPRET=1`` (set before this module loads) they run on a CPU.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

#: most V columns per program (the state slice is [F, BLOCK_V] fp32 registers)
MAX_BLOCK_V = 64
#: fp32 operands of tl.dot: "ieee" keeps full fp32 (tf32 would lose ~3 digits)
DOT_PRECISION = "ieee"


def chunk_size(chunk: int) -> int:
    """The kernel's chunk: ``chunk`` rounded up to a power of two, at least 16 (tl.dot)."""
    return max(16, triton.next_power_of_2(chunk))


@triton.jit
def _row(ptr, base, pos, n, F, fs, fmask):
    """Row ``pos`` of a [n, F] slab as fp32 (zeros past the end)."""
    inside = (fs * 0 + pos) < n  # a vector: the interpreter takes no scalar & vector masks
    return tl.load(ptr + base + pos * F + fs, mask=fmask & inside, other=0.0).to(tl.float32)


@triton.jit
def _tile(ptr, base, t, n, width, cols, cmask):
    mask = (t[:, None] < n) & cmask[None, :]
    return tl.load(ptr + base + t[:, None] * width + cols[None, :], mask=mask,
                   other=0.0).to(tl.float32)


@triton.jit
def _scores(q, b, k_ptr, b_ptr, base, s, n, F, fs, fmask, BLOCK_C: tl.constexpr):
    """A[t, j] = sum_f q_tf k_jf e^{b_tf - b_jf} for j <= t (else 0), one column a step."""
    rows = tl.arange(0, BLOCK_C)
    a = tl.zeros([BLOCK_C, BLOCK_C], dtype=tl.float32)
    for j in range(0, BLOCK_C):
        kj = _row(k_ptr, base, s + j, n, F, fs, fmask)
        bj = _row(b_ptr, base, s + j, n, F, fs, fmask)
        diff = tl.where(rows[:, None] >= j, b - bj[None, :], float("-inf"))
        col = tl.sum(q * kj[None, :] * tl.exp(diff), axis=1)
        a = tl.where(rows[None, :] == j, col[:, None], a)
    return a


@triton.jit
def _program(n, F, V, BLOCK_C: tl.constexpr, BLOCK_F: tl.constexpr, BLOCK_V: tl.constexpr):
    """This program's (BH row, V block), its chunk rows, F and V columns with their
    masks, and where its [n, F] and [n, V] slabs start."""
    bh, vb = tl.program_id(0), tl.program_id(1)
    rows = tl.arange(0, BLOCK_C)
    fs = tl.arange(0, BLOCK_F)
    vs = vb * BLOCK_V + tl.arange(0, BLOCK_V)
    return bh, vb, rows, fs, vs, fs < F, vs < V, bh * n * F, bh * n * V


@triton.jit
def _carry(state, k_ptr, b_ptr, b, v, fbase, s, t, n, F, fs, fmask, BLOCK_C: tl.constexpr,
           PRECISION: tl.constexpr):
    """The state after chunk ``s``: S_next = e^{G} * S + sum_j (k_j * e^{G - b_j})^T v_j."""
    k = _tile(k_ptr, fbase, t, n, F, fs, fmask)
    end = _row(b_ptr, fbase, tl.minimum(s + BLOCK_C, n) - 1, n, F, fs, fmask)
    carried = tl.trans(k * tl.exp(end[None, :] - b))  # rows past n: k = 0
    return tl.exp(end)[:, None] * state + tl.dot(carried, v, input_precision=PRECISION)


@triton.jit
def _forward(q_ptr, k_ptr, v_ptr, b_ptr, o_ptr, n, F, V, BLOCK_C: tl.constexpr,
             BLOCK_F: tl.constexpr, BLOCK_V: tl.constexpr, PRECISION: tl.constexpr):
    bh, vb, rows, fs, vs, fmask, vmask, fbase, vbase = _program(n, F, V, BLOCK_C, BLOCK_F,
                                                                 BLOCK_V)
    state = tl.zeros([BLOCK_F, BLOCK_V], dtype=tl.float32)
    for s in range(0, n, BLOCK_C):
        t = s + rows
        q = _tile(q_ptr, fbase, t, n, F, fs, fmask)
        b = _tile(b_ptr, fbase, t, n, F, fs, fmask)
        v = _tile(v_ptr, vbase, t, n, V, vs, vmask)
        a = _scores(q, b, k_ptr, b_ptr, fbase, s, n, F, fs, fmask, BLOCK_C)
        o = tl.dot(q * tl.exp(b), state, input_precision=PRECISION)
        o += tl.dot(a, v, input_precision=PRECISION)
        tl.store(o_ptr + vbase + t[:, None] * V + vs[None, :], o,
                 mask=(t[:, None] < n) & vmask[None, :])
        state = _carry(state, k_ptr, b_ptr, b, v, fbase, s, t, n, F, fs, fmask, BLOCK_C,
                       PRECISION)


@triton.jit
def _bwd_dq(q_ptr, k_ptr, v_ptr, b_ptr, do_ptr, dq_ptr, n, F, V, BH,
            BLOCK_C: tl.constexpr, BLOCK_F: tl.constexpr, BLOCK_V: tl.constexpr,
            PRECISION: tl.constexpr):
    """This V block's part of
    dq_t = e^{b_t} * (do_t S^T) + sum_{j <= t} (do_t . v_j) k_j e^{b_t - b_j}."""
    bh, vb, rows, fs, vs, fmask, vmask, fbase, vbase = _program(n, F, V, BLOCK_C, BLOCK_F,
                                                                 BLOCK_V)
    out = dq_ptr + vb * BH * n * F
    state = tl.zeros([BLOCK_F, BLOCK_V], dtype=tl.float32)
    for s in range(0, n, BLOCK_C):
        t = s + rows
        b = _tile(b_ptr, fbase, t, n, F, fs, fmask)
        v = _tile(v_ptr, vbase, t, n, V, vs, vmask)
        do = _tile(do_ptr, vbase, t, n, V, vs, vmask)
        da = tl.dot(do, tl.trans(v), input_precision=PRECISION)  # [t, j]
        dq = tl.exp(b) * tl.dot(do, tl.trans(state), input_precision=PRECISION)
        for j in range(0, BLOCK_C):
            kj = _row(k_ptr, fbase, s + j, n, F, fs, fmask)
            bj = _row(b_ptr, fbase, s + j, n, F, fs, fmask)
            col = tl.sum(tl.where(rows[None, :] == j, da, 0.0), axis=1)
            diff = tl.where(rows[:, None] >= j, b - bj[None, :], float("-inf"))
            dq += col[:, None] * kj[None, :] * tl.exp(diff)
        tl.store(out + fbase + t[:, None] * F + fs[None, :], dq,
                 mask=(t[:, None] < n) & fmask[None, :])
        state = _carry(state, k_ptr, b_ptr, b, v, fbase, s, t, n, F, fs, fmask, BLOCK_C,
                       PRECISION)


@triton.jit
def _bwd_dkdv(q_ptr, k_ptr, v_ptr, b_ptr, do_ptr, dk_ptr, dv_ptr, n, F, V, BH,
              BLOCK_C: tl.constexpr, BLOCK_F: tl.constexpr, BLOCK_V: tl.constexpr,
              PRECISION: tl.constexpr):
    """Chunks last to first with the reverse state R [F, BLOCK_V]:

    dv_t = (k_t e^{G - b_t}) R + sum_{s >= t} A_st do_s,
    dk_t = e^{G - b_t} * (v_t R^T) + sum_{s >= t} (do_s . v_t) q_s e^{b_s - b_t}
    (dk: this V block's part), then R <- e^{G} R + (q e^{b})^T do.
    """
    bh, vb, rows, fs, vs, fmask, vmask, fbase, vbase = _program(n, F, V, BLOCK_C, BLOCK_F,
                                                                 BLOCK_V)
    out_k = dk_ptr + vb * BH * n * F
    rev = tl.zeros([BLOCK_F, BLOCK_V], dtype=tl.float32)
    chunks = tl.cdiv(n, BLOCK_C)
    for i in range(0, chunks):
        s = (chunks - 1 - i) * BLOCK_C
        t = s + rows
        q = _tile(q_ptr, fbase, t, n, F, fs, fmask)
        k = _tile(k_ptr, fbase, t, n, F, fs, fmask)
        b = _tile(b_ptr, fbase, t, n, F, fs, fmask)
        v = _tile(v_ptr, vbase, t, n, V, vs, vmask)
        do = _tile(do_ptr, vbase, t, n, V, vs, vmask)
        end = _row(b_ptr, fbase, tl.minimum(s + BLOCK_C, n) - 1, n, F, fs, fmask)
        to_end = tl.exp(end[None, :] - b)  # e^{G - b_t} <= 1
        da = tl.dot(do, tl.trans(v), input_precision=PRECISION)  # [s, t]
        a = tl.zeros([BLOCK_C, BLOCK_C], dtype=tl.float32)  # A[s, t]
        dk = to_end * tl.dot(v, tl.trans(rev), input_precision=PRECISION)
        for j in range(0, BLOCK_C):  # row j as the later position s, column j as t
            qj = _row(q_ptr, fbase, s + j, n, F, fs, fmask)
            kj = _row(k_ptr, fbase, s + j, n, F, fs, fmask)
            bj = _row(b_ptr, fbase, s + j, n, F, fs, fmask)
            later = tl.where(rows[:, None] >= j, b - bj[None, :], float("-inf"))
            a_col = tl.sum(q * kj[None, :] * tl.exp(later), axis=1)
            a = tl.where(rows[None, :] == j, a_col[:, None], a)
            da_row = tl.sum(tl.where(rows[:, None] == j, da, 0.0), axis=0)
            earlier = tl.where(rows[:, None] <= j, bj[None, :] - b, float("-inf"))
            dk += da_row[:, None] * qj[None, :] * tl.exp(earlier)
        dv = tl.dot(tl.trans(a), do, input_precision=PRECISION)
        dv += tl.dot(k * to_end, rev, input_precision=PRECISION)
        tl.store(out_k + fbase + t[:, None] * F + fs[None, :], dk,
                 mask=(t[:, None] < n) & fmask[None, :])
        tl.store(dv_ptr + vbase + t[:, None] * V + vs[None, :], dv,
                 mask=(t[:, None] < n) & vmask[None, :])
        rev = tl.exp(end)[:, None] * rev + tl.dot(tl.trans(q * tl.exp(b)), do,
                                                  input_precision=PRECISION)


def local_cumsum(log_gates: torch.Tensor, chunk: int) -> torch.Tensor:
    """fp32 cumulative sums of ``[BH, n, F]`` log gates restarting at every chunk."""
    bh, n, f = log_gates.shape
    pad = -n % chunk
    g = torch.nn.functional.pad(log_gates.float(), (0, 0, 0, pad))
    return g.view(bh, -1, chunk, f).cumsum(2).view(bh, n + pad, f)[:, :n].contiguous()


def _meta(f: int, v: int, chunk: int) -> dict:
    return {"BLOCK_C": chunk, "BLOCK_F": max(16, triton.next_power_of_2(f)),
            "BLOCK_V": min(MAX_BLOCK_V, max(16, triton.next_power_of_2(v))),
            "PRECISION": DOT_PRECISION}


class TritonGLA(torch.autograd.Function):
    """Causal GLA on ``[BH, n, F]`` / ``[BH, n, V]`` inputs of any float dtype; fp32 out."""

    @staticmethod
    def forward(ctx, q, k, v, log_gates, chunk):  # noqa: ANN001, ANN205 - autograd's signature
        q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
        bh, n, f = q.shape
        width = v.shape[-1]
        b = local_cumsum(log_gates, chunk)
        meta = _meta(f, width, chunk)
        o = torch.empty(bh, n, width, device=q.device, dtype=torch.float32)
        _forward[(bh, triton.cdiv(width, meta["BLOCK_V"]))](q, k, v, b, o, n, f, width, **meta)
        ctx.save_for_backward(q, k, v, b)
        ctx.chunk, ctx.gate_dtype = chunk, log_gates.dtype
        return o

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        q, k, v, b = ctx.saved_tensors
        bh, n, f = q.shape
        width = v.shape[-1]
        do = grad.float().contiguous()
        meta = _meta(f, width, ctx.chunk)
        blocks = triton.cdiv(width, meta["BLOCK_V"])
        dq = torch.empty(blocks, bh, n, f, device=q.device, dtype=torch.float32)
        dk = torch.empty_like(dq)
        dv = torch.empty(bh, n, width, device=q.device, dtype=torch.float32)
        _bwd_dq[(bh, blocks)](q, k, v, b, do, dq, n, f, width, bh, **meta)
        _bwd_dkdv[(bh, blocks)](q, k, v, b, do, dk, dv, n, f, width, bh, **meta)
        dq, dk = dq.sum(0), dk.sum(0)
        d_cum = q.float() * dq - k.float() * dk  # dL/dB_t
        d_log = d_cum.flip(-2).cumsum(-2).flip(-2)
        return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype), d_log.to(ctx.gate_dtype), None

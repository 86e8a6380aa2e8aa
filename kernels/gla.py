"""Gated linear attention: the recurrence as reference, a chunked form for training.

``q, k``: ``[..., n, F]`` (already feature-mapped, e.g. elu + 1), ``v``: ``[..., n, dv]``,
``log_gates``: ``[..., n, F]``, each at most 0 (``log alpha``). Causal:

    S_t = diag(alpha_t) S_{t-1} + k_t^T v_t,   o_t = q_t S_t   (/ q_t . z_t, with
    z_t = alpha_t * z_{t-1} + k_t, when ``normalize``)

Non-causal: every query reads the final state, key ``j`` decayed by
``exp(B_n - B_j)`` with ``B = cumsum(log alpha)``.

``impl``: ``"torch"`` is the step-by-step recurrence (the reference); ``"chunked"``
works in chunks of ``chunk`` positions with decays relative to the state before
each chunk, so no factor exceeds ``exp(-min(log alpha) * chunk)``; ``"triton"`` is
the chunked Triton kernel, forward and backward (``triton_gla.py``): fp32 state and
accumulation for any float dtype (fp16/bf16 in, same dtype out), every exponent at
most 0 (finite for any decay), ``chunk`` rounded up to a power of two >= 16; with
``normalize`` it runs once on ``v`` with a column of ones appended (the normaliser
``z`` is the same recurrence on ones) and divides in torch (autograd takes the
division); ``d log alpha`` comes from ``dq`` and ``dk`` in torch after the kernels.
It needs a CUDA tensor, or ``TRITON_INTERPRET=1`` set before the kernels load
(Triton's CPU interpreter). ``"auto"`` picks ``"triton"`` for CUDA tensors when
triton is installed, ``"chunked"`` otherwise.

Non-causal attention is a single matmul form and stays in torch for every impl
(``"triton"`` included, after the same device check).
"""

from __future__ import annotations

import functools
import importlib.util
import os

import torch

IMPLS = ("auto", "torch", "chunked", "triton")


def gla(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, log_gates: torch.Tensor,
        causal: bool = True, impl: str = "auto", *, normalize: bool = True,
        chunk: int = 16) -> torch.Tensor:
    """Gated linear attention; see the module docstring."""
    if impl not in IMPLS:
        raise ValueError(f"unknown impl {impl!r}; expected one of {', '.join(IMPLS)}")
    if impl == "auto":
        impl = "triton" if q.device.type == "cuda" and _have_triton() else "chunked"
    if impl == "triton":
        if q.device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
            raise ValueError("impl='triton' needs a CUDA tensor, or TRITON_INTERPRET=1 set "
                             "before the kernels load (Triton's CPU interpreter)")
        if causal:
            return _triton(q, k, v, log_gates, normalize, chunk)
    cum = torch.cumsum(log_gates, dim=-2)
    if not causal:
        return _read_final_state(q, k * torch.exp(cum[..., -1:, :] - cum), v, normalize)
    if impl == "torch":
        return _recurrent(q, k, v, log_gates, normalize)
    return _chunked(q, k, v, cum, normalize, chunk)


@functools.cache
def _have_triton() -> bool:
    return importlib.util.find_spec("triton") is not None


def _triton(q, k, v, log_gates, normalize: bool, chunk: int) -> torch.Tensor:  # noqa: ANN001
    from .triton_gla import TritonGLA, chunk_size  # triton loads only here

    dtype = torch.promote_types(torch.promote_types(q.dtype, k.dtype),
                                torch.promote_types(v.dtype, log_gates.dtype))
    lead = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2],
                                  log_gates.shape[:-2])
    n, f = q.shape[-2], q.shape[-1]
    if k.shape[-2:] != (n, f) or log_gates.shape[-2:] != (n, f) or v.shape[-2] != n:
        raise ValueError(f"gla shapes do not match: q {tuple(q.shape)}, k {tuple(k.shape)}, "
                         f"v {tuple(v.shape)}, log_gates {tuple(log_gates.shape)}")
    if normalize:  # the normaliser z is the state of a ones column
        v = torch.cat([v, v.new_ones(v.shape[:-1] + (1,))], dim=-1)
    flat = [t.expand(*lead, *t.shape[-2:]).reshape(-1, *t.shape[-2:])
            for t in (q, k, v, log_gates)]
    out = TritonGLA.apply(*flat, chunk_size(chunk))  # fp32 [B, n, dv (+ 1)]
    if normalize:
        out = out[..., :-1] / out[..., -1:]
    return out.reshape(*lead, n, out.shape[-1]).to(dtype)


def _read_final_state(q, k, v, normalize: bool) -> torch.Tensor:  # noqa: ANN001
    num = q @ (k.transpose(-1, -2) @ v)
    return num / (q @ k.sum(-2)[..., None]) if normalize else num


def _recurrent(q, k, v, log_gates, normalize: bool) -> torch.Tensor:  # noqa: ANN001
    alpha = log_gates.exp()
    state = q.new_zeros(*q.shape[:-2], q.shape[-1], v.shape[-1])
    norm = q.new_zeros(*q.shape[:-2], q.shape[-1])
    outs = []
    for t in range(q.shape[-2]):
        state = alpha[..., t, :, None] * state + k[..., t, :, None] * v[..., t, None, :]
        qt = q[..., t, :]
        out = (qt[..., None, :] @ state).squeeze(-2)
        if normalize:
            norm = alpha[..., t, :] * norm + k[..., t, :]
            out = out / (qt * norm).sum(-1, keepdim=True)
        outs.append(out)
    return torch.stack(outs, dim=-2)


def _chunked(q, k, v, cum, normalize: bool, chunk: int) -> torch.Tensor:  # noqa: ANN001
    n = q.shape[-2]
    state = q.new_zeros(*q.shape[:-2], q.shape[-1], v.shape[-1])  # S before the chunk
    norm = q.new_zeros(q.shape[:-2] + q.shape[-1:])  # z before the chunk
    outs = []
    for s in range(0, n, chunk):
        e = min(s + chunk, n)
        ref = cum[..., s - 1: s, :] if s else torch.zeros_like(cum[..., :1, :])
        rel = cum[..., s:e, :] - ref  # B_t - B_{s-1} <= 0
        qc = q[..., s:e, :] * torch.exp(rel)
        kc = k[..., s:e, :] * torch.exp(-rel)
        kv = state[..., None, :, :] + torch.cumsum(kc[..., :, None] @ v[..., s:e, None, :], -3)
        out = (qc[..., None, :] @ kv).squeeze(-2)
        decay = torch.exp(rel[..., -1, :])  # carry the state to the chunk's last position
        if normalize:
            kz = norm[..., None, :] + torch.cumsum(kc, dim=-2)
            out = out / (qc[..., None, :] @ kz[..., :, None]).squeeze(-1)
            norm = decay * kz[..., -1, :]
        outs.append(out)
        state = decay[..., :, None] * kv[..., -1, :, :]
    return torch.cat(outs, dim=-2)

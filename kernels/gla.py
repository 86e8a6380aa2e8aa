"""Gated linear attention: the recurrence as reference, a chunked form for training.

``q, k``: ``[..., n, F]`` (already feature-mapped, e.g. elu + 1), ``v``: ``[..., n, dv]``,
``log_gates``: ``[..., n, F]``, each at most 0 (``log alpha``). Causal:

    S_t = diag(alpha_t) S_{t-1} + k_t^T v_t,   o_t = q_t S_t   (/ q_t . z_t, with
    z_t = alpha_t * z_{t-1} + k_t, when ``normalize``)

Non-causal: every query reads the final state, key ``j`` decayed by
``exp(B_n - B_j)`` with ``B = cumsum(log alpha)``.

``impl``: ``"torch"`` is the step-by-step recurrence (the reference); ``"chunked"``
works in chunks of ``chunk`` positions with decays relative to the state before
each chunk, so no factor exceeds ``exp(-min(log alpha) * chunk)``; ``"auto"`` picks
``"chunked"`` (the Triton kernel for CUDA comes next).
"""

from __future__ import annotations

import torch

IMPLS = ("auto", "torch", "chunked")


def gla(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, log_gates: torch.Tensor,
        causal: bool = True, impl: str = "auto", *, normalize: bool = True,
        chunk: int = 16) -> torch.Tensor:
    """Gated linear attention; see the module docstring."""
    if impl not in IMPLS:
        raise ValueError(f"unknown impl {impl!r}; expected one of {', '.join(IMPLS)}")
    cum = torch.cumsum(log_gates, dim=-2)
    if not causal:
        return _read_final_state(q, k * torch.exp(cum[..., -1:, :] - cum), v, normalize)
    if impl == "torch":
        return _recurrent(q, k, v, log_gates, normalize)
    return _chunked(q, k, v, cum, normalize, chunk)


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

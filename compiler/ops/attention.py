"""attention(x, heads, kind, qk, causal): multi-head self-attention on [n, d].

n tokens, width d, H heads of dk = d / H. FLOPs (2 per multiply-add):

- projections: 2 n d d per dense projection (Wq, Wk, Wv, Wo for qk = separate;
  for shared, one bilinear matrix: q = x Wqk, k = x, then Wv, Wo); qk = symmetric
  projects queries with a block-diagonal of H symmetric dk x dk matrices, each
  stored as its upper triangle (dk (dk + 1) / 2 parameters: about half), 2 n d dk
  FLOPs, and uses x itself as keys.
- core, with F features per head (dk; 2 dk for hedgehog):
  softmax 4 n n d (QK^T and AV; causal counts the same);
  linear kinds H (4 n F dk + 2 n F): phi(K)^T V, phi(Q) (phi(K)^T V) and the
  normaliser phi(Q) . sum phi(K) (causal: the same products per position);
  gla adds its low-rank gate 2 n (16 d + 16 d); hedgehog adds its feature map
  on queries and keys, 2 * 2 n d dk.

The reference modules (docs/ops.md, tests/compiler/test_ops_blocks.py) are the spec;
backends/torch/attention.py lowers it, with the dimensions of :func:`attention_dims`.
"""

from __future__ import annotations

from .registry import ArgSpec, OpCall, OpError, OpSpec, dense, need_rank, positive, register

KINDS = ("softmax", "linear", "gla", "hedgehog")
QK = ("separate", "shared", "symmetric")
#: rank of GLA's low-rank forget gate (g1: d -> GATE_RANK, g2: GATE_RANK -> d)
GATE_RANK = 16


def attention_dims(c: OpCall) -> tuple[int, int, int]:
    """(n, d, dk) of a valid call."""
    need_rank(c.x, (2,), "attention")
    n, d = c.x
    if d % c.heads:
        raise OpError(f"heads = {c.heads} does not divide the width {d}", arg="heads")
    return n, d, d // c.heads


def _shape(c: OpCall) -> tuple[int, ...]:
    attention_dims(c)
    return c.x


def _proj_weights(c: OpCall, d: int, dk: int) -> int:
    """Weight entries of the projections (no biases)."""
    if c.qk == "separate":
        return 4 * d * d
    if c.qk == "shared":
        return 3 * d * d
    return c.heads * dk * (dk + 1) // 2 + 2 * d * d


def _params(c: OpCall) -> int:
    _, d, dk = attention_dims(c)
    dense_layers = {"separate": 4, "shared": 3, "symmetric": 2}[c.qk]
    total = dense_layers * dense(d, d, c)
    if c.qk == "symmetric":  # each head's S_h stored as its upper triangle
        total += c.heads * dk * (dk + 1) // 2
    if c.kind == "gla":
        total += d * GATE_RANK + dense(GATE_RANK, d, c)
    elif c.kind == "hedgehog":
        total += c.heads * (dk * dk + dk)
    return total


def _flops(c: OpCall) -> int:
    n, d, dk = attention_dims(c)
    proj = {"separate": 4, "shared": 3, "symmetric": 2}[c.qk] * 2 * n * d * d
    if c.qk == "symmetric":
        proj += 2 * n * d * dk
    if c.kind == "softmax":
        return proj + 4 * n * n * d
    feats = 2 * dk if c.kind == "hedgehog" else dk
    core = c.heads * (4 * n * feats * dk + 2 * n * feats)
    if c.kind == "gla":
        core += 2 * n * 2 * d * GATE_RANK
    elif c.kind == "hedgehog":
        core += 2 * 2 * n * d * dk
    return proj + core


def _sparse(c: OpCall) -> int:
    _, d, dk = attention_dims(c)
    total = _proj_weights(c, d, dk)
    if c.kind == "gla":
        total += 2 * d * GATE_RANK
    elif c.kind == "hedgehog":
        total += c.heads * dk * dk
    return total


register(OpSpec(
    "attention",
    (ArgSpec("x", "tensor"),
     ArgSpec("heads", "int", check=positive, doc="number of heads; must divide the width"),
     ArgSpec("kind", "symbol", "softmax", symbols=KINDS),
     ArgSpec("qk", "symbol", "separate", symbols=QK,
             doc="separate Wq, Wk; shared: one matrix; symmetric: q = x S, S symmetric, k = x"),
     ArgSpec("causal", "bool", False)),
    _shape,
    params=_params,
    flops=_flops,
    sparse_weights=_sparse,
    parametric=True,
    doc="[n, d] -> [n, d]: multi-head self-attention (softmax, linear, gla, hedgehog)",
))

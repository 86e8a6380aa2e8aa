"""Shape, parameter and FLOP rules of the blocks (mlp, glu, mixer, moe, kan, attention,
conv, pools), checked against hand-written torch reference modules.

The reference modules below are the spec of what the torch lowering must build
(docs/ops.md describes them in words): each rule must give the reference's
output shape, its parameter count, FlopCounterMode's count of its forward pass
on one example, and (``masked``) the entries of the weight matrices a sparsity
mask covers.
"""

from __future__ import annotations

import math
from itertools import pairwise

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from autoarch.compiler.ops import REQUIRED, OpCall, OpError, lookup

ACTS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "selu": nn.SELU, "elu": nn.ELU,
        "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}


def call(op: str, **given) -> tuple:
    """(spec, OpCall) with unspecified arguments filled from the ArgSpec defaults."""
    spec = lookup(op)
    unknown = set(given) - set(spec.by_name)
    assert not unknown, f"{op} has no argument(s) {unknown}"
    args = {}
    for a in spec.args:
        if a.name in given:
            args[a.name] = given[a.name]
            if a.check is not None and a.type != "tensor" and given[a.name] is not None:
                assert a.check(given[a.name]) is None, (a.name, given[a.name])
        else:
            assert a.default is not REQUIRED, f"{op}: {a.name} is required"
            args[a.name] = a.default
    return spec, OpCall(op, args)


def count(module: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, int]:
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        y = module(x)
    return y, fc.get_total_flops()


def matrices(module: nn.Module) -> int:
    """Entries of the tensors the reference marks as maskable (``masked()``)."""
    return sum(w.numel() for w in module.masked())


def check(op: str, ref: nn.Module, x_shape: tuple[int, ...], **given) -> None:
    spec, c = call(op, x=x_shape, **given)
    torch.manual_seed(0)
    y, flops = count(ref, torch.randn(1, *x_shape))
    assert torch.isfinite(y).all()
    assert spec.shape(c) == tuple(y.shape[1:])
    assert spec.params(c) == sum(p.numel() for p in ref.parameters())
    assert spec.flops(c) == flops
    assert spec.sparse_weights(c) == matrices(ref)


def weights(*layers: nn.Module) -> list[torch.Tensor]:
    return [layer.weight for layer in layers]


# ---- reference modules: dense blocks ---------------------------------------------


class MLP(nn.Module):
    def __init__(self, d, h, out, act="gelu", bias=True):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(d, h, bias), ACTS[act](), nn.Linear(h, out, bias)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))

    def masked(self):
        return weights(self.fc1, self.fc2)


class GLU(nn.Module):
    def __init__(self, d, h, act="silu", bias=True):
        super().__init__()
        self.w1, self.w2 = nn.Linear(d, h, bias), nn.Linear(d, h, bias)
        self.w3, self.act = nn.Linear(h, d, bias), ACTS[act]()

    def forward(self, x):
        return self.w3(self.act(self.w1(x)) * self.w2(x))

    def masked(self):
        return weights(self.w1, self.w2, self.w3)


class Mixer(nn.Module):
    def __init__(self, n, h, bias=True):
        super().__init__()
        self.mlp = MLP(n, h, n, "gelu", bias)

    def forward(self, x):  # [B, n, d]
        return self.mlp(x.transpose(1, 2)).transpose(1, 2)

    def masked(self):
        return self.mlp.masked()


class MoE(nn.Module):
    """Bias-free router; each position runs only its top_k experts, weighted by their
    probabilities under the softmax over all experts (not renormalised)."""

    def __init__(self, d, experts, top_k, h, bias=True):
        super().__init__()
        self.top_k = top_k
        self.router = nn.Linear(d, experts, bias=False)
        self.experts = nn.ModuleList(MLP(d, h, d, "gelu", bias) for _ in range(experts))

    def forward(self, x):
        t = x.reshape(-1, x.shape[-1])
        gate, idx = self.router(t).softmax(-1).topk(self.top_k, dim=-1)
        out = torch.zeros_like(t)
        for e, expert in enumerate(self.experts):
            tok, slot = (idx == e).nonzero(as_tuple=True)
            if tok.numel():
                out.index_add_(0, tok, expert(t[tok]) * gate[tok, slot, None])
        return out.reshape(x.shape)

    def masked(self):
        return [self.router.weight] + [w for e in self.experts for w in e.masked()]


# ---- reference modules: KAN layers -----------------------------------------------


class GroupRational(nn.Module):
    """KAT's unit: P(x) / (1 + sum |b_gi| |x|^i), shared a0..a5, (G, 4) b; Horner, elementwise."""

    def __init__(self, d, groups):
        super().__init__()
        self.groups = groups
        self.a = nn.Parameter(torch.tensor([0.0, 1.0, 0.0, 0.0, 0.0, 0.0]))
        self.b = nn.Parameter(torch.rand(groups, 4) * 0.1)

    def forward(self, x):
        xg = x.reshape(*x.shape[:-1], self.groups, x.shape[-1] // self.groups)
        p = self.a[5]
        for i in range(4, -1, -1):
            p = p * xg + self.a[i]
        b, ax = self.b.abs()[:, None], xg.abs()  # b: [G, 1, 4] -> per-group columns
        q = b[..., 3]
        for i in range(2, -1, -1):
            q = q * ax + b[..., i]
        return (p / (1 + q * ax)).reshape(x.shape)


class RationalKAN(nn.Module):
    def __init__(self, i, o, groups, bias=True):
        super().__init__()
        self.f, self.fc = GroupRational(i, groups), nn.Linear(i, o, bias)

    def forward(self, x):
        return self.fc(self.f(x))

    def masked(self):
        return weights(self.fc)


class BSplineKAN(nn.Module):
    """efficient-KAN: linear(SiLU(x)) + linear(B(x) flattened, spline_weight * scaler)."""

    def __init__(self, i, o, grid, order, bias=True):
        super().__init__()
        self.i, self.o, self.k = i, o, order
        step = 2 / grid
        knots = torch.arange(-order, grid + order + 1) * step - 1
        self.register_buffer("grid", knots.expand(i, -1).contiguous())
        self.base = nn.Linear(i, o, bias)
        self.spline_weight = nn.Parameter(torch.randn(o, i, grid + order) * 0.1)
        self.spline_scaler = nn.Parameter(torch.ones(o, i))

    def b_splines(self, x):  # [N, i] -> [N, i, grid + order], Cox-de Boor
        g, x = self.grid, x.unsqueeze(-1)
        bases = ((x >= g[:, :-1]) & (x < g[:, 1:])).to(x.dtype)
        for p in range(1, self.k + 1):
            bases = ((x - g[:, :-(p + 1)]) / (g[:, p:-1] - g[:, :-(p + 1)]) * bases[..., :-1]
                     + (g[:, p + 1:] - x) / (g[:, p + 1:] - g[:, 1:-p]) * bases[..., 1:])
        return bases

    def forward(self, x):
        t = x.reshape(-1, self.i)
        base = self.base(F.silu(t))
        w = (self.spline_weight * self.spline_scaler.unsqueeze(-1)).view(self.o, -1)
        spline = F.linear(self.b_splines(t).view(t.shape[0], -1), w)
        return (base + spline).reshape(*x.shape[:-1], self.o)

    def masked(self):
        return [self.base.weight, self.spline_weight]


class RBFKAN(nn.Module):
    """FastKAN: LayerNorm -> Gaussian RBFs on [-2, 2] -> bias-free linear, + linear(SiLU(x))."""

    def __init__(self, i, o, grid, bias=True):
        super().__init__()
        self.norm = nn.LayerNorm(i)
        self.register_buffer("centers", torch.linspace(-2, 2, grid))
        self.width = 4 / (grid - 1) if grid > 1 else 1.0
        self.spline = nn.Linear(i * grid, o, bias=False)
        self.base = nn.Linear(i, o, bias)

    def forward(self, x):
        u = (self.norm(x).unsqueeze(-1) - self.centers) / self.width
        return self.spline(torch.exp(-u * u).flatten(-2)) + self.base(F.silu(x))

    def masked(self):
        return weights(self.spline, self.base)


class ReLUKAN(nn.Module):
    """ReLU-KAN: R_m(x) = (relu(e_m - x) relu(x - s_m))^2 16 / (e_m - s_m)^4, m < G + k."""

    def __init__(self, i, o, grid, order, bias=True):
        super().__init__()
        s = (torch.arange(grid + order) - order) / grid
        self.register_buffer("s", s)
        self.register_buffer("e", s + (order + 1) / grid)
        self.r = 16 / ((order + 1) / grid) ** 4
        self.fc = nn.Linear(i * (grid + order), o, bias)

    def forward(self, x):
        x = x.unsqueeze(-1)
        phi = F.relu(self.e - x) * F.relu(x - self.s)
        return self.fc((phi * phi * self.r).flatten(-2))

    def masked(self):
        return weights(self.fc)


def kan_layer(basis, i, o, groups=8, grid=5, order=3, bias=True):
    if basis == "rational":
        return RationalKAN(i, o, groups, bias)
    if basis == "bspline":
        return BSplineKAN(i, o, grid, order, bias)
    if basis == "rbf":
        return RBFKAN(i, o, grid, bias)
    return ReLUKAN(i, o, grid, order, bias)


class KAN(nn.Module):
    def __init__(self, basis, d, out, hidden=None, **kw):
        super().__init__()
        dims = [d, out] if hidden is None else [d, hidden, out]
        self.layers = nn.ModuleList(kan_layer(basis, a, b, **kw) for a, b in pairwise(dims))

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x

    def masked(self):
        return [w for layer in self.layers for w in layer.masked()]


# ---- reference module: attention -------------------------------------------------


class Attention(nn.Module):
    """Multi-head self-attention; see docs/ops.md for each kind and qk mode."""

    def __init__(self, d, heads, kind="softmax", qk="separate", causal=False, bias=True):
        super().__init__()
        self.h, self.dk, self.kind, self.qk, self.causal = heads, d // heads, kind, qk, causal
        dk = self.dk
        if qk == "separate":
            self.wq, self.wk = nn.Linear(d, d, bias), nn.Linear(d, d, bias)
        elif qk == "shared":
            self.wqk = nn.Linear(d, d, bias)
        else:  # symmetric: q = x blockdiag(S_h), S_h symmetric from its upper triangle, k = x
            self.s = nn.Parameter(torch.randn(heads, dk * (dk + 1) // 2) / math.sqrt(dk))
        self.wv, self.wo = nn.Linear(d, d, bias), nn.Linear(d, d, bias)
        if kind == "gla":
            self.g1 = nn.Linear(d, 16, bias=False)
            self.g2 = nn.Linear(16, d, bias)
        elif kind == "hedgehog":
            self.fw = nn.Parameter(torch.eye(dk).repeat(heads, 1, 1))
            self.fb = nn.Parameter(torch.zeros(heads, dk))

    def masked(self):
        if self.qk == "separate":
            mats = weights(self.wq, self.wk)
        elif self.qk == "shared":
            mats = weights(self.wqk)
        else:
            mats = [self.s]
        mats += weights(self.wv, self.wo)
        if self.kind == "gla":
            mats += weights(self.g1, self.g2)
        elif self.kind == "hedgehog":
            mats.append(self.fw)
        return mats

    def split(self, t):  # [B, n, d] -> [B, H, n, dk]
        return t.view(t.shape[0], t.shape[1], self.h, self.dk).transpose(1, 2)

    def forward(self, x):
        bsz, n, d = x.shape
        if self.qk == "separate":
            q, k = self.split(self.wq(x)), self.split(self.wk(x))
        elif self.qk == "shared":  # one bilinear matrix: q = x W_qk, k = x
            q, k = self.split(self.wqk(x)), self.split(x)
        else:
            k = self.split(x)
            full = torch.zeros(self.h, self.dk, self.dk)
            rows, cols = torch.triu_indices(self.dk, self.dk)
            full[:, rows, cols] = self.s
            full = full + full.transpose(-1, -2) - torch.diag_embed(torch.diagonal(full, 0, -2, -1))
            q = k @ full  # 2 n d dk
        v = self.split(self.wv(x))
        if self.kind == "softmax":
            o = self.softmax(q, k, v)
        else:
            o = self.linear(q, k, v, x)
        return self.wo(o.transpose(1, 2).reshape(bsz, n, d))

    def softmax(self, q, k, v):
        a = (q @ k.transpose(-1, -2)) / math.sqrt(self.dk)  # 2 n n dk per head
        if self.causal:
            n = a.shape[-1]
            a = a.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), float("-inf"))
        return a.softmax(-1) @ v  # 2 n n dk per head

    def linear(self, q, k, v, x):
        if self.kind == "hedgehog":  # phi(u) = [exp(u W + b), exp(-u W - b)], per head
            def phi(t):
                u = t @ self.fw + self.fb[:, None, :]  # 2 n dk dk per head
                return torch.cat([u.exp(), (-u).exp()], -1)
        else:
            def phi(t):
                return F.elu(t) + 1
        q, k = phi(q), phi(k)
        if self.kind == "gla":  # per-feature forget gate, log alpha = logsigmoid(low rank) / 16
            g = self.split(F.logsigmoid(self.g2(self.g1(x))) / 16)
            b = g.cumsum(2)
            if self.causal:  # S_t = sum_{j<=t} diag(exp(b_t - b_j)) k_j^T v_j
                q, k = q * b.exp(), k * (-b).exp()
            else:  # every query reads the final state: decays exp(b_n - b_j)
                k = k * (b[:, :, -1:] - b).exp()
        if self.causal:  # running state, outer products and reads as matmuls
            s = (k.unsqueeze(-1) @ v.unsqueeze(-2)).cumsum(2)  # 2 n F dk
            num = (q.unsqueeze(-2) @ s).squeeze(-2)  # 2 n F dk
            den = (q.unsqueeze(-2) @ k.cumsum(2).unsqueeze(-1)).squeeze(-2)  # 2 n F
        else:
            num = q @ (k.transpose(-1, -2) @ v)  # 2 n F dk twice
            den = q @ k.sum(2, keepdim=True).transpose(-1, -2)  # 2 n F
        return num / den


class GLAStep(Attention):
    """Causal gla as the plain recurrence (one step per token): the same FLOPs as above."""

    def linear(self, q, k, v, x):
        assert self.kind == "gla" and self.causal
        q, k = F.elu(q) + 1, F.elu(k) + 1
        alpha = self.split(F.logsigmoid(self.g2(self.g1(x))) / 16).exp()
        bsz, h, n, dk = q.shape
        s, z, out = q.new_zeros(bsz, h, dk, dk), q.new_zeros(bsz, h, dk, 1), []
        for t in range(n):
            a, qt, kt, vt = alpha[:, :, t], q[:, :, t, None], k[:, :, t, None], v[:, :, t, None]
            s = a[..., None] * s + kt.transpose(-1, -2) @ vt
            z = a[..., None] * z + kt.transpose(-1, -2)
            out.append(((qt @ s) / (qt @ z)).squeeze(-2))
        return torch.stack(out, 2)


# ---- reference modules: images -----------------------------------------------------


def same_pad(x, k, stride, value=0.0):
    """TF-style same padding: half before, the rest after, on h and w."""
    pads = []
    for size in (x.shape[-1], x.shape[-2]):
        out = -(-size // stride)
        total = max((out - 1) * stride + k - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads, value=value)


class Conv(nn.Module):
    def __init__(self, c, out, k, stride=1, bias=True):
        super().__init__()
        self.k, self.stride = k, stride
        self.conv = nn.Conv2d(c, out, k, stride, bias=bias)

    def forward(self, x):
        return self.conv(same_pad(x, self.k, self.stride))

    def masked(self):
        return weights(self.conv)


class Pool(nn.Module):
    def __init__(self, kind, k, stride=None):
        super().__init__()
        self.kind, self.k, self.stride = kind, k, k if stride is None else stride

    def forward(self, x):
        if self.kind == "maxpool":
            return F.max_pool2d(same_pad(x, self.k, self.stride, float("-inf")), self.k,
                                self.stride)
        total = F.avg_pool2d(same_pad(x, self.k, self.stride), self.k, self.stride)
        inside = F.avg_pool2d(same_pad(torch.ones_like(x[:, :1]), self.k, self.stride),
                              self.k, self.stride)
        return total / inside  # padding excluded from the average

    def masked(self):
        return []


# ---- tests: against the references -------------------------------------------------


@pytest.mark.parametrize("x, given, dims", [
    ((8, 32), dict(expand=2), (32, 64, 32)),
    ((32,), dict(hidden=48, out=10, bias=False), (32, 48, 10)),
    ((2, 3, 12), dict(act="relu"), (12, 48, 12)),
    ((8, 32), dict(hidden=64, act="silu", bias=False), (32, 64, 32)),
    ((5, 6), dict(expand=3, out=7, act="tanh"), (6, 18, 7)),
])
def test_mlp(x, given, dims):
    check("mlp", MLP(*dims, given.get("act", "gelu"), given.get("bias", True)), x, **given)


@pytest.mark.parametrize("x, hidden, act, bias", [
    ((8, 32), 48, "silu", True), ((16,), 8, "gelu", False), ((2, 3, 8), 5, "relu", True),
])
def test_glu(x, hidden, act, bias):
    check("glu", GLU(x[-1], hidden, act, bias), x, hidden=hidden, act=act, bias=bias)


@pytest.mark.parametrize("x, hidden, bias", [((8, 32), 16, True), ((5, 12), 7, False)])
def test_mixer(x, hidden, bias):
    check("mixer", Mixer(x[0], hidden, bias), x, hidden=hidden, bias=bias)


@pytest.mark.parametrize("x, experts, top_k, hidden, bias", [
    ((8, 32), 4, 2, 16, True), ((16,), 3, 1, 8, False), ((6, 12), 2, 2, 4, True),
    ((2, 4, 8), 5, 3, 6, False),
])
def test_moe(x, experts, top_k, hidden, bias):
    check("moe", MoE(x[-1], experts, top_k, hidden, bias), x,
          experts=experts, top_k=top_k, hidden=hidden, bias=bias)


@pytest.mark.parametrize("basis", ["rational", "bspline", "rbf", "relu"])
@pytest.mark.parametrize("hidden", [None, 24])
@pytest.mark.parametrize("bias", [True, False])
def test_kan(basis, hidden, bias):
    check("kan", KAN(basis, 32, 16, hidden, bias=bias), (8, 32),
          out=16, basis=basis, hidden=hidden, bias=bias)


@pytest.mark.parametrize("x, given", [
    ((16,), dict(out=10, basis="rational", groups=4)),
    ((3, 12), dict(out=5, basis="rational", groups=3, hidden=6)),
    ((16,), dict(out=10, basis="bspline", grid=3, order=2)),
    ((4, 10), dict(out=3, basis="bspline", grid=8, order=1, hidden=7)),
    ((16,), dict(out=10, basis="rbf", grid=8)),
    ((2, 2, 6), dict(out=4, basis="rbf", grid=3, hidden=5)),
    ((16,), dict(out=10, basis="relu", grid=4, order=2)),
    ((4, 10), dict(out=3, basis="relu", grid=2, order=1, hidden=9, bias=False)),
])
def test_kan_settings(x, given):
    kw = {k: given[k] for k in ("groups", "grid", "order", "bias") if k in given}
    ref = KAN(given["basis"], x[-1], given["out"], given.get("hidden"), **kw)
    check("kan", ref, x, **given)


@pytest.mark.parametrize("kind", ["softmax", "linear", "gla", "hedgehog"])
@pytest.mark.parametrize("qk", ["separate", "shared", "symmetric"])
@pytest.mark.parametrize("causal", [False, True])
def test_attention(kind, qk, causal):
    check("attention", Attention(16, 2, kind, qk, causal), (6, 16),
          heads=2, kind=kind, qk=qk, causal=causal)


@pytest.mark.parametrize("x, heads, kind, qk, causal", [
    ((5, 12), 1, "softmax", "symmetric", False), ((5, 12), 4, "linear", "separate", True),
    ((7, 8), 8, "gla", "shared", False), ((3, 24), 3, "hedgehog", "symmetric", True),
    ((4, 12), 6, "softmax", "separate", True),
])
def test_attention_no_bias(x, heads, kind, qk, causal):
    ref = Attention(x[1], heads, kind, qk, causal, bias=False)
    check("attention", ref, x, heads=heads, kind=kind, qk=qk, causal=causal, bias=False)


def test_gla_recurrence_matches_the_parallel_reference():
    torch.manual_seed(1)
    par = Attention(16, 2, "gla", "separate", causal=True)
    rec = GLAStep(16, 2, "gla", "separate", causal=True)
    rec.load_state_dict(par.state_dict())
    x = torch.randn(1, 6, 16)
    (y1, f1), (y2, f2) = count(par, x), count(rec, x)
    torch.testing.assert_close(y1, y2)
    spec, c = call("attention", x=(6, 16), heads=2, kind="gla", causal=True)
    assert f1 == f2 == spec.flops(c)


@pytest.mark.parametrize("causal", [False, True])
def test_softmax_core_counts_like_sdpa_math(causal):
    """The explicit softmax core counts as torch's SDPA formula (math backend); causal is
    not discounted. (On CPU the default SDPA kernel has no FLOP formula: it counts 0.)"""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    q, k, v = (torch.randn(1, 2, 6, 8) for _ in range(3))
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as fc:
        F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    ref = Attention(16, 2, causal=causal)
    with FlopCounterMode(display=False) as mine:
        ref.softmax(q, k, v)
    assert fc.get_total_flops() == mine.get_total_flops() == 4 * 6 * 6 * 16


@pytest.mark.parametrize("x, out, kernel, stride, bias", [
    ((3, 8, 8), 4, 3, 1, True), ((3, 8, 8), 4, 3, 2, True), ((16, 8, 8), 16, 1, 1, False),
    ((3, 7, 5), 2, 4, 3, True), ((2, 3, 3), 3, 5, 1, False), ((1, 9, 6), 2, 2, 2, True),
])
def test_conv(x, out, kernel, stride, bias):
    check("conv", Conv(x[0], out, kernel, stride, bias), x,
          out=out, kernel=kernel, stride=stride, bias=bias)


@pytest.mark.parametrize("kind", ["avgpool", "maxpool"])
@pytest.mark.parametrize("x, k, stride", [
    ((16, 8, 8), 3, 1), ((3, 8, 8), 2, None), ((3, 7, 5), 3, None), ((2, 9, 4), 3, 2),
])
def test_pools(kind, x, k, stride):
    given = {} if stride is None else {"stride": stride}
    check(kind, Pool(kind, k, stride), x, k=k, **given)


# ---- tests: plain numbers ------------------------------------------------------------


def test_numbers_by_hand():
    spec, c = call("mlp", x=(8, 32), expand=2)  # 32 -> 64 -> 32 at 8 tokens
    assert spec.params(c) == 32 * 64 + 64 + 64 * 32 + 32 == 4192
    assert spec.flops(c) == 2 * 8 * (32 * 64 + 64 * 32) == 65536
    spec, c = call("mlp", x=(10,))  # expand defaults to 4
    assert spec.shape(c) == (10,) and spec.params(c) == 10 * 40 + 40 + 40 * 10 + 10
    spec, c = call("moe", x=(4, 8), experts=3, top_k=2, hidden=16, bias=False)
    assert spec.params(c) == 8 * 3 + 3 * (8 * 16 + 16 * 8) == 792
    assert spec.flops(c) == 2 * 4 * 8 * 3 + 2 * (2 * 4 * (8 * 16 + 16 * 8)) == 4288
    spec, c = call("kan", x=(64,), out=64)  # rational, 8 groups
    assert spec.params(c) == 6 + 32 + 64 * 64 + 64 == 4198
    assert spec.flops(c) == 2 * 64 * 64
    spec, c = call("kan", x=(10,), out=4, basis="bspline")  # G + k + 2 = 10
    assert spec.params(c) == 4 * 10 * 10 + 4 and spec.flops(c) == 2 * 10 * 4 * 9
    spec, c = call("attention", x=(10, 16), heads=4)
    assert spec.params(c) == 4 * (16 * 16 + 16) == 1088
    assert spec.flops(c) == 4 * 2 * 10 * 16 * 16 + 4 * 10 * 10 * 16 == 26880
    spec, c = call("conv", x=(16, 8, 8), out=16, kernel=3)
    assert spec.shape(c) == (16, 8, 8)
    assert spec.params(c) == 16 * 16 * 9 + 16
    assert spec.flops(c) == 2 * 16 * 16 * 9 * 64
    spec, c = call("avgpool", x=(16, 8, 8), k=3, stride=1)  # the NAS-Bench-201 edge
    assert spec.shape(c) == (16, 8, 8) and spec.params(c) == spec.flops(c) == 0
    spec, c = call("maxpool", x=(3, 9, 9), k=2)
    assert spec.shape(c) == (3, 5, 5)


# ---- tests: errors ---------------------------------------------------------------------


def raises(op: str, kind: str, arg: str | None, match: str, **given) -> None:
    spec, c = call(op, **given)
    with pytest.raises(OpError, match=match) as err:
        spec.shape(c)
        spec.params(c)
        spec.flops(c)
    assert err.value.kind == kind and err.value.arg == arg


def test_errors():
    raises("attention", "shape", "heads", "does not divide", x=(4, 10), heads=3)
    raises("attention", "shape", "x", r"attention needs a sequence \[n, d\]", x=(16,), heads=2)
    raises("attention", "shape", "x", "attention needs a sequence", x=(2, 4, 4), heads=2)
    raises("kan", "shape", "groups", "does not divide", x=(8, 12), out=4, groups=8)
    raises("kan", "shape", "hidden", "does not divide", x=(8, 16), out=4, groups=8, hidden=12)
    raises("conv", "shape", "x", "needs an image", x=(16,), out=4, kernel=3)
    raises("conv", "shape", "x", "needs an image", x=(4, 16), out=4, kernel=3)
    raises("maxpool", "shape", "x", "needs an image", x=(4, 16), k=2)
    raises("moe", "value", "top_k", "more than", x=(8,), experts=2, top_k=3, hidden=4)
    raises("mlp", "value", "expand", "not both", x=(8,), hidden=4, expand=2)
    raises("mixer", "shape", "x", "needs a sequence", x=(8,), hidden=4)


def test_other_bases_ignore_groups():
    spec, c = call("kan", x=(12,), out=4, basis="rbf", groups=8)
    assert spec.shape(c) == (4,)


def test_moe_flops_check_top_k_too():
    spec, c = call("moe", x=(8,), experts=2, top_k=3, hidden=4)
    with pytest.raises(OpError):
        spec.flops(c)


@pytest.mark.parametrize("op, arg, bad", [
    ("kan", "grid", 0), ("kan", "order", -1), ("kan", "groups", 2.5), ("kan", "hidden", 0),
    ("mlp", "expand", 0), ("mlp", "hidden", True), ("moe", "top_k", 0), ("conv", "stride", 0),
    ("avgpool", "stride", 0), ("attention", "heads", 0), ("glu", "hidden", -3),
])
def test_checks_reject_bad_values(op, arg, bad):
    assert lookup(op).by_name[arg].check(bad) is not None


@pytest.mark.parametrize("op, arg, symbols", [
    ("kan", "basis", {"rational", "bspline", "rbf", "relu"}),
    ("attention", "kind", {"softmax", "linear", "gla", "hedgehog"}),
    ("attention", "qk", {"separate", "shared", "symmetric"}),
    ("mlp", "act", set(ACTS)), ("glu", "act", set(ACTS)),
])
def test_symbols(op, arg, symbols):
    a = lookup(op).by_name[arg]
    assert a.type == "symbol" and set(a.symbols) == symbols and a.default in symbols


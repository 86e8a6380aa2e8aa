"""The group-rational unit: values and all gradients against a float64 reference."""

from __future__ import annotations

import pytest
import torch

from autoarch.kernels import rational


def coefficients(g: int, m: int = 5, n: int = 4, dtype=torch.float64, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(g, m + 1, generator=gen, dtype=dtype) * 0.5
    b = torch.randn(g, n, generator=gen, dtype=dtype) * 0.5  # signs matter: |b| is used
    return a, b


def by_hand(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The formula, element by element (float64): P(x) / (1 + sum |b_i| |x|^i)."""
    g, d = a.shape[0], x.shape[-1]
    out = torch.empty_like(x, dtype=torch.float64)
    flat, res = x.reshape(-1, d).double(), out.view(-1, d)
    for c in range(d):
        grp = c // (d // g)
        v = flat[:, c]
        p = sum(a[grp, i].double() * v**i for i in range(a.shape[1]))
        q = 1 + sum(b[grp, i - 1].double().abs() * v.abs() ** i for i in range(1, b.shape[1] + 1))
        res[:, c] = p / q
    return out


@pytest.mark.parametrize("g", [1, 4, 16])
@pytest.mark.parametrize("impl", ["torch", "fused", "auto"])
def test_values_match_the_formula(g, impl):
    x = torch.randn(5, 3, 16, dtype=torch.float64)
    a, b = coefficients(g)
    torch.testing.assert_close(rational(x, a, b, impl=impl), by_hand(x, a, b))


@pytest.mark.parametrize("g", [1, 2, 8])  # g = d included
def test_fused_gradients_pass_gradcheck_in_float64(g):
    x = torch.randn(4, 8, dtype=torch.float64, requires_grad=True)
    a, b = coefficients(g)
    a.requires_grad_(True)
    b.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda *t: rational(*t, impl="fused"), (x, a, b))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_fused_matches_the_float64_reference_in_every_dtype(dtype):
    x64 = torch.randn(64, 32, dtype=torch.float64) * 2
    a64, b64 = coefficients(4)
    tol = {torch.float32: 1e-4, torch.float16: 2e-2, torch.bfloat16: 5e-2}[dtype]
    x = x64.to(dtype).requires_grad_(True)
    a, b = a64.float().requires_grad_(True), b64.float().requires_grad_(True)
    y = rational(x, a, b, impl="fused")
    assert y.dtype == dtype
    w = torch.randn_like(x64)
    (y.double() * w).sum().backward()
    xr, ar, br = (t.detach().clone().double().requires_grad_(True) for t in (x, a, b))
    ref = rational(xr, ar, br, impl="torch")
    (ref * w).sum().backward()

    def rel(u, v):
        return ((u.double() - v).abs().max() / v.abs().max()).item()

    assert rel(y.detach(), ref.detach()) < tol
    for got, want in ((x.grad, xr.grad), (a.grad, ar.grad), (b.grad, br.grad)):
        assert rel(got, want) < tol


@pytest.mark.parametrize(("d", "g", "m", "n"), [
    (15, 3, 5, 4),  # odd width, odd group count
    (7, 7, 3, 2),  # one channel per group
    (10, 5, 2, 5),  # denominator of higher degree than the numerator
    (6, 2, 0, 1),  # constant numerator: P' = 0
    (9, 1, 4, 0),  # no denominator terms: Q = 1, a polynomial
])
def test_fused_gradients_at_odd_widths_groups_and_orders(d, g, m, n):
    x = torch.randn(3, 5, d, dtype=torch.float64, requires_grad=True)
    a, b = coefficients(g, m, n, seed=d)
    a.requires_grad_(True)
    b.requires_grad_(True)
    torch.testing.assert_close(rational(x, a, b, impl="fused"), by_hand(x, a, b))
    assert torch.autograd.gradcheck(lambda *t: rational(*t, impl="fused"), (x, a, b))


def test_a_numerator_shared_across_groups_gets_the_sum_of_its_groups_gradients():
    """KAT shares one numerator: GroupRational passes it expanded (a stride-0 view)."""
    x = torch.randn(32, 12, dtype=torch.float64)
    shared = torch.randn(6, dtype=torch.float64, requires_grad=True)
    _, b = coefficients(4)
    rational(x, shared.expand(4, -1), b, impl="fused").sum().backward()
    per_group = shared.detach().repeat(4, 1).requires_grad_(True)
    rational(x, per_group, b, impl="torch").sum().backward()
    torch.testing.assert_close(shared.grad, per_group.grad.sum(0))


def test_non_contiguous_input():
    base = torch.randn(16, 10, dtype=torch.float64)
    x = base.t()  # [10, 16], not contiguous
    assert not x.is_contiguous()
    a, b = coefficients(4)
    torch.testing.assert_close(rational(x, a, b, impl="fused"), by_hand(x, a, b))


def test_bad_shapes_and_impls_are_errors():
    a, b = coefficients(3)
    with pytest.raises(ValueError, match="groups"):
        rational(torch.randn(2, 8), a, b)
    with pytest.raises(ValueError, match="unknown impl"):
        rational(torch.randn(2, 9), a, b, impl="cuda")


# ---- fitted coefficients ---------------------------------------------------------------

ACTIVATIONS = {"gelu": (torch.nn.functional.gelu, 0.01), "silu": (torch.nn.functional.silu, 0.01),
               "tanh": (torch.tanh, 0.01), "relu": (torch.relu, 0.05),
               "identity": (lambda t: t, 1e-6)}


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_shipped_fits_approximate_their_activation_on_the_interval(name):
    from autoarch.kernels import fit_rational

    fn, tol = ACTIVATIONS[name]
    num, den = fit_rational(name)
    assert (len(num), len(den)) == (6, 4)
    x = torch.linspace(-3, 3, 2001, dtype=torch.float64)[:, None]
    got = rational(x, torch.tensor([num], dtype=torch.float64),
                   torch.tensor([den], dtype=torch.float64), impl="torch")[:, 0]
    assert (got - fn(x[:, 0])).abs().max().item() <= tol


def test_fitting_other_orders_and_intervals_on_demand():
    from autoarch.kernels import fit_rational

    num, den = fit_rational("tanh", m=3, n=2, lo=-2.0, hi=2.0)
    assert (len(num), len(den)) == (4, 2)
    x = torch.linspace(-2, 2, 501, dtype=torch.float64)[:, None]
    got = rational(x, torch.tensor([num], dtype=torch.float64),
                   torch.tensor([den], dtype=torch.float64), impl="torch")[:, 0]
    assert (got - torch.tanh(x[:, 0])).abs().max().item() < 0.02
    with pytest.raises(ValueError, match="no rational fit"):
        fit_rational("softplusish")


def test_the_compiled_cpu_path_matches_the_reference():
    """torch.compile of the same math (the first compile takes seconds)."""
    x64 = torch.randn(64, 32, dtype=torch.float64)
    a64, b64 = coefficients(4)
    x, a, b = (t.float().requires_grad_(True) for t in (x64, a64, b64))
    y = rational(x, a, b, impl="compiled")
    w = torch.randn(64, 32)
    (y * w).sum().backward()
    xr, ar, br = (t.clone().requires_grad_(True) for t in (x64, a64, b64))
    ref = rational(xr, ar, br, impl="torch")
    (ref * w.double()).sum().backward()
    for got, want in ((y, ref), (x.grad, xr.grad), (a.grad, ar.grad), (b.grad, br.grad)):
        assert ((got.double() - want).abs().max() / want.abs().max()).item() < 1e-4


# ---- gated linear attention ------------------------------------------------------------


def gla_inputs(n: int, seed: int = 0, strong: bool = False):
    gen = torch.Generator().manual_seed(seed)
    q = torch.rand(2, 3, n, 8, generator=gen, dtype=torch.float64) + 0.1
    k = torch.rand(2, 3, n, 8, generator=gen, dtype=torch.float64) + 0.1
    v = torch.randn(2, 3, n, 5, generator=gen, dtype=torch.float64)
    scale = 5.0 if strong else 0.2
    g = -torch.rand(2, 3, n, 8, generator=gen, dtype=torch.float64) * scale
    return q, k, v, g


@pytest.mark.parametrize("normalize", [True, False])
def test_chunked_gla_matches_the_recurrence_with_gradients(normalize):
    from autoarch.kernels import gla

    inputs = gla_inputs(37)  # chunks of 16, 16 and 5
    outs, grads = {}, {}
    for impl in ("torch", "chunked"):
        leaves = [t.clone().requires_grad_(True) for t in inputs]
        y = gla(*leaves, impl=impl, normalize=normalize)
        w = torch.randn(y.shape, generator=torch.Generator().manual_seed(1), dtype=y.dtype)
        (y * w).sum().backward()
        outs[impl], grads[impl] = y.detach(), [t.grad for t in leaves]
    torch.testing.assert_close(outs["chunked"], outs["torch"])
    for got, want in zip(grads["chunked"], grads["torch"], strict=True):
        torch.testing.assert_close(got, want)


def test_chunked_gla_in_float32_is_within_the_tolerance_and_finite_for_strong_decay():
    from autoarch.kernels import gla

    q, k, v, g = (t.float() for t in gla_inputs(300, strong=True))  # log alpha down to -5
    ref = gla(*(t.double() for t in (q, k, v, g)), impl="torch")
    got = gla(q, k, v, g, impl="chunked")
    assert torch.isfinite(got).all()
    rel_rms = ((got.double() - ref).pow(2).mean().sqrt() / ref.pow(2).mean().sqrt()).item()
    assert rel_rms < 5e-3


def test_non_causal_gla_reads_the_final_state_by_definition():
    from autoarch.kernels import gla

    q, k, v, g = gla_inputs(6)
    cum = g.cumsum(-2)
    want = torch.empty(*q.shape[:-1], v.shape[-1], dtype=q.dtype)
    for i in range(6):
        w = [(q[..., i, :] * k[..., j, :] * (cum[..., -1, :] - cum[..., j, :]).exp()).sum(-1)
             for j in range(6)]
        want[..., i, :] = sum(wj[..., None] * v[..., j, :] for j, wj in enumerate(w)) / sum(w)[
            ..., None]
    for impl in ("torch", "chunked"):
        torch.testing.assert_close(gla(q, k, v, g, causal=False, impl=impl), want)
    with pytest.raises(ValueError, match="unknown impl"):
        gla(q, k, v, g, impl="triton-cpu")


def test_auto_on_cpu_never_compiles_whatever_the_shapes():
    """A search meets many shapes (training, evaluation, the last batch, the next
    candidate's width): the CPU path must not compile for any of them."""
    import torch._dynamo

    from autoarch.kernels import rational

    torch._dynamo.reset()
    before = sum(torch._dynamo.utils.counters["stats"].values())
    a, b = torch.randn(4, 6) * 0.3, torch.randn(4, 4) * 0.3
    for shape in ((64, 8, 32), (1024, 8, 32), (7, 8, 32), (300, 256)):
        x = torch.randn(*shape, requires_grad=True)
        rational(x, a, b).sum().backward()
        assert x.grad is not None and torch.isfinite(x.grad).all()
    assert sum(torch._dynamo.utils.counters["stats"].values()) == before

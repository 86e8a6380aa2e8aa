"""Init schemes: each against its formula, signal propagation through depth, muP's coordinate check."""

from __future__ import annotations

import copy
import math
from textwrap import dedent

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

import autoarch
from autoarch.backends.torch.init import (
    apply_init,
    mup_lr_scales,
    mup_param_groups,
    second_moment,
    variance_preserving_,
)
from autoarch.compiler.values import SymbolCall


def compile_model(body: str, in_shape: str, out_shape: str, choices: dict | None = None,
                  seed: int = 0) -> nn.Module:
    spec = autoarch.loads(dedent(f"""
        model m(x: {in_shape}) -> {out_shape} {{
        {dedent(body)}
        }}
    """), "init.spec")
    return autoarch.compile(spec, choices or {}, seed=seed)


def linears(model: nn.Module) -> list[nn.Linear]:
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


def deep(init: str, act: str, width: int, depth: int = 16) -> str:
    return f"""
        with init = {init} {{
          h = x
          repeat {depth} {{ h = {act}(linear(h, {width})) }}
        }}
        return h
    """


def run_deep(init: str, act: str, width: int, batch: int, seed: int = 0) -> tuple[float, float]:
    """(mean, second moment) of the last layer's activations for x ~ N(0, 1)."""
    model = compile_model(deep(init, act, width), f"[{width}]", f"[{width}]", seed=seed)
    x = torch.randn(batch, width, generator=torch.Generator().manual_seed(1000 + seed))
    with torch.no_grad():
        h = model(x)
    return h.mean().item(), (h.square().mean() / x.square().mean()).item()


# ---- signal propagation through 16 layers -------------------------------------------


def test_lecun_selu_keeps_unit_variance_through_16_layers():
    mean, m2 = run_deep("lecun", "selu", 256, 2048)
    assert abs(mean) < 0.1
    assert 0.7 < m2 - mean**2 < 1.3
    # too small an init collapses the signal: the check above can fail
    mean, m2 = run_deep("normal(0.01)", "selu", 256, 2048)
    assert m2 - mean**2 < 1e-6


def test_kaiming_relu_keeps_the_second_moment_through_16_layers():
    # E[h^2] is preserved in expectation over the init; a single finite-width ReLU net
    # drifts log-normally (Hanin & Rolnick 2018), so average a few independent nets.
    ratios = [run_deep("kaiming", "relu", 512, 512, seed=s)[1] for s in range(4)]
    assert 0.5 < sum(ratios) / len(ratios) < 2, ratios
    # xavier halves E[h^2] at every relu layer, normal(0.01) shrinks it ~40x
    assert run_deep("xavier", "relu", 512, 512)[1] < 1e-3
    assert run_deep("normal(0.01)", "relu", 512, 512)[1] < 1e-6


# ---- each scheme against its formula -------------------------------------------------


def _std(expected):
    def check(w: torch.Tensor) -> None:
        assert w.mean().abs().item() < 0.05 * expected
        assert w.std().item() == pytest.approx(expected, rel=0.03)
    return check


def _xavier(fan_in: int, fan_out: int):
    bound = math.sqrt(6 / (fan_in + fan_out))

    def check(w: torch.Tensor) -> None:
        assert w.abs().max().item() <= bound
        assert w.abs().max().item() > 0.99 * bound
        assert w.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.03)
    return check


def _orthogonal(w: torch.Tensor) -> None:
    small = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
    assert torch.allclose(small, torch.eye(small.shape[0]), atol=1e-4)


def _zeros(w: torch.Tensor) -> None:
    assert not w.any()


SCHEMES = [
    ("lecun", 512, _std(1 / math.sqrt(512))),
    ("kaiming", 512, _std(math.sqrt(2 / 512))),
    ("kaiming", 128, _std(math.sqrt(2 / 512))),  # fan_in, not fan_out
    ("xavier", 512, _xavier(512, 512)),
    ("xavier", 128, _xavier(512, 128)),
    ("orthogonal", 512, _orthogonal),
    ("orthogonal", 128, _orthogonal),
    ("zeros", 512, _zeros),
    ("normal(0.02)", 512, _std(0.02)),
    ("normal(std = 0.5)", 512, _std(0.5)),
]


@pytest.mark.parametrize("init,out,check", SCHEMES, ids=[f"{i}-{o}" for i, o, _ in SCHEMES])
def test_scheme_matches_its_formula(init, out, check):
    model = compile_model(f"return linear(x, {out}, init = {init})", "[512]", f"[{out}]")
    (layer,) = linears(model)
    assert layer.weight.shape == (out, 512)
    check(layer.weight.detach())
    assert not layer.bias.any()
    # seeded: the same seed gives the same weights
    again = compile_model(f"return linear(x, {out}, init = {init})", "[512]", f"[{out}]")
    assert torch.equal(layer.weight, linears(again)[0].weight)


def test_without_init_the_layer_keeps_torchs_default():
    (layer,) = linears(compile_model("return linear(x, 512)", "[512]", "[512]"))
    # nn.Linear's own: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias
    assert layer.weight.std().item() == pytest.approx(1 / math.sqrt(3 * 512), rel=0.03)
    assert layer.bias.any()


def test_init_reaches_conv_weights():
    model = compile_model("return conv(x, 64, 3, init = lecun)", "[64, 8, 8]", "[64, 8, 8]")
    (conv,) = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    _std(1 / math.sqrt(64 * 3 * 3))(conv.weight.detach())  # fan_in = channels x kernel
    assert not conv.bias.any()
    model = compile_model("return conv(x, 64, 3, init = orthogonal)", "[64, 8, 8]",
                          "[64, 8, 8]")
    (conv,) = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    _orthogonal(conv.weight.detach().flatten(1))


@pytest.mark.parametrize("expr,shape,n", [
    ("mlp(x, hidden = 512, out = 256, init = kaiming)", "[256]", 2),
    ("glu(x, 512, init = kaiming)", "[7, 256]", 3),
    ("mixer(x, 256, init = kaiming)", "[128, 16]", 2),
])
def test_init_reaches_every_linear_of_a_block(expr, shape, n):
    model = compile_model(f"return {expr}", shape, shape)
    layers = linears(model)
    assert len(layers) == n
    for layer in layers:
        _std(math.sqrt(2 / layer.in_features))(layer.weight.detach())
        assert not layer.bias.any()


@pytest.mark.parametrize("choice", ["kaiming", "xavier"])
def test_with_region_gives_its_init_to_every_parametric_op_inside(choice):
    body = """
        with init = choice(kaiming, xavier) {
          h = relu(linear(x, 256))
          h = mlp(h, hidden = 512, out = 256)
          h = glu(layernorm(h), 512)
        }
        return linear(h, 10)
    """
    model = compile_model(body, "[128]", "[10]", {"m.init": choice})
    *inside, outside = linears(model)
    assert len(inside) == 1 + 2 + 3
    for layer in inside:
        if choice == "kaiming":
            _std(math.sqrt(2 / layer.in_features))(layer.weight.detach())
        else:
            _xavier(layer.in_features, layer.out_features)(layer.weight.detach())
        assert not layer.bias.any()
    assert outside.out_features == 10 and outside.bias.any()  # outside the region: default


# ---- errors and the variance-preserving pieces -----------------------------------------


def test_unknown_init_is_a_value_error():
    with pytest.raises(ValueError, match="unknown init"):
        apply_init(nn.Linear(4, 4), "he")
    with pytest.raises(ValueError, match="unknown init"):
        apply_init(nn.Linear(4, 4), SymbolCall("uniform", (0.1,)))
    with pytest.raises(ValueError, match="positive"):
        apply_init(nn.Linear(4, 4), SymbolCall("mup", (), (("base", 0),)))


def test_variance_preserving_without_a_rational_before_is_lecun():
    layer = nn.Linear(512, 512)
    apply_init(layer, "variance_preserving")
    assert layer.weight.std().item() == pytest.approx((1 / 512) ** 0.5, rel=0.03)
    assert not layer.bias.any()
    apply_init(nn.LayerNorm(4), "variance_preserving")  # nothing to initialise: fine


def test_variance_preserving_gain_matches_kats():
    assert second_moment(lambda x: x) == pytest.approx(1.0, abs=1e-9)
    assert 1 / second_moment(F.gelu) == pytest.approx(2.35, abs=0.01)
    assert 1 / second_moment(F.silu) == pytest.approx(2.81, abs=0.01)
    w = torch.empty(512, 512)
    variance_preserving_(w, F.gelu)
    _std(math.sqrt(1 / second_moment(F.gelu) / 512))(w)


# ---- muP -------------------------------------------------------------------------------------

MUP_SPEC = """
model m(x: [32]) -> [1] {{
  let width = choice(64, 256, 1024)
  with init = {init} {{
    h = relu(linear(x, width))
    h = relu(linear(h, width))
    y = linear(h, 1)
  }}
  return y
}}
"""


def test_mup_records_learning_rate_multipliers():
    spec = autoarch.loads(MUP_SPEC.format(init="mup(base = 64)"), "mup.spec")
    model = autoarch.compile(spec, {"m.width": 1024}, seed=0)
    first, hidden, readout = linears(model)
    assert [layer.weight.mup_role for layer in (first, hidden, readout)] == [
        "input", "hidden", "output"]
    assert first.weight.mup_lr_scale == 1.0  # fan_in 32 is not a width
    assert hidden.weight.mup_lr_scale == readout.weight.mup_lr_scale == 64 / 1024
    assert all(layer.bias.mup_lr_scale == 1.0 and not layer.bias.any()
               for layer in (first, hidden, readout))
    _std(1 / math.sqrt(32))(first.weight.detach())
    _std(1 / math.sqrt(1024))(hidden.weight.detach())
    # readout: variance 1 / fan_in^2 (table 3), equal to LeCun's at the base width
    assert readout.weight.std().item() == pytest.approx(math.sqrt(64) / 1024, rel=0.15)
    # the multipliers survive a deepcopy (a Parameter's attributes do not)
    clone = copy.deepcopy(model)
    assert sorted(s for _, s in mup_lr_scales(clone)) == sorted(
        s for _, s in mup_lr_scales(model))
    groups = mup_param_groups(clone, lr=1e-3, weight_decay=0.01)
    assert [(g["lr"], len(g["params"])) for g in groups] == [(1e-3 * 64 / 1024, 2),
                                                            (1e-3, 4)]
    assert groups[0]["weight_decay"] == pytest.approx(0.01 * 1024 / 64)


def coordinate_check(init: str, mup: bool, widths=(64, 256, 1024), steps: int = 5,
                     lr: float = 1e-2) -> dict[int, tuple[float, float]]:
    """Per width: RMS change of the second hidden layer's and of the output's activations
    after ``steps`` Adam steps on a fixed regression batch."""
    spec = autoarch.loads(MUP_SPEC.format(init=init), "mup.spec")
    g = torch.Generator().manual_seed(0)
    x, target = torch.randn(128, 32, generator=g), torch.randn(128, 1, generator=g)
    out = {}
    for width in widths:
        model = autoarch.compile(spec, {"m.width": width}, seed=0)
        hidden = linears(model)[1]
        seen: dict[str, torch.Tensor] = {}
        hidden.register_forward_hook(lambda m, i, o, seen=seen: seen.__setitem__("h", o.detach()))
        with torch.no_grad():
            y0 = model(x)
        h0 = seen["h"]
        groups = (mup_param_groups(model, lr) if mup
                  else [{"params": list(model.parameters()), "lr": lr}])
        opt = torch.optim.Adam(groups)
        for _ in range(steps):
            opt.zero_grad()
            F.mse_loss(model(x), target).backward()
            opt.step()
        with torch.no_grad():
            y = model(x)
        rms = lambda d: d.square().mean().sqrt().item()  # noqa: E731
        out[width] = (rms(seen["h"] - h0), rms(y - y0))
    return out


def _spread(values) -> float:
    return max(values) / min(values)


def test_mup_coordinate_check():
    mup = coordinate_check("mup(base = 64)", mup=True)
    # muP: the hidden features and the output move by the same amount at every width
    assert _spread([h for h, _ in mup.values()]) < 2, mup
    assert _spread([y for _, y in mup.values()]) < 2, mup
    # ... with no upward trend (a readout initialised like a hidden layer gives 1.8x here)
    assert mup[1024][1] < 1.4 * mup[64][1], mup
    # standard init and one learning rate: the hidden change grows with width
    for init in ("kaiming", "mup(base = 64)"):  # the second: muP's init without its multipliers
        sp = coordinate_check(init, mup=False)
        hidden = [sp[w][0] for w in (64, 256, 1024)]
        assert hidden[0] < hidden[1] < hidden[2] and hidden[2] > 4 * hidden[0], (init, sp)

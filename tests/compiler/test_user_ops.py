"""Ops users register from Python (``autoarch.op``): arguments, errors, costs, lowering.

Costs are checked against the classes themselves, built by hand: ``sum(p.numel())``
of an instance and ``FlopCounterMode`` running it on a real example, not the
registry's own count. The classes are registered per test (the ``user_ops``
fixture) and the registry restored after, so no other test sees them.
"""

from __future__ import annotations

import math
import sys
from textwrap import dedent
from typing import Literal

import cloudpickle
import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.utils.flop_counter import FlopCounterMode

import autoarch
from autoarch.compiler.ops import registry, user
from autoarch.dsl.errors import (
    CandidateError,
    ShapeError,
    SpecError,
    SpecNameError,
    SpecTypeError,
    SpecValueError,
)


class GatedLinear(nn.Module):
    """[..., d] -> [..., out]: a GLU-style gated linear layer."""

    def __init__(self, x: autoarch.Shape, out: int,
                 act: Literal["sigmoid", "silu"] = "sigmoid", bias: bool = True):
        super().__init__()
        self.value = nn.Linear(x[-1], out, bias=bias)
        self.gate = nn.Linear(x[-1], out, bias=bias)
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(self.gate(x)) if self.act == "sigmoid" else nn.functional.silu(
            self.gate(x))
        return self.value(x) * gate


def gated_shape(x, out, **_):
    return (*x[:-1], out)


class Heads(nn.Module):
    """[n, d] -> [n, d]: per-head linear maps (Literal ints, a list argument)."""

    def __init__(self, x: autoarch.Shape, heads: Literal[1, 2, 4] = 2,
                 sizes: list[int] | None = None):
        super().__init__()
        self.heads = heads
        self.maps = nn.ModuleList(nn.Linear(x[-1] // heads, x[-1] // heads)
                                  for _ in range(heads))
        self.sizes = sizes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = x.chunk(self.heads, dim=-1)
        return torch.cat([m(p) for m, p in zip(self.maps, parts, strict=True)], dim=-1)


def heads_shape(x, heads, **_):
    if x[-1] % heads:
        raise ValueError(f"width {x[-1]} is not divisible by heads = {heads}")
    return x


class Bilinear(nn.Module):
    """Two tensor inputs: out = W [x; y]."""

    def __init__(self, x: autoarch.Shape, y: autoarch.Shape, out: int):
        super().__init__()
        self.proj = nn.Linear(x[-1] + y[-1], out)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.proj(torch.cat([x, y], dim=-1))


class DataDependent(nn.Module):
    """A forward that needs real values (``.item()``): meta cannot run it."""

    def __init__(self, x: autoarch.Shape, out: int):
        super().__init__()
        self.fc = nn.Linear(x[-1], out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = 1.0 if x.abs().sum().item() >= 0 else 2.0
        return self.fc(x) * scale


class OwnInit(nn.Module):
    """An op whose own signature has `init`: the argument is the op's, not autoarch's."""

    def __init__(self, x: autoarch.Shape, init: Literal["ones", "twos"] = "ones"):
        super().__init__()
        self.fc = nn.Linear(x[-1], x[-1])
        nn.init.constant_(self.fc.weight, 1.0 if init == "ones" else 2.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


@pytest.fixture
def user_ops(monkeypatch):
    """A registry of its own for the test: user ops registered in it vanish after."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(user, "_DEFINITIONS", dict(user._DEFINITIONS))
    import autoarch.backends.torch  # noqa: F401  (the user ops' lowering)


@pytest.fixture
def gated(user_ops):
    autoarch.op(shape=gated_shape,
                checks={"out": lambda v: None if v % 2 == 0 else "must be even"})(GatedLinear)
    autoarch.op(shape=heads_shape)(Heads)


def spec_of(body: str, shape: str = "[6, 8]", out: str = "[6, 4]", tail: str = ""):
    text = f"model m(x: {shape}) -> {out} {{\n{body}\n}}\n{tail}"
    return autoarch.loads(text, "user.spec")


def only_node(graph, op: str) -> dict:
    nodes = [d for _, d in graph.nx.nodes(data=True) if d["op"] == op]
    assert len(nodes) == 1
    return nodes[0]


# ---- costs ------------------------------------------------------------------


def test_costs_without_formulas_are_counted_from_the_class(gated):
    graph = spec_of("  return gated_linear(x, 4, act = silu)").build({})
    node = only_node(graph, "gated_linear")
    ref = GatedLinear((6, 8), 4, act="silu")
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        ref(torch.randn(1, 6, 8))
    assert node["params"] == sum(p.numel() for p in ref.parameters()) == 2 * (8 * 4 + 4)
    assert node["flops"] == fc.get_total_flops() == 2 * 2 * 6 * 8 * 4
    assert node["sparse_weights"] == 2 * 8 * 4  # the two Linear weights
    assert graph.params == node["params"] and graph.flops == node["flops"]


def test_formulas_when_given_are_used(user_ops):
    autoarch.op(shape=gated_shape, params=lambda x, out, **_: 1234,
                flops=lambda x, out, **_: 99 * out, name="formula_linear")(GatedLinear)
    node = only_node(spec_of("  return formula_linear(x, 4)").build({}), "formula_linear")
    assert (node["params"], node["flops"]) == (1234, 99 * 4)


def test_a_forward_meta_cannot_run_is_counted_on_cpu(user_ops):
    autoarch.op(shape=gated_shape)(DataDependent)
    node = only_node(spec_of("  return data_dependent(x, 4)").build({}), "data_dependent")
    ref = DataDependent((6, 8), 4)
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        ref(torch.randn(1, 6, 8))
    assert node["params"] == sum(p.numel() for p in ref.parameters())
    assert node["flops"] == fc.get_total_flops() > 0


def test_two_tensor_inputs_in_signature_order(user_ops):
    autoarch.op(shape=lambda x, y, out: (*x[:-1], out))(Bilinear)
    spec = spec_of("  y = linear(x, 3)\n  return bilinear(x, y, 4)")
    node = only_node(spec.build({}), "bilinear")
    assert node["in_shapes"] == ((6, 8), (6, 3))
    assert node["params"] == (8 + 3) * 4 + 4
    model = autoarch.compile(spec, {}, seed=0)
    assert model(torch.randn(2, 6, 8)).shape == (2, 6, 4)


# ---- arguments and located errors ------------------------------------------


def error_at(cls, body: str, marker: str, *, build: bool = False) -> SpecError:
    """The error of a spec whose body line holds ``marker``: checked at its column."""
    with pytest.raises(cls) as info:
        spec = spec_of(body)
        if build:
            spec.build({})
    err = info.value
    line = next(i for i, text in enumerate(body.splitlines()) if marker in text)
    assert (err.line, err.column) == (line + 2, body.splitlines()[line].index(marker) + 1), \
        err.format()
    assert "^" in err.with_source(err.source or "").format()
    return err


@pytest.mark.parametrize(("cls", "body", "marker", "words"), [
    (SpecTypeError, "  return gated_linear(x, 1.5)", "1.5", "must be an integer"),
    (SpecNameError, "  return gated_linear(x, 4, act = sigmod)", "sigmod", "'sigmoid'"),
    (SpecValueError, "  return gated_linear(x, 3)", "3)", "must be even"),
    (SpecTypeError, "  return gated_linear(x)", "gated_linear", "missing argument 'out'"),
    (SpecNameError, "  return gated_linear(x, 4, outt = 2)", "outt", "'out'"),
    (SpecTypeError, "  return gated_linear(x, 4, sigmoid, true, xavier, 0.0, false, 9)", "9)",
     "at most 7 positional"),
    (SpecValueError, "  return heads(x, 3)", "3)", "must be one of 1, 2, 4"),
    (SpecTypeError, "  return gated_linear(x, 4, bias = 1)", "1)", "true or false"),
])
def test_bad_arguments_are_located(gated, cls, body, marker, words):
    err = error_at(cls, body, marker, build=True)
    assert words in err.format()


def test_a_shape_rule_saying_no_makes_the_candidate_invalid_at_the_call(gated):
    err = error_at(ShapeError, "  h = linear(x, 6)\n  return linear(heads(h, 4), 4)", "heads",
                   build=True)
    assert "width 6 is not divisible by heads = 4" in err.message


def test_an_op_error_points_at_its_argument(user_ops):
    def shape(x, out, **_):
        raise autoarch.OpError("out is too wide here", arg="out")

    autoarch.op(shape=shape, name="picky")(GatedLinear)
    err = error_at(ShapeError, "  return picky(x, 4)", "4)", build=True)
    assert err.message == "out is too wide here"


@pytest.mark.parametrize("rule", ["shape", "params", "flops"])
def test_a_rule_with_a_bug_is_a_located_spec_error_naming_op_and_rule(user_ops, rule):
    rules = {"shape": gated_shape, rule: lambda **kw: kw["nonexistent"] + 1}
    if rule == "shape":
        rules[rule] = lambda x, out, **_: x + out  # TypeError: tuple + int
    autoarch.op(**rules, name="buggy")(GatedLinear)
    err = error_at(SpecError, "  return buggy(x, 4)", "buggy", build=True)
    assert not isinstance(err, CandidateError)
    assert f"the {rule} rule of op 'buggy'" in err.message
    assert ("TypeError" if rule == "shape" else "KeyError") in err.message


def test_a_check_that_raises_is_a_located_error(user_ops):
    autoarch.op(shape=gated_shape, checks={"out": lambda v: 1 / 0}, name="bad_check")(
        GatedLinear)
    err = error_at(SpecValueError, "  return bad_check(x, 4)", "4)", build=True)
    assert "ZeroDivisionError" in err.message


def test_a_module_disagreeing_with_its_shape_rule_is_an_error(user_ops):
    autoarch.op(shape=lambda x, out, **_: (*x[:-1], out + 1), name="liar")(GatedLinear)
    err = error_at(SpecError, "  return liar(x, 3)", "liar", build=True)
    assert "[6, 3]" in err.message and "[6, 4]" in err.message


# ---- compile, train, init, frozen, constraints, hash ------------------------


def test_compiles_and_trains_a_step(gated):
    spec = spec_of("  h = gated_linear(x, 16)\n  return gated_linear(h, 4, act = silu)")
    graph = spec.build({})
    model = autoarch.compile(spec, {}, seed=0)
    assert sum(p.numel() for p in model.parameters()) == graph.params
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(8, 6, 8), torch.randn(8, 6, 4)
    before = [p.detach().clone() for p in model.parameters()]
    loss = nn.functional.mse_loss(model(x), y)
    loss.backward()
    opt.step()
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert nn.functional.mse_loss(model(x), y) < loss


def test_init_sparsity_and_frozen_apply(gated):
    spec = spec_of("  with init = zeros {\n    h = gated_linear(x, 16, frozen = true)\n  }\n"
                   "  return gated_linear(h, 4, sparsity = 0.5)")
    graph = spec.build({})
    model = autoarch.compile(spec, {}, seed=0)
    first, second = model.gated_linear, model.gated_linear_2
    assert all((p == 0).all() for p in first.parameters())  # zeros: weights and biases
    assert not any(p.requires_grad for p in first.parameters())
    frozen = sum(p.numel() for p in first.parameters())
    assert graph.trainable_params == graph.params - frozen
    assert all(parametrize.is_parametrized(m, "weight") for m in (second.value, second.gate))
    zeros = sum(int((m.weight == 0).sum()) for m in (second.value, second.gate))
    assert zeros == math.floor(0.5 * 2 * 16 * 4)
    assert graph.nonzero_params == graph.params - zeros


def test_an_own_argument_named_like_a_common_one_is_the_ops(user_ops):
    autoarch.op(shape=lambda x, **_: x)(OwnInit)
    spec = spec_of("  return own_init(x, init = twos)", out="[6, 8]")
    assert [a.name for a in registry.get("own_init").args] == ["x", "init", "sparsity",
                                                               "frozen"]
    model = autoarch.compile(spec, {}, seed=0)
    assert (model.own_init.fc.weight == 2).all()  # the class's own init, not autoarch's


def test_constraints_see_the_ops_params(gated):
    spec = autoarch.loads(dedent("""\
        model m(x: [8]) -> [4] {
          h = gated_linear(x, choice(4, 16))
          return linear(h, 4, bias = false)
        }
        search { strategy = random  trials = 1  constraint params <= 300 }
        """), "c.spec")
    small, big = spec.build({"m.h": 4}), spec.build({"m.h": 16})
    assert small.params == 2 * (8 * 4 + 4) + 4 * 4 <= 300 < big.params == 2 * (8 * 16 + 16) + 64
    assert spec.violated_constraints(small) == []
    assert spec.violated_constraints(big) == ["params <= 300"]


def test_hash_differs_with_the_arguments(gated):
    def h(args: str) -> str:
        return spec_of(f"  return gated_linear(x, 4{args})").build({}).hash

    assert h(", act = silu") != h(", act = sigmoid") == h("") != h(", bias = false")


def test_supernet_gives_each_alternative_its_own_module(gated):
    spec = autoarch.loads(dedent("""\
        model m(x: [6, 8]) -> [6, 4] {
          h = choice(a: gated_linear(x, 16), b: gated_linear(x, 8, act = silu))
          h = gated_linear(h, choice(4, 8))
          return linear(h, 4)
        }
        """), "s.spec")
    net = autoarch.supernet(spec)
    for choices in spec.space().enumerate():
        extracted = net.extract(choices)
        compiled = autoarch.compile(spec, choices, seed=0)
        x = torch.randn(2, 6, 8)
        assert extracted(x).shape == compiled(x).shape == (2, 6, 4)
        count = sum(p.numel() for p in extracted.parameters())
        assert count == sum(p.numel() for p in compiled.parameters()), choices


# ---- registration -----------------------------------------------------------


def test_the_name_defaults_to_snake_case_and_the_class_is_returned(user_ops):
    assert autoarch.op(shape=gated_shape)(GatedLinear) is GatedLinear
    spec = registry.get("gated_linear")
    assert spec.plugin == __name__ and spec.doc == GatedLinear.__doc__.splitlines()[0]
    assert [(a.name, a.type, a.default) for a in spec.args[:4]] == [
        ("x", "tensor", registry.REQUIRED), ("out", "int", registry.REQUIRED),
        ("act", "symbol", "sigmoid"), ("bias", "bool", True)]
    assert "bias" not in {a.name for a in spec.args[4:]}  # only the class's own bias
    autoarch.op(shape=gated_shape)(GatedLinear)  # the same class again: a no-op
    assert registry.get("gated_linear") is spec


def _cls(init_source: str) -> type:
    scope: dict = {"autoarch": autoarch, "nn": nn, "Literal": Literal}
    exec(dedent(f"""\
        class Bad(nn.Module):
            def __init__(self, {init_source}):
                super().__init__()
            def forward(self, x):
                return x
        """), scope)
    return scope["Bad"]


@pytest.mark.parametrize(("init", "error", "words"), [
    ("x: autoarch.Shape, out", TypeError, "parameter 'out' of __init__ has no annotation"),
    ("x: autoarch.Shape, out: dict", TypeError, "parameter 'out' of __init__ is annotated dict"),
    ("x: autoarch.Shape, *rest: int", TypeError, "parameter 'rest' of __init__ is *rest"),
    ("x: autoarch.Shape, **kw: int", TypeError, "parameter 'kw' of __init__ is **kw"),
    ("out: int", TypeError, "no tensor input"),
    ("x: autoarch.Shape, act: Literal['a', 'b'] = 'c'", TypeError, "default 'c'"),
    ("x: autoarch.Shape, mixed: Literal[1, 'a'] = 1", TypeError, "parameter 'mixed'"),
])
def test_registration_errors_name_the_class_and_parameter(user_ops, init, error, words):
    with pytest.raises(error, match="Bad") as info:
        autoarch.op(shape=lambda x, **_: x)(_cls(init))
    assert words in str(info.value)


def test_registration_name_clashes(user_ops):
    with pytest.raises(ValueError, match="'linear' is a built-in op"):
        autoarch.op(shape=gated_shape, name="linear")(GatedLinear)
    with pytest.raises(ValueError, match="'choice' is a word of the spec language"):
        autoarch.op(shape=gated_shape, name="choice")(GatedLinear)
    with pytest.raises(ValueError, match="checks= names 'nope'"):
        autoarch.op(shape=gated_shape, checks={"nope": lambda v: None})(GatedLinear)
    autoarch.op(shape=gated_shape, name="mine")(GatedLinear)
    with pytest.raises(ValueError, match="op 'mine' is already GatedLinear"):
        autoarch.op(shape=heads_shape, name="mine")(Heads)


def test_user_ops_travel_to_another_process_by_cloudpickle(gated):
    payload = cloudpickle.dumps(user.user_ops())
    assert sorted(d.name for d in user.user_ops()) == ["gated_linear", "heads"]
    registry.unregister("heads")  # as in a fresh worker: one op missing
    user.ensure_registered(cloudpickle.loads(payload))
    node = only_node(spec_of("  return heads(x, 4)", out="[6, 8]").build({}), "heads")
    assert node["params"] == 4 * (2 * 2 + 2)
    spec = registry.get("gated_linear")
    user.ensure_registered(cloudpickle.loads(payload))  # registered already: no-op
    assert registry.get("gated_linear") is spec


def test_ops_stay_out_of_the_registry_after_the_test():
    assert registry.get("gated_linear") is None and registry.get("heads") is None


def test_a_plugin_file_travels_as_its_path(user_ops, tmp_path):
    from autoarch.compiler import plugins

    name = "user_ops_plugin_file_test"
    path = tmp_path / f"{name}.py"
    path.write_text(dedent("""\
        import autoarch
        from torch import nn

        @autoarch.op(shape=lambda x, **_: x)
        class FileOp(nn.Module):
            def __init__(self, x: autoarch.Shape):
                super().__init__()
                self.fc = nn.Linear(x[-1], x[-1])

            def forward(self, x):
                return self.fc(x)
        """))
    try:
        autoarch.load_plugins(str(path))
        autoarch.load_plugins(str(path))  # loaded already: nothing happens
        (d,) = user.user_ops()
        assert d.path == str(path.resolve()) and registry.get("file_op").plugin == name
        # a worker that has not loaded the file loads it from the path when unpickling
        payload = cloudpickle.dumps([d])
        registry.unregister("file_op")
        sys.modules.pop(name)
        (again,) = cloudpickle.loads(payload)
        user.ensure_registered([again])
        assert registry.get("file_op") is again.spec and again.path == d.path
        assert again.cls is not d.cls and sys.modules[name].FileOp is again.cls
    finally:
        sys.modules.pop(name, None)
        plugins.PATH_MODULES.pop(name, None)

"""Core ops (linear, norms, activations, shape ops) against torch, and the registry contract."""

from __future__ import annotations

from textwrap import dedent

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import autoarch
from autoarch.compiler import ops
from autoarch.compiler.ops import OpSpec, lookup, register


def build_one(expr: str, in_shape: list[int], out_shape: list[int]) -> dict:
    """Build `return <expr>` on input x and return the attributes of the op node."""
    spec = autoarch.loads(dedent(f"""
        model m(x: {in_shape}) -> {out_shape} {{
          return {expr}
        }}
    """), "op.spec")
    g = spec.build({})
    nodes = [n for _, n in g.nx.nodes(data=True) if n["op"] not in ("input", "output")]
    assert len(nodes) == 1, [n["op"] for n in nodes]
    return nodes[0]


def reference(module: nn.Module, in_shape: list[int]) -> tuple[int, int, tuple[int, ...]]:
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        y = module(torch.randn(2, *in_shape))
    return sum(p.numel() for p in module.parameters()), fc.get_total_flops() // 2, tuple(
        y.shape[1:])


class Lambda(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


class LastAxisBatchNorm(nn.Module):
    """BatchNorm over the feature axis of a sequence [b, n, d]."""

    def __init__(self, d: int):
        super().__init__()
        self.bn = nn.BatchNorm1d(d)

    def forward(self, x):
        return self.bn(x.transpose(1, 2)).transpose(1, 2)


CASES = [
    ("linear(x, 24)", [16], [24], nn.Linear(16, 24)),
    ("linear(x, 24, bias = false)", [5, 16], [5, 24], nn.Linear(16, 24, bias=False)),
    ("linear(x, 8)", [3, 4, 16], [3, 4, 8], nn.Linear(16, 8)),
    ("layernorm(x)", [7, 16], [7, 16], nn.LayerNorm(16)),
    ("rmsnorm(x)", [7, 16], [7, 16], nn.RMSNorm(16)),
    ("batchnorm(x)", [16], [16], nn.BatchNorm1d(16)),
    ("batchnorm(x)", [7, 16], [7, 16], LastAxisBatchNorm(16)),
    ("batchnorm(x)", [4, 6, 6], [4, 6, 6], nn.BatchNorm2d(4)),
    ("norm(x, layernorm)", [16], [16], nn.LayerNorm(16)),
    ("norm(x, none)", [16], [16], nn.Identity()),
    ("act(x, gelu)", [16], [16], nn.GELU()),
    ("selu(x)", [16], [16], nn.SELU()),
    ("dropout(x, 0.5)", [16], [16], nn.Dropout(0.5)),
    ("zero(x)", [16], [16], Lambda(torch.zeros_like)),
    ("identity(x)", [16], [16], nn.Identity()),
    ("reshape(x, [4, -1])", [16], [4, 4], Lambda(lambda t: t.reshape(t.shape[0], 4, 4))),
    ("flatten(x)", [3, 4, 4], [48], nn.Flatten()),
    ("patchify(x, 2)", [3, 4, 6], [6, 12], Lambda(
        lambda t: t.unfold(2, 2, 2).unfold(3, 2, 2).permute(0, 2, 3, 1, 4, 5)
        .reshape(t.shape[0], 6, 12))),
    ("mean(x, 0)", [5, 16], [16], Lambda(lambda t: t.mean(1))),
    ("mean(x, -1)", [5, 16], [5], Lambda(lambda t: t.mean(-1))),
    ("concat(x, x, 0)", [5, 16], [10, 16], Lambda(lambda t: torch.cat([t, t], 1))),
]


@pytest.mark.parametrize("expr,in_shape,out_shape,module", CASES, ids=[c[0] for c in CASES])
def test_core_op_params_flops_and_shape_match_torch(expr, in_shape, out_shape, module):
    node = build_one(expr, in_shape, out_shape)
    params, flops, shape = reference(module, in_shape)
    assert node["shape"] == shape == tuple(out_shape)
    assert node["params"] == params
    assert node["flops"] == flops


def test_linear_by_hand():
    node = build_one("linear(x, 10)", [3, 64], [3, 10])
    assert node["params"] == 64 * 10 + 10
    assert node["flops"] == 2 * 3 * 64 * 10
    assert node["sparse_weights"] == 64 * 10


def test_frozen_linear_has_no_trainable_params():
    node = build_one("linear(x, 10, frozen = true)", [64], [10])
    assert (node["params"], node["trainable_params"]) == (650, 0)


def test_tensor_arithmetic_nodes():
    spec = autoarch.loads(dedent("""
        model m(x: [16]) -> [16] {
          return 0.5 * (x + relu(x)) * -x
        }
    """), "t.spec")
    ops_used = sorted(n["op"] for _, n in spec.build({}).nx.nodes(data=True))
    assert ops_used == sorted(["input", "relu", "add", "scale", "scale", "mul", "output"])


# ---- the registry --------------------------------------------------------


def test_every_public_op_is_documented_and_callable_from_a_spec():
    names = ops.public_names()
    assert {"linear", "mlp", "glu", "kan", "attention", "mixer", "moe", "conv", "avgpool",
            "maxpool", "layernorm", "rmsnorm", "batchnorm", "norm", "act", "relu", "gelu",
            "silu", "selu", "elu", "tanh", "sigmoid", "dropout", "zero", "identity",
            "reshape", "flatten", "patchify", "mean", "concat"} <= set(names)
    for name in names:
        spec = lookup(name)
        assert spec.doc, f"{name} has no doc"
        assert spec.args[0].type == "tensor", f"{name}'s first argument is not its input"


def test_registering_a_name_twice_is_an_error():
    with pytest.raises(ValueError, match="already registered"):
        register(OpSpec("linear", (), lambda c: ()))


def test_unknown_op_lookup_suggests_the_closest():
    with pytest.raises(KeyError, match="did you mean 'linear'"):
        lookup("lineer")

"""The IR of a candidate: costs against hand-built torch modules, hash against networkx."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path
from textwrap import dedent

import networkx as nx
import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import autoarch
from autoarch.compiler.hashing import wl_hash

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load(name: str) -> autoarch.Spec:
    return autoarch.load(EXAMPLES / f"{name}.spec")


def torch_costs(module: nn.Module, in_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """(params, trainable params, forward FLOPs of one example) of a reference module."""
    params = sum(p.numel() for p in module.parameters())
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        module(torch.randn(1, *in_shape))
    return params, trainable, fc.get_total_flops()


# ---- hand-built references for whole candidates -------------------------------


class Residual(nn.Module):
    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return x + self.inner(x)


class Attention(nn.Module):
    """Softmax attention with separate q, k, v, o projections and explicit matmuls."""

    def __init__(self, d: int, heads: int):
        super().__init__()
        self.h, self.q, self.k, self.v, self.o = heads, *(nn.Linear(d, d) for _ in range(4))

    def forward(self, x):
        b, n, d = x.shape

        def split(t):
            return t.view(b, n, self.h, d // self.h).transpose(1, 2)

        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        a = torch.softmax(q @ k.transpose(-1, -2) / (d // self.h) ** 0.5, dim=-1)
        return self.o((a @ v).transpose(1, 2).reshape(b, n, d))


class Reshape(nn.Module):
    def __init__(self, *shape: int):
        super().__init__()
        self.shape = shape

    def forward(self, x):
        return x.reshape(x.shape[0], *self.shape)


def hourglass_reference(wide: int, hiddens: list[int]) -> nn.Module:
    lift = nn.Linear(64, wide)
    lift.requires_grad_(False)
    blocks = [Residual(nn.Sequential(nn.LayerNorm(wide), nn.Linear(wide, h), nn.GELU(),
                                     nn.Linear(h, wide))) for h in hiddens]
    return nn.Sequential(lift, *blocks, nn.Linear(wide, 10))


@pytest.mark.parametrize("seed", range(6))
def test_hourglass_costs_match_a_hand_built_torch_module(seed):
    spec = load("hourglass")
    cand = spec.space().sample(seed)
    g = spec.build(cand)
    hiddens = [cand[f"hourglass.repeat[{i}].h"] for i in range(cand["hourglass.repeat"])]
    ref = hourglass_reference(cand["hourglass.wide"], hiddens)
    assert (g.params, g.trainable_params, g.flops) == torch_costs(ref, (64,))
    assert g.trainable_params < g.params  # the lift is frozen


def quickstart_reference(width: int, blocks: list[tuple[str, int]]) -> nn.Module:
    layers: list[nn.Module] = [Reshape(8, 8), nn.Linear(8, width)]
    for kind, arg in blocks:
        if kind == "mlp":
            inner = nn.Sequential(nn.Linear(width, arg * width), nn.GELU(),
                                  nn.Linear(arg * width, width))
        else:
            inner = Attention(width, arg)
        layers.append(Residual(nn.Sequential(nn.LayerNorm(width), inner)))
    layers += [nn.LayerNorm(width), nn.Flatten(), nn.Linear(8 * width, 10)]
    return nn.Sequential(*layers)


@pytest.mark.parametrize("width,blocks", [
    (32, [("mlp", 2)]),
    (64, [("attention", 2), ("mlp", 4)]),
    (128, [("mlp", 4), ("attention", 1), ("attention", 2)]),
])
def test_quickstart_costs_match_a_hand_built_torch_module(width, blocks):
    choices = {"digits.width": width, "digits.i": len(blocks)}
    for i, (kind, arg) in enumerate(blocks):
        choices[f"digits.i[{i}].h"] = kind
        key = "expand" if kind == "mlp" else "heads"
        choices[f"digits.i[{i}].h.{kind}.{key}"] = arg
    g = load("quickstart").build(choices)
    ref = quickstart_reference(width, blocks)
    assert (g.params, g.trainable_params, g.flops) == torch_costs(ref, (64,))


class NB201Op(nn.Module):
    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind
        if kind.startswith("conv"):
            k = 1 if kind == "conv#1" else 3
            self.conv = nn.Conv2d(16, 16, k, padding=k // 2)
        self.pool = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)

    def forward(self, x):
        if self.kind == "zero":
            return torch.zeros_like(x)
        if self.kind == "identity":
            return x
        if self.kind == "avgpool":
            return self.pool(x)
        return self.conv(torch.relu(x))


class NB201Cell(nn.Module):
    def __init__(self, kinds: list[str]):
        super().__init__()
        self.ops = nn.ModuleList(NB201Op(k) for k in kinds)
        self.head = nn.Linear(16 * 8 * 8, 10)

    def forward(self, x):
        o = self.ops
        n1 = o[0](x)
        n2 = o[1](x) + o[2](n1)
        n3 = o[3](x) + o[4](n1) + o[5](n2)
        return self.head(n3.flatten(1))


@pytest.mark.parametrize("seed", range(8))
def test_nb201_costs_and_shapes_match_a_hand_built_torch_module(seed):
    spec = load("nb201")
    cand = spec.space().sample(seed)
    g = spec.build(cand)
    ref = NB201Cell([cand[f"nb201.cell.op#{k}"] for k in range(1, 7)])
    assert (g.params, g.trainable_params, g.flops) == torch_costs(ref, (16, 8, 8))
    for _, node in g.nx.nodes(data=True):
        if node["op"] in ("conv", "avgpool", "add", "zero", "identity"):
            assert node["shape"] == (16, 8, 8)


def test_shapes_follow_the_ops():
    spec = autoarch.loads(dedent("""
        model m(x: [3, 32, 32]) -> [10] {
          h = patchify(conv(x, 8, 3, stride = 2), 4)
          h = attention(linear(h, 32), heads = 4)
          return linear(concat(mean(h, 0), mean(h, 0), 0), 10)
        }
    """), "t.spec")
    g = spec.build({})
    shapes = {n["op"]: n["shape"] for _, n in g.nx.nodes(data=True)}
    assert shapes["conv"] == (8, 16, 16)
    assert shapes["patchify"] == (16, 8 * 4 * 4)
    assert shapes["attention"] == (16, 32)
    assert shapes["concat"] == (64,)


# ---- the canonical hash ---------------------------------------------------------


def _match(a: dict, b: dict) -> bool:
    return (a["op"], a["attrs"], a["shape"]) == (b["op"], b["attrs"], b["shape"])


def isomorphic(g1: autoarch.Graph, g2: autoarch.Graph) -> bool:
    """The reference: networkx's VF2 on op, attributes, shapes and argument positions."""
    def edge_match(e1, e2):
        return e1["pos"] == e2["pos"]

    a, b = g1.nx.copy(), g2.nx.copy()
    for g in (a, b):  # argument order does not matter for commutative ops
        for _u, v, data in g.edges(data=True):
            if g.nodes[v]["op"] in ("add", "mul"):
                data["pos"] = 0
    return nx.is_isomorphic(a, b, node_match=_match, edge_match=edge_match)


def test_hash_equal_exactly_for_isomorphic_candidates():
    spec = autoarch.loads(dedent("""
        model m(x: [16]) -> [10] {
          p = relu(linear(x, 8)) if choice(true, false) else tanh(linear(x, 8))
          q = relu(linear(x, 8)) if choice(true, false) else tanh(linear(x, 8))
          return linear(p + q, 10)
        }
    """), "t.spec")
    graphs = [spec.build(c) for c in spec.space().enumerate()]
    assert len(graphs) == 4
    for g1, g2 in itertools.combinations(graphs, 2):
        assert (g1.hash == g2.hash) == isomorphic(g1, g2)
    assert len({g.hash for g in graphs}) == 3  # (relu, tanh) and (tanh, relu) are one graph


def test_hash_separates_nb201_candidates_like_networkx_does():
    spec = load("nb201")
    space = spec.space()
    graphs = [spec.build(space.sample(s)) for s in range(40)]
    rng = random.Random(0)
    pairs = [tuple(rng.sample(graphs, 2)) for _ in range(150)]
    pairs += [(g, spec.build(g.choices)) for g in graphs[:10]]
    agree = [(g1.hash == g2.hash) == isomorphic(g1, g2) for g1, g2 in pairs]
    assert all(agree)
    assert any(g1.hash == g2.hash for g1, g2 in pairs)
    assert any(g1.hash != g2.hash for g1, g2 in pairs)


def test_hash_ignores_node_numbering():
    g = load("quickstart").build(load("quickstart").space().sample(3))
    nodes, edges = g._nodes, g._edges
    perm = list(range(len(nodes)))
    random.Random(1).shuffle(perm)
    inverse = {old: new for new, old in enumerate(perm)}
    shuffled = [nodes[old] for old in perm]
    moved = [(inverse[u], inverse[v], p) for u, v, p in edges]
    assert wl_hash(shuffled, moved) == g.hash


def test_hash_sees_attributes_and_argument_order():
    spec = autoarch.loads(dedent("""
        model m(x: [16]) -> [32] {
          a = linear(x, 16, init = choice(kaiming, xavier))
          return concat(a, relu(x), choice(0, -1))
        }
    """), "t.spec")
    hashes = {spec.build(c).hash for c in spec.space().enumerate()}
    assert len(hashes) == 4


# ---- exports and derived costs ------------------------------------------------


def test_to_json_is_complete_and_serialisable():
    spec = load("tabular")
    g = spec.build(spec.space().sample(2))
    data = json.loads(json.dumps(g.to_json()))
    assert data["params"] == sum(n["params"] for n in data["nodes"]) == g.params
    assert data["flops"] == g.flops and data["hash"] == g.hash
    assert len(data["edges"]) == g.nx.number_of_edges()
    assert data["nodes"][data["output"]]["op"] == "output"
    assert all(n["span"]["file"] == str(EXAMPLES / "tabular.spec") for n in data["nodes"])


def test_to_dot_lists_every_node_and_edge():
    g = load("nb201").build(load("nb201").space().sample(0))
    dot = g.to_dot()
    assert dot.startswith('digraph "nb201"') and dot.rstrip().endswith("}")
    assert dot.count("[label=") >= len(g)
    assert dot.count(" -> ") == g.nx.number_of_edges()


def test_memory_counts_params_and_activations_in_fp32():
    g = load("hourglass").build(load("hourglass").space().sample(1))
    activations = sum(torch.Size(n["shape"]).numel() for _, n in g.nx.nodes(data=True))
    assert g.memory == 4 * (g.params + activations)


def test_nonzero_params_follow_sparsity():
    spec = autoarch.loads(dedent("""
        model m(x: [32]) -> [10] {
          h = linear(x, 64, sparsity = choice(0.0, 0.75, 0.3, nm(2, 4)))
          return linear(h, 10)
        }
    """), "t.spec")
    dense = spec.build({"m.h.sparsity": 0.0})
    assert dense.nonzero_params == dense.params == 32 * 64 + 64 + 64 * 10 + 10
    assert spec.build({"m.h.sparsity": 0.75}).nonzero_params == dense.params - 1536
    assert spec.build({"m.h.sparsity": 0.3}).nonzero_params == dense.params - 614  # floor
    assert spec.build({"m.h.sparsity": "nm(2, 4)"}).nonzero_params == dense.params - 1024


def test_nodes_point_at_their_source():
    spec = load("hourglass")
    g = spec.build(spec.space().sample(0))
    lines = spec.source.splitlines()
    for _, n in g.nx.nodes(data=True):
        if n["op"] in ("linear", "gelu", "layernorm"):
            assert n["op"] in lines[n["span"].line - 1][n["span"].column - 1:]


def test_an_input_used_twice_keeps_both_argument_positions():
    spec = autoarch.loads("model m(x: [8]) -> [16] {\n  return concat(x, relu(x) + relu(x), 0)\n}\n",
                          "t.spec")
    g = spec.build({})
    relu = [i for i, n in g.nx.nodes(data=True) if n["op"] == "relu"]
    add = next(i for i, n in g.nx.nodes(data=True) if n["op"] == "add")
    assert len(relu) == 2 and len(g.edges) == 7  # output included
    concat = next(i for i, n in g.nx.nodes(data=True) if n["op"] == "concat")
    assert g.nx.edges[0, concat]["positions"] == [0]
    assert sorted(p for u, v, p in g.edges if v == add) == [0, 1]
    twice = autoarch.loads("model m(x: [8]) -> [16] {\n  return concat(x, x, 0)\n}\n", "t.spec")
    g2 = twice.build({})
    assert g2.nx.edges[0, 1]["positions"] == [0, 1]

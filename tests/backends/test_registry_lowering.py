"""Every op of the registry has a torch lowering and a parity case, and each case holds.

A parity case is a small example call with its parameter count, FLOPs and output
shape worked out by hand from docs/ops.md (``b`` terms written out, ``N`` the
positions). The test compiles it and checks the lowered module against those
numbers: ``numel`` of its parameters, ``FlopCounterMode`` on one example (SDPA under
the math backend, see docs/ops.md), the shape of its output; and that the IR's
numbers agree. The tests run over the registry, so an op registered without a
lowering or without a case fails here (:func:`coverage_problems`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from textwrap import dedent

import pytest
import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.nn.utils import parametrize
from torch.utils.flop_counter import FlopCounterMode

import autoarch
import autoarch.backends.torch  # noqa: F401  (registers the lowerings)
from autoarch.compiler import ops
from autoarch.compiler.ops import ArgSpec, OpSpec, registry

#: ops that ``lower_graph`` makes itself (placeholder and output), not a lowering
GRAPH_ENDS = {"input", "output"}


@dataclass(frozen=True)
class Case:
    """`return <expr>` on an input of ``in_shape``: its output shape, params and FLOPs."""

    expr: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    params: int = 0
    flops: int = 0

    def __str__(self) -> str:
        return f"{self.expr} {list(self.in_shape)}"


def same(expr: str, shape: tuple[int, ...], params: int = 0) -> Case:
    """A shape-preserving op with no matmul (0 FLOPs)."""
    return Case(expr, shape, shape, params)


# Parameters and FLOPs by the formulas of docs/ops.md, written out by hand.
PARITY: dict[str, list[Case]] = {
    # core: tensor arithmetic
    "add": [same("x + x", (16,))],
    "mul": [same("x * x", (4, 8))],
    "scale": [same("0.5 * x", (16,))],
    # elementwise
    **{name: [same(f"{name}(x)", (5, 16))]
       for name in ("relu", "gelu", "silu", "selu", "elu", "tanh", "sigmoid")},
    "act": [same("act(x, gelu)", (16,)), same("act(x, tanh)", (3, 4, 4))],
    "identity": [same("identity(x)", (16,))],
    "zero": [same("zero(x)", (7, 16))],
    "dropout": [same("dropout(x, 0.25)", (16,))],
    "layernorm": [same("layernorm(x)", (7, 16), params=2 * 16)],
    "rmsnorm": [same("rmsnorm(x)", (16,), params=16)],
    "batchnorm": [same("batchnorm(x)", (16,), params=2 * 16),
                  same("batchnorm(x)", (7, 16), params=2 * 16),
                  same("batchnorm(x)", (4, 6, 6), params=2 * 4)],
    "norm": [same("norm(x, layernorm)", (16,), params=2 * 16),
             same("norm(x, rmsnorm)", (7, 16), params=16),
             same("norm(x, batchnorm)", (4, 6, 6), params=2 * 4),
             same("norm(x, none)", (16,))],
    # linear: params d out + b out, flops 2 N d out
    "linear": [Case("linear(x, 24)", (16,), (24,), 16 * 24 + 24, 2 * 16 * 24),
               Case("linear(x, 24, bias = false)", (5, 16), (5, 24), 16 * 24, 2 * 5 * 16 * 24),
               Case("linear(x, 8)", (3, 4, 16), (3, 4, 8), 16 * 8 + 8, 2 * 12 * 16 * 8)],
    # shape ops
    "reshape": [Case("reshape(x, [4, -1])", (16,), (4, 4))],
    "flatten": [Case("flatten(x)", (3, 4, 4), (48,))],
    "patchify": [Case("patchify(x, 2)", (3, 4, 6), (6, 12))],
    "mean": [Case("mean(x, 0)", (5, 16), (16,)), Case("mean(x, -1)", (5, 16), (5,))],
    "concat": [Case("concat(x, x, 0)", (5, 16), (10, 16)),
               Case("concat(x, x, -1)", (5, 16), (5, 32))],
    # conv: params out c k k + b out, flops 2 out c k k h' w'
    "conv": [Case("conv(x, 8, 3)", (4, 9, 9), (8, 9, 9), 8 * 4 * 9 + 8, 2 * 8 * 4 * 9 * 81),
             Case("conv(x, 8, 2, stride = 2, bias = false)", (4, 9, 9), (8, 5, 5),
                  8 * 4 * 4, 2 * 8 * 4 * 4 * 25)],
    "avgpool": [Case("avgpool(x, 3, stride = 1)", (4, 6, 6), (4, 6, 6)),
                Case("avgpool(x, 2)", (3, 7, 5), (3, 4, 3))],
    "maxpool": [Case("maxpool(x, 2)", (4, 7, 7), (4, 4, 4)),
                Case("maxpool(x, 3, stride = 2)", (2, 6, 5), (2, 3, 3))],
    # mlp: params d h + b h + h out + b out, flops 2 N (d h + h out)
    "mlp": [Case("mlp(x, expand = 2)", (7, 16), (7, 16),
                 16 * 32 + 32 + 32 * 16 + 16, 2 * 7 * (16 * 32 + 32 * 16)),
            Case("mlp(x, hidden = 40, out = 8, act = relu)", (16,), (8,),
                 16 * 40 + 40 + 40 * 8 + 8, 2 * (16 * 40 + 40 * 8)),
            Case("mlp(x)", (3, 2, 6), (3, 2, 6),  # expand 4 by default
                 6 * 24 + 24 + 24 * 6 + 6, 2 * 6 * (6 * 24 + 24 * 6)),
            Case("mlp(x, expand = 3, out = 5, bias = false)", (4, 6), (4, 5),
                 6 * 18 + 18 * 5, 2 * 4 * (6 * 18 + 18 * 5))],
    # glu: params 2 (d h + b h) + h d + b d, flops 2 N 3 d h
    "glu": [Case("glu(x, 32)", (7, 16), (7, 16),
                 2 * (16 * 32 + 32) + 32 * 16 + 16, 2 * 7 * 3 * 16 * 32),
            Case("glu(x, 32, act = gelu, bias = false)", (16,), (16,),
                 3 * 16 * 32, 2 * 3 * 16 * 32)],
    # mixer on [n, d]: params n h + b h + h n + b n, flops 2 d (2 n h)
    "mixer": [Case("mixer(x, 12)", (7, 16), (7, 16), 7 * 12 + 12 + 12 * 7 + 7, 2 * 16 * 2 * 7 * 12),
              Case("mixer(x, 5, bias = false)", (6, 4), (6, 4), 2 * 6 * 5, 2 * 4 * 2 * 6 * 5)],
    # moe: params d E + E (d h + b h + h d + b d), flops 2 N d E + top_k 2 N (d h + h d)
    "moe": [Case("moe(x, 4, 2, 24)", (7, 16), (7, 16),
                 16 * 4 + 4 * (16 * 24 + 24 + 24 * 16 + 16),
                 2 * 7 * 16 * 4 + 2 * 2 * 7 * (16 * 24 + 24 * 16)),
            Case("moe(x, experts = 3, top_k = 1, hidden = 8, bias = false)", (16,), (16,),
                 16 * 3 + 3 * (16 * 8 + 8 * 16), 2 * 16 * 3 + 2 * (16 * 8 + 8 * 16))],
    # kan, per layer i -> o (G grid, k order): rational (6 + 4 groups) + i o + b o, 2 N i o;
    # bspline o i (G + k + 2) + b o, 2 N i o (G + k + 1); rbf o i G + o i + b o + 2 i,
    # 2 N i o (G + 1); relu o i (G + k) + b o, 2 N i (G + k) o
    "kan": [Case("kan(x, 24)", (7, 16), (7, 24), (6 + 4 * 8) + 16 * 24 + 24, 2 * 7 * 16 * 24),
            Case("kan(x, 24, hidden = 32, groups = 4, bias = false)", (16,), (24,),
                 (6 + 16) + 16 * 32 + (6 + 16) + 32 * 24, 2 * (16 * 32 + 32 * 24)),
            Case("kan(x, 24, basis = bspline)", (7, 16), (7, 24),
                 24 * 16 * 10 + 24, 2 * 7 * 16 * 24 * 9),
            Case("kan(x, 12, basis = bspline, hidden = 8, grid = 3, order = 2)", (16,), (12,),
                 8 * 16 * 7 + 8 + 12 * 8 * 7 + 12, 2 * (16 * 8 * 6 + 8 * 12 * 6)),
            Case("kan(x, 24, basis = rbf, grid = 8)", (7, 16), (7, 24),
                 24 * 16 * 8 + 24 * 16 + 24 + 2 * 16, 2 * 7 * 16 * 24 * 9),
            Case("kan(x, 6, basis = rbf, grid = 1, bias = false)", (4,), (6,),
                 6 * 4 * 1 + 6 * 4 + 2 * 4, 2 * 4 * 6 * 2),
            Case("kan(x, 24, basis = relu, hidden = 12)", (7, 16), (7, 24),
                 12 * 16 * 8 + 12 + 24 * 12 * 8 + 24, 2 * 7 * (16 * 8 * 12 + 12 * 8 * 24))],
    # attention on [n, d], dk = d / H: projections + (gla gate | hedgehog map);
    # flops: projections + core (softmax 4 n n d; linear 4 n d dk + 2 n d;
    # gla that + 64 n d; hedgehog 12 n d dk + 4 n d)
    "attention": [
        Case("attention(x, 4)", (6, 16), (6, 16),
             4 * (16 * 16 + 16), 4 * 2 * 6 * 16 * 16 + 4 * 6 * 6 * 16),
        Case("attention(x, 2, qk = shared, causal = true)", (6, 16), (6, 16),
             3 * (16 * 16 + 16), 3 * 2 * 6 * 16 * 16 + 4 * 6 * 6 * 16),
        Case("attention(x, 4, qk = symmetric, bias = false)", (6, 16), (6, 16),
             4 * 4 * 5 // 2 + 2 * 16 * 16,
             2 * 6 * 16 * 4 + 2 * 2 * 6 * 16 * 16 + 4 * 6 * 6 * 16),
        Case("attention(x, 2, kind = linear, causal = true)", (6, 16), (6, 16),
             4 * (16 * 16 + 16), 4 * 2 * 6 * 16 * 16 + 4 * 6 * 16 * 8 + 2 * 6 * 16),
        Case("attention(x, 1, kind = linear, qk = symmetric)", (5, 12), (5, 12),
             12 * 13 // 2 + 2 * (12 * 12 + 12),
             2 * 5 * 12 * 12 + 2 * 2 * 5 * 12 * 12 + 4 * 5 * 12 * 12 + 2 * 5 * 12),
        Case("attention(x, 2, kind = gla)", (6, 16), (6, 16),
             4 * (16 * 16 + 16) + 16 * 16 + 16 * 16 + 16,
             4 * 2 * 6 * 16 * 16 + 4 * 6 * 16 * 8 + 2 * 6 * 16 + 64 * 6 * 16),
        Case("attention(x, 4, kind = gla, qk = symmetric, causal = true)", (20, 16), (20, 16),
             4 * 4 * 5 // 2 + 2 * (16 * 16 + 16) + 16 * 16 + 16 * 16 + 16,
             2 * 20 * 16 * 4 + 2 * 2 * 20 * 16 * 16
             + 4 * 20 * 16 * 4 + 2 * 20 * 16 + 64 * 20 * 16),
        Case("attention(x, 2, kind = hedgehog, qk = shared)", (6, 16), (6, 16),
             3 * (16 * 16 + 16) + 2 * (8 * 8 + 8),
             3 * 2 * 6 * 16 * 16 + 12 * 6 * 16 * 8 + 4 * 6 * 16),
        Case("attention(x, 4, kind = hedgehog, causal = true, bias = false)", (6, 16), (6, 16),
             4 * 16 * 16 + 4 * (4 * 4 + 4),
             4 * 2 * 6 * 16 * 16 + 12 * 6 * 16 * 4 + 4 * 6 * 16),
    ],
}


def coverage_problems(specs: Iterable[OpSpec], cases: Mapping[str, list[Case]]) -> list[str]:
    """What the registry ``specs`` lack: a lowering for every op (the graph's ends
    aside), a parity case for every op with a lowering, no case for an unknown op."""
    problems = []
    names = set()
    for spec in specs:
        names.add(spec.name)
        if spec.name in GRAPH_ENDS:
            continue
        if spec.lower is None:
            problems.append(f"op {spec.name!r} has no torch lowering")
        if not cases.get(spec.name):
            problems.append(f"op {spec.name!r} has no parity case")
    problems += [f"parity cases for {name!r}, which is not a registered op"
                 for name in sorted(set(cases) - names)]
    return problems


def test_every_op_has_a_lowering_and_a_parity_case():
    assert coverage_problems(ops.all_specs(), PARITY) == []


def test_an_op_registered_without_a_lowering_or_a_case_is_caught(monkeypatch):
    def about_fake(cases: Mapping[str, list[Case]]) -> list[str]:
        return [p for p in coverage_problems(ops.all_specs(), cases) if "'fake_double'" in p]

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))  # a copy
    fake = ops.register(OpSpec("fake_double", (ArgSpec("x", "tensor"),), lambda c: c.x,
                               doc="a test op"))
    assert about_fake(PARITY) == ["op 'fake_double' has no torch lowering",
                                  "op 'fake_double' has no parity case"]
    fake.lower = lambda em, n, xs: em.function(torch.mul, xs[0], 2)
    assert about_fake(PARITY) == ["op 'fake_double' has no parity case"]
    cases = {**PARITY, "fake_double": [same("fake_double(x)", (16,))]}
    assert about_fake(cases) == []
    monkeypatch.undo()
    assert about_fake(cases) == ["parity cases for 'fake_double', which is not a registered op"]


def test_each_family_has_a_rule_file_and_a_lowering_file_of_the_same_name():
    import autoarch.backends.torch as backend

    def modules(package, besides: set[str]) -> set[str]:
        return {p.stem for p in Path(package.__file__).parent.glob("*.py")} - besides

    assert modules(ops, {"__init__", "registry"}) == set(ops.FAMILIES)
    lowering_support = {"__init__", "lower", "init", "sparsity", "serialize", "supernet", "export"}
    assert modules(backend, lowering_support) == set(ops.FAMILIES)
    for spec in ops.all_specs():  # and each op's lowering is in its rule's family file
        if spec.lower is not None:
            rule_family = spec.shape.__module__.rsplit(".", 1)[1]
            assert spec.lower.__module__.rsplit(".", 1)[1] == rule_family, spec.name


def test_docs_list_every_op_under_its_family():
    """docs/ops.md's table "Where each op lives" names each op in its family's row."""
    import re

    docs = Path(__file__).resolve().parents[2] / "docs" / "ops.md"
    rows = {}
    for line in docs.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0] in ops.FAMILIES:
            rows[cells[0]] = cells[1]
    assert set(rows) == set(ops.FAMILIES)
    names = {s.name for s in ops.all_specs()}
    for family, cell in rows.items():
        listed = set(re.findall(r"[a-z_]+", cell)) & names
        want = {s.name for s in ops.all_specs()
                if s.shape.__module__.rsplit(".", 1)[1] == family}
        assert listed == want, family


def compile_case(case: Case, expr: str | None = None):
    spec = autoarch.loads(dedent(f"""
        model m(x: {list(case.in_shape)}) -> {list(case.out_shape)} {{
          return {expr or case.expr}
        }}
    """), "parity.spec")
    return spec.build({}), autoarch.compile(spec, {}, seed=0)


def has_weight_layers(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Linear | nn.Conv2d) for m in model.modules())


LOWERED = sorted(s.name for s in ops.all_specs() if s.name not in GRAPH_ENDS)


@pytest.mark.parametrize("name", LOWERED)
def test_lowered_op_matches_its_parity_cases(name):
    spec = ops.lookup(name)
    assert PARITY.get(name), f"op {name!r} has no parity case"
    for case in PARITY[name]:
        graph, model = compile_case(case)
        assert name in {op for _, op in graph.nx.nodes(data="op")}, f"{case} does not call {name}"
        model.eval()
        with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), \
                FlopCounterMode(display=False) as fc:
            y = model(torch.randn(1, *case.in_shape))
        got = (tuple(y.shape[1:]), sum(p.numel() for p in model.parameters()),
               fc.get_total_flops())
        want = (case.out_shape, case.params, case.flops)
        assert got == want, f"{case}: lowered (shape, params, flops) {got}, docs/ops.md {want}"
        ir = (tuple(graph.nx.nodes[graph.output]["shape"]), graph.params, graph.flops)
        assert ir == want, f"{case}: IR (shape, params, flops) {ir}, docs/ops.md {want}"
        # the ops that take init / sparsity / bias / frozen are those whose lowering holds
        # dense or conv weights, and those arguments work: masks, nothing left to train
        assert spec.parametric == has_weight_layers(model), case
        if spec.parametric:
            expr = case.expr[:-1] + ", init = xavier, sparsity = 0.5, frozen = true)"
            graph, model = compile_case(case, expr)
            assert sum(p.numel() for p in model.parameters()) == case.params == graph.params
            assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 0
            assert graph.trainable_params == 0
            assert graph.nonzero_params < graph.params
            assert any(parametrize.is_parametrized(m) for m in model.modules()), expr

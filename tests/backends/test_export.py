"""Exported models: plain-torch Python files and ONNX, against the compiled modules.

The references are the compiled candidates themselves (``autoarch.compile``), run on
random inputs, and onnxruntime. The Python files run in a separate interpreter in
which autoarch cannot be imported (``sys.modules['autoarch'] = None``), so a file
that leans on autoarch in any way fails there. Every op of the registry is covered
through the parity cases of ``test_registry_lowering`` (a new op is exported the
moment it has a case), and every op family through a candidate of its own.
"""

from __future__ import annotations

import json
import subprocess
import sys
from textwrap import dedent

import pytest
import torch
from test_registry_lowering import PARITY
from torch.nn.utils import parametrize

import autoarch
from autoarch.backends.torch.export import ExportError, plain_module, to_onnx, to_python
from autoarch.compiler import ops
from autoarch.compiler.ops import registry, user

#: a candidate per op family (and init / sparsity / frozen): input shape, expression,
#: output shape
FAMILY_CASES: dict[str, tuple[tuple[int, ...], str, tuple[int, ...]]] = {
    "core": ((16,), "x + x * x + 0.5 * x + -x", (16,)),
    "elementwise": ((16,), "dropout(identity(elu(selu(silu(relu(gelu(layernorm(rmsnorm("
                    "batchnorm(x))))))))), 0.3) + zero(x) + act(tanh(sigmoid(x)), gelu)"
                    " + norm(x, none)", (16,)),
    "elementwise_norms": ((5, 8), "batchnorm(x) + norm(x, rmsnorm) + norm(x, layernorm)",
                          (5, 8)),
    "linear": ((5, 16), "linear(linear(x, 24, bias = false), 8)", (5, 8)),
    "shape_ops": ((3, 4, 6), "concat(mean(patchify(x, 2), 0), flatten(reshape(x, [12, 6])), 0)",
                  (84,)),
    "conv": ((3, 7, 7), "maxpool(avgpool(conv(conv(x, 4, 3), 5, 2, stride = 2, bias = false), "
                        "2), 3, stride = 2) + maxpool(avgpool(conv(batchnorm(x), 5, 3, "
                        "stride = 2), 3, stride = 1), 3, stride = 4)", (5, 1, 1)),
    "mlp": ((6, 8), "moe(mixer(glu(mlp(x, expand = 2), 16), 12), 4, 2, 16) + "
                    "moe(x, experts = 3, top_k = 1, hidden = 8, bias = false)", (6, 8)),
    "kan_rational": ((6, 16), "kan(kan(x, 16, groups = 4), 8, hidden = 32)", (6, 8)),
    "kan_bspline": ((6, 16), "kan(kan(x, 12, basis = bspline), 8, basis = bspline, hidden = 8, "
                             "grid = 3, order = 2)", (6, 8)),
    "kan_rbf": ((16,), "kan(kan(x, 12, basis = rbf, grid = 8), 6, basis = rbf, grid = 1, "
                       "bias = false)", (6,)),
    "kan_relu": ((6, 16), "kan(x, 12, basis = relu, hidden = 12)", (6, 12)),
    "init_mup": ((16,), "linear(mlp(linear(x, 64, init = mup(base = 32)), expand = 2, "
                        "init = mup(base = 32)), 10, init = mup(base = 32))", (10,)),
    "sparsity": ((6, 16), "attention(kan(mlp(linear(x, 16, sparsity = 0.5), hidden = 32, "
                          "sparsity = nm(2, 4)), 16, basis = bspline, sparsity = 0.7), 2, "
                          "kind = hedgehog, qk = symmetric, sparsity = 0.5) + reshape(conv("
                          "reshape(x, [6, 4, 4]), 6, 3, sparsity = nm(1, 2)), [6, 16])", (6, 16)),
    "frozen": ((16,), "linear(linear(x, 32, frozen = true), 8)", (8,)),
}
for _kind in ("softmax", "linear", "gla", "hedgehog"):  # every variant, six per candidate
    _layers = "x"
    for _qk in ("separate", "shared", "symmetric"):
        for _causal in ("false", "true"):
            _layers = f"attention({_layers}, 4, kind = {_kind}, qk = {_qk}, causal = {_causal})"
    FAMILY_CASES[f"attention_{_kind}"] = ((20, 16), _layers, (20, 16))

PARITY_CASES = {f"{op}-{i}": (c.in_shape, c.expr, c.out_shape)
                for op, cases in PARITY.items() for i, c in enumerate(cases)}
ALL_CASES = {**PARITY_CASES, **{f"family-{k}": v for k, v in FAMILY_CASES.items()}}


def compiled(case: tuple, seed: int = 0) -> tuple[torch.nn.Module, autoarch.Graph]:
    in_shape, expr, out_shape = case
    spec = autoarch.loads(f"model m(x: {list(in_shape)}) -> {list(out_shape)} {{\n"
                          f"  return {expr}\n}}\n", "export.spec")
    graph = spec.build({})
    model = autoarch.compile(spec, {}, seed=seed)
    with torch.no_grad():  # batchnorm statistics away from their 0 / 1 start
        model.train()
        model(torch.randn(8, *in_shape) * 2 + 0.5)
    return model.eval(), graph


def reference(model: torch.nn.Module, in_shape: tuple, batch: int = 5) -> tuple:
    x = torch.randn(batch, *in_shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return x, model(x)


def test_every_family_has_a_candidate():
    families = {f for f in ops.FAMILIES if f != "user"}
    covered = {k.split("_")[0] if k.split("_")[0] in families else k for k in FAMILY_CASES}
    covered |= {"shape_ops"} & set(FAMILY_CASES)
    assert families <= covered, families - covered
    assert {f"kan_{b}" for b in ("rational", "bspline", "rbf", "relu")} <= set(FAMILY_CASES)


# ---- Python ---------------------------------------------------------------------------

#: run in an interpreter where autoarch cannot be imported: each exported file loads its
#: weights and runs the saved inputs; prints each case's largest difference (or error)
CHECKER = dedent("""
    import importlib.util, json, sys
    sys.modules["autoarch"] = None           # `import autoarch` raises ImportError now
    import torch
    folder = sys.argv[1]
    cases = torch.load(folder + "/cases.pt", weights_only=True)
    out = {}
    for i, (name, (x, y)) in enumerate(cases.items()):
        try:
            spec = importlib.util.spec_from_file_location(f"exported_{i}",
                                                          f"{folder}/{name}.py")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            model = module.load()
            with torch.no_grad():
                got = model(x)
            out[name] = (got - y).abs().max().item() if got.shape == y.shape else \\
                f"shape {list(got.shape)}, not {list(y.shape)}"
        except Exception as e:
            out[name] = f"{type(e).__name__}: {e}"
    print(json.dumps(out))
""")


@pytest.fixture(scope="module")
def python_exports(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("py")
    cases, sources = {}, {}
    for name, case in ALL_CASES.items():
        model, _ = compiled(case)
        out = to_python(model, weights_file=f"{name}.pt")
        (folder / f"{name}.py").write_text(out.source)
        torch.save(out.state_dict, folder / f"{name}.pt")
        cases[name] = reference(model, case[0])
        sources[name] = out.source
    torch.save(cases, folder / "cases.pt")
    proc = subprocess.run([sys.executable, "-I", "-c", CHECKER, str(folder)],
                          capture_output=True, text=True, timeout=600, cwd=folder)
    assert proc.returncode == 0, proc.stderr
    return {"errors": json.loads(proc.stdout.strip().splitlines()[-1]), "sources": sources,
            "folder": folder}


@pytest.mark.parametrize("name", list(ALL_CASES))
def test_the_exported_python_computes_what_the_compiled_module_does(name, python_exports):
    err = python_exports["errors"][name]
    assert isinstance(err, float), err
    assert err <= 1e-5, f"{name}: {ALL_CASES[name][1]} differs by {err}"
    source = python_exports["sources"][name]
    assert "import autoarch" not in source and "from autoarch" not in source


def test_the_python_file_is_plain_torch_code(python_exports):
    source = python_exports["sources"]["family-kan_rational"]
    assert "class M(nn.Module):" in source and "def load(path=WEIGHTS" in source
    assert "self.kan_2_fc1 = nn.Linear(in_features=16, out_features=32, bias=True)" in source
    assert "def rational_unit(" in source  # the kernel's torch reference, as source
    compile(source, "family-kan_rational.py", "exec")
    gla = python_exports["sources"]["family-attention_gla"]
    assert "def gated_linear_attention(" in gla and "def _chunked(" in gla


def exec_export(name: str, python_exports: dict) -> torch.nn.Module:
    namespace: dict = {"__name__": "exported", "__file__": "x.py"}
    exec(python_exports["sources"][name], namespace)  # plain torch: see the subprocess test
    model = namespace["M"]()
    state = torch.load(python_exports["folder"] / f"{name}.pt", weights_only=True)
    model.load_state_dict(state)
    return model


def test_masked_weights_export_as_their_masked_values(python_exports):
    _, graph = compiled(FAMILY_CASES["sparsity"])
    pruned = graph.params - graph.nonzero_params  # the IR's count of masked entries
    assert pruned > 0
    model = exec_export("family-sparsity", python_exports)
    zeros = sum(int((p == 0).sum()) for p in model.parameters())
    assert zeros >= pruned
    state = torch.load(python_exports["folder"] / "family-sparsity.pt", weights_only=True)
    assert not any("parametrizations" in k or "original" in k for k in state)


def test_frozen_weights_stay_frozen(python_exports):
    model = exec_export("family-frozen", python_exports)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"linear_2.weight", "linear_2.bias"}


def test_a_module_fx_cannot_trace_is_one_error(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(user, "_DEFINITIONS", dict(user._DEFINITIONS))

    class SignGate(torch.nn.Module):
        def __init__(self, x: autoarch.Shape):
            super().__init__()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x if x.sum() > 0 else -x  # Python control flow on a tensor's value

    autoarch.op(shape=lambda x, **_: x)(SignGate)
    model, _ = compiled(((8,), "sign_gate(x)", (8,)))
    with pytest.raises(ExportError, match="cannot trace the model into plain torch"):
        to_python(model, weights_file="w.pt")


def test_the_original_model_is_left_as_it_was():
    model, _ = compiled(FAMILY_CASES["sparsity"])
    x, y = reference(model, FAMILY_CASES["sparsity"][0])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    plain_module(model)
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert any(parametrize.is_parametrized(m) for m in model.modules())  # masks kept
    with torch.no_grad():
        assert torch.equal(model(x), y)


# ---- ONNX -----------------------------------------------------------------------------


def check_onnx(case: tuple) -> None:
    ort = pytest.importorskip("onnxruntime")
    model, _ = compiled(case)
    data = to_onnx(model)
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    first = session.get_inputs()[0]
    assert isinstance(first.shape[0], str)  # the batch axis is dynamic
    for batch in (1, 5):
        x, y = reference(model, case[0], batch)
        got = session.run(None, {first.name: x.numpy()})[0]
        assert got.shape == tuple(y.shape)
        assert abs(torch.from_numpy(got) - y).max().item() <= 1e-4


@pytest.mark.parametrize("name", list(FAMILY_CASES))
def test_onnx_of_every_family_agrees_with_the_compiled_module(name):
    check_onnx(FAMILY_CASES[name])


@pytest.mark.slow
@pytest.mark.parametrize("name", list(PARITY_CASES))
def test_onnx_of_every_parity_case(name):
    check_onnx(PARITY_CASES[name])


def test_without_onnx_it_says_what_to_install(monkeypatch):
    model, _ = compiled(FAMILY_CASES["linear"])
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ExportError, match=r'pip install "autoarch\[export\]"') as info:
        to_onnx(model)
    assert "\n" not in info.value.format()


def test_an_op_onnx_cannot_express_is_named(monkeypatch):
    pytest.importorskip("onnxruntime")
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(user, "_DEFINITIONS", dict(user._DEFINITIONS))

    class BesselUnit(torch.nn.Module):
        def __init__(self, x: autoarch.Shape):
            super().__init__()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.special.i0e(x)  # no ONNX function for it

    autoarch.op(shape=lambda x, **_: x)(BesselUnit)
    model, _ = compiled(((8,), "linear(bessel_unit(linear(x, 8)), 8)", (8,)))
    # the Python export has no such limit
    assert "i0e" in to_python(model, weights_file="w.pt").source
    with pytest.raises(ExportError) as info:
        to_onnx(model, op_of=lambda name: "op 'bessel_unit'" if name == "bessel_unit" else None)
    text = info.value.format()
    assert "op 'bessel_unit' (module bessel_unit) cannot be expressed in ONNX" in text
    assert "bessel_i0e" in text and "\n" not in text

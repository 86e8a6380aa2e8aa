"""Frozen specs: one candidate's decisions written into the spec's source.

The reference is the original spec itself: the frozen text, loaded on its own, must
hold exactly one candidate whose graph hash and training settings are those of
``spec.build(choices)``. The checks here are made independently of ``freeze``'s own
(``check=False``), so a wrong frozen text cannot pass by its own verdict.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import autoarch
from autoarch.compiler.freeze import freeze

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.spec"))
SEEDS = range(6)


def frozen_of(spec: autoarch.Spec, choices: dict) -> autoarch.Spec:
    return autoarch.loads(freeze(spec, choices, check=False), "frozen.spec")


def assert_faithful(spec: autoarch.Spec, choices: dict) -> autoarch.Spec:
    graph = spec.build(choices)
    frozen = frozen_of(spec, choices)
    assert frozen.space().count() == 1
    assert frozen.space().decisions == []
    built = frozen.build({})
    assert built.hash == graph.hash
    assert (built.params, built.flops) == (graph.params, graph.flops)
    assert frozen.train_config({}) == spec.train_config(graph.choices)
    return frozen


def valid_samples(spec: autoarch.Spec, seeds=SEEDS) -> list[dict]:
    out = []
    for k in seeds:
        choices = spec.space().sample(seed=k)
        try:
            spec.build(choices)
        except autoarch.CandidateError:
            continue  # `require` rejects it: nothing to freeze
        out.append(choices)
    return out


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_freezes_to_one_candidate_of_the_same_hash(path):
    spec = autoarch.load(path)
    samples = valid_samples(spec)
    assert len(samples) >= 4
    for choices in samples:
        assert_faithful(spec, choices)


def test_the_frozen_quickstart_keeps_comments_and_unrolls_per_iteration_choices():
    spec = autoarch.load(ROOT / "examples/quickstart.spec")
    choices = {"digits.width": 32, "digits.i": 3, "digits.i[0].h": "attention",
               "digits.i[0].h.attention.heads": 2, "digits.i[1].h": "kan",
               "digits.i[1].h.kan.basis": "rbf", "digits.i[2].h": "mlp",
               "digits.i[2].h.mlp.expand": 4}
    text = freeze(spec, choices, header="run r1, trial #3\nfrom quickstart.spec")
    assert text.startswith("# run r1, trial #3\n# from quickstart.spec\n")
    assert "# 8 tokens (image rows) of 8 pixels" in text  # comments stay
    assert "choice(" not in text and "repeat" not in text.split("# repeat")[0]
    assert "let width = 32" in text
    body = text[text.index("# repeat i: 3 iterations"):]
    # each iteration with its own alternative, in order
    assert body.index("attention(layernorm(h), heads = 2)") < body.index(
        "kan(layernorm(h), width, basis = rbf)") < body.index("mlp(layernorm(h), expand = 4)")
    assert_faithful(spec, choices)


def test_a_repeat_whose_count_alone_is_a_decision_keeps_its_loop(tmp_path):
    spec = autoarch.loads(textwrap.dedent("""
        model t(x: [8]) -> [8] {
          repeat int(1, 4) { x = relu(linear(x, 8)) }
          return x
        }
    """), "t.spec")
    text = freeze(spec, {"t.repeat": 3})
    assert "repeat 3 { x = relu(linear(x, 8)) }" in text
    assert_faithful(spec, {"t.repeat": 3})


TRICKY = """
let lr = float(1e-4, 1e-2, log = true)
let n = int(0, 2)

def inner(h) {
  let k = choice(1, 2)
  return h * choice(0.5, 3.0) if k == 1 else relu(h)
}

def outer(h, w = 8) {
  w = choice(8, 16)
  y = linear(h, w)
  repeat choice(1, 2) as j { y = y + inner(y) }
  return linear(optional(gelu(y)), 16)
}

model t(x: [16]) -> [4] {
  let d = choice(16, 32)
  h = linear(x, d)
  repeat n as i {
    with act = choice(relu, silu), sparsity = choice(0.0, 0.5) {
      h = mlp(h, hidden = int(8, 32, step = 8), out = d)
      repeat int(1, 2) as k {
        h = h + (linear(h, d) if k == 0 else mlp(h, expand = choice(2, 3))) * int(-2, 2)
      }
    }
  }
  h = outer(linear(h, 16)) + outer(h if d == 16 else linear(h, 16))
  repeat n { h = h + zero(h) }
  repeat choice(1, 2, 3) { h = relu(h) }
  require n == 0 or i == n - 1, "the loop variable keeps its last value"
  return linear(h, 4)
}
train {
  data = digits  epochs = 1  batch = choice(32, 64)
  optimizer = adamw(lr = lr, weight_decay = float(0.0, 0.1))
}
"""


def test_nested_loops_defs_ifs_optionals_and_train_decisions_freeze_faithfully():
    spec = autoarch.loads(TRICKY, "tricky.spec")
    samples = valid_samples(spec, range(60))
    assert len(samples) == 60
    for choices in samples:
        frozen = assert_faithful(spec, choices)
        text = frozen.source
        for word in ("choice(", "optional(", "int(", "float("):
            assert word not in text
    # a float decision is written exactly (repr round-trips)
    choices = samples[0]
    assert f"let lr = {choices['lr']!r}" in freeze(spec, choices)


def test_defs_with_decisions_are_specialised_per_call_and_shared_when_equal():
    spec = autoarch.load(ROOT / "examples/nb201.spec")
    labels = ["conv#1", "zero", "conv#1", "identity", "avgpool", "conv#2"]
    choices = {f"nb201.cell.op#{i + 1}": v for i, v in enumerate(labels)}
    text = freeze(spec, choices)
    assert "def op(" not in text
    assert text.count("def op_") == 5  # the two conv#1 calls share one copy
    assert "def op_1(x) = conv(relu(x), 16, 1)" in text
    assert "n2 = op_2(x) + op_1(n1)" in text
    assert "h = cell_1(x)" in text
    assert_faithful(spec, choices)


def test_an_if_on_a_decision_keeps_only_the_branch_taken():
    spec = autoarch.loads(textwrap.dedent("""
        model t(x: [8]) -> [8] {
          let deep = choice(true, false)
          h = mlp(x, expand = choice(2, 4)) if deep else linear(x, int(8, 8))
          return h
        }
    """), "t.spec")
    text = freeze(spec, {"t.deep": False, "t.h": 8})
    assert "h = linear(x, 8)" in text and "mlp" not in text
    assert_faithful(spec, {"t.deep": False, "t.h": 8})
    text = freeze(spec, {"t.deep": True, "t.h.expand": 4})
    assert "h = mlp(x, expand = 4)" in text and "linear" not in text
    assert_faithful(spec, {"t.deep": True, "t.h.expand": 4})


def test_an_invalid_candidate_is_its_own_error():
    spec = autoarch.load(ROOT / "examples/conditional.spec")
    bad = {"conditional.width": 256, "conditional.depth": 4, "conditional.act": "gelu",
           "conditional.bias": True, **{f"conditional.i[{i}].block": True for i in range(4)}}
    with pytest.raises(autoarch.RequireError, match="wide nets stay shallow"):
        freeze(spec, bad)


def test_autoarch_check_accepts_a_frozen_spec(tmp_path):
    spec = autoarch.load(ROOT / "examples/transformer12.spec")
    path = tmp_path / "frozen.spec"
    path.write_text(freeze(spec, spec.space().sample(seed=3)))
    proc = subprocess.run([sys.executable, "-m", "autoarch", "check", str(path)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 candidate" in proc.stdout.replace("candidates", "candidate"), proc.stdout

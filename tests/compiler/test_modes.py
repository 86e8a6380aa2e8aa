"""The Mode protocol: a new use of the language is one small class.

Each custom mode below runs through the public protocol only (``Mode`` hooks and
the ``EvaluatorView`` methods) and is checked against an independent reference:
op counts worked out by hand from the spec text, and the decision names the
contract lists for the quickstart example.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from textwrap import dedent
from typing import Any

import pytest

import autoarch
from autoarch.compiler.deciding import BuildMode, SampleMode, evaluate_expr
from autoarch.compiler.elaborate import Evaluator
from autoarch.compiler.modes import Mode
from autoarch.compiler.values import ATENSOR
from autoarch.dsl import ast as spec_ast

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

HAND_COUNTED = """
model m(x: [16]) -> [4] {
  h = linear(x, 32)
  repeat 3 {
    h = h + relu(linear(h, 32))
  }
  return linear(layernorm(h), 4)
}
"""
#: by hand: one linear in, three iterations of (linear, relu, add), a layernorm and a
#: linear out
HAND_OPS = {"linear": 1 + 3 + 1, "relu": 3, "add": 3, "layernorm": 1}


class CountOps(Mode):
    """Counts the op applications a run meets; takes the first alternative of each decision."""

    def __init__(self) -> None:
        self.ops: Counter[str] = Counter()

    def decision(self, ev, call, decision):
        return ev.take(call, decision, decision.values()[0])

    def op(self, ev, app):
        self.ops[app.spec.name] += 1
        return ATENSOR


class EveryDecision(Mode):
    """Meets every decision of the space, as a supernet would: every alternative of a
    choice is evaluated side by side, and a repeat whose count is a decision runs its
    largest count. Records the name of each decision met."""

    def __init__(self) -> None:
        self.met: list[str] = []

    def decision(self, ev, call, decision):
        self.met.append(decision.name)
        results = [ev.take(call, decision, v) for v in decision.values()]
        return results[0]

    def repeat(self, ev, stmt, name):
        count = stmt.count
        if not (isinstance(count, spec_ast.Call) and count.func == "choice"):
            ev.run_repeat(stmt, name)
            return
        decision = ev.decision_at(count)
        self.met.append(decision.name)
        most = max(decision.values())
        ev.check_repeat(most, count.span)
        for i in range(most):
            ev.iterate(stmt, name, i)


def test_a_counting_mode_sees_every_op_written_in_the_spec():
    spec = autoarch.loads(HAND_COUNTED, "hand.spec")
    mode = CountOps()
    Evaluator(spec.program, mode).run()
    assert dict(mode.ops) == HAND_OPS


def test_the_counting_mode_agrees_with_a_hand_count_under_a_decision():
    # choice(a: two linears, b: one relu): the first alternative is taken
    spec = autoarch.loads(dedent("""
        model m(x: [8]) -> [8] {
          h = choice(a: linear(linear(x, 8), 8), b: relu(x))
          return h * 2
        }
    """), "t.spec")
    mode = CountOps()
    Evaluator(spec.program, mode).run()
    assert dict(mode.ops) == {"linear": 2, "scale": 1}


def test_a_mode_that_explores_every_alternative_meets_the_contract_names():
    spec = autoarch.load(EXAMPLES / "quickstart.spec")
    mode = EveryDecision()
    Evaluator(spec.program, mode).run()
    block = ["h", "h.mlp.expand", "h.kan.basis", "h.attention.heads"]
    contract = ["digits.width", "digits.i"] + [
        f"digits.i[{i}].{n}" for i in range(3) for n in block]
    assert mode.met == contract


def test_the_step_hook_is_called_only_by_modes_that_count():
    class Steps(CountOps):
        def __init__(self) -> None:
            super().__init__()
            self.steps = 0

        def step(self, span):
            self.steps += 1

    spec = autoarch.loads(HAND_COUNTED, "hand.spec")
    mode = Steps()
    Evaluator(spec.program, mode).run()
    # by hand: 2 statements in the model body before `return` (h = ..., repeat), the
    # repeat's 3 iterations, and 1 statement in each iteration
    assert mode.steps == 2 + 3 + 3


def test_build_and_sample_modes_meet_the_same_decisions():
    spec = autoarch.load(EXAMPLES / "quickstart.spec")
    for seed in range(10):
        build = BuildMode(autoarch.RandomDecider(seed))
        sample = SampleMode(autoarch.RandomDecider(seed))
        Evaluator(spec.program, build).run()
        settings = Evaluator(spec.program, sample).run()
        assert build.choices == sample.choices
        assert build.nodes and not sample.result(settings).nodes


def test_a_mode_without_decisions_refuses_them():
    spec = autoarch.loads(dedent("""
        model m(x: [8]) -> [8] {
          return linear(x, choice(8, 16))
        }
    """), "t.spec")
    with pytest.raises(autoarch.SpecError, match="cannot hold decisions"):
        Evaluator(spec.program, Mode()).run()


@pytest.mark.parametrize(("params", "holds"), [(100_000, True), (150_000, True),
                                               (150_001, False)])
def test_evaluate_expr_reads_constraints_against_given_costs(params: int, holds: bool):
    spec = autoarch.load(EXAMPLES / "tabular.spec")
    (c,) = spec.constraints  # `constraint params <= 150k`
    value: Any = evaluate_expr(spec.program, c.expr, env={"params": params},
                               globals=spec.program.constants)
    assert value is holds


def test_the_evaluator_refuses_a_node_it_has_no_method_for():
    spec = autoarch.loads(HAND_COUNTED, "hand.spec")
    ev = Evaluator(spec.program, CountOps())
    span = spec.program.model.span
    with pytest.raises(TypeError, match="no visit_Param"):  # a node no run evaluates
        ev.visit(spec_ast.Param(span, "p", None))
    assert ev.visit(spec_ast.Number(span, 7)) == 7

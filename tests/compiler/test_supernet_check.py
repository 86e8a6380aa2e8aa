"""Specs one supernet cannot hold are located errors before anything trains."""

from __future__ import annotations

import pytest

import autoarch
from autoarch.compiler.supernet import check_supernet, path_graph

MODEL = """
model m(x: [64]) -> [10] {{
  h = linear(x, {width})
  h = {act}
  return linear(h, 10)
}}
"""


def _spec(width: str = "choice(16, 32)", act: str = "relu(h)", train: str = "",
          lets: str = "") -> autoarch.Spec:
    return autoarch.loads(lets + MODEL.format(width=width, act=act) +
                          f"train {{ data = digits {train} }}\n", "space.spec")


def _located(spec: autoarch.Spec, text: str) -> autoarch.SpecError:
    with pytest.raises(autoarch.SpecError) as info:
        check_supernet(spec)
    err = info.value
    line = spec.source.split("\n")[err.line - 1]
    assert line[err.column - 1:].startswith(text), (line, err.column)
    assert err.hint
    rendered = str(err)
    assert "space.spec:" in rendered and "^" in rendered
    return err


def test_a_learning_rate_decision_in_train_is_refused_at_its_call() -> None:
    err = _located(_spec(train="optimizer = adamw(lr = choice(0.001, 0.01))"), "choice(0.001")
    assert "train" in err.message


def test_a_decision_reaching_train_through_lets_is_found() -> None:
    spec = _spec(lets="let base = float(1e-4, 1e-2, log = true)\nlet lr = base * 2\n",
                 train="optimizer = adamw(lr = lr)")
    err = _located(spec, "float(1e-4")
    assert "'optimizer'" in err.message


def test_a_batch_decision_in_train_is_refused() -> None:
    _located(_spec(train="batch = choice(32, 64)"), "choice(32, 64)")


def test_a_continuous_architecture_decision_is_refused() -> None:
    err = _located(_spec(act="dropout(h, float(0.0, 0.5))"), "float(0.0, 0.5)")
    assert "continuous" in err.message


def test_a_stepped_range_and_constants_in_train_are_fine() -> None:
    spec = _spec(width="int(16, 64, step = 16)", act="dropout(h, float(0.0, 0.5, step = 0.25))",
                 lets="let lr = 0.003\n", train="optimizer = adamw(lr = lr)  batch = 32")
    check_supernet(spec)
    for choices in spec.space().enumerate():
        assert path_graph(spec, choices).hash == spec.build(choices).hash


def test_a_let_decision_used_only_by_the_model_is_fine() -> None:
    check_supernet(_spec(lets="let w = choice(16, 32)\n", width="w"))

"""The Python API: load, build, assignments, train/search settings, constraints, Optuna."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import optuna
import pytest

import autoarch

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load(name: str) -> autoarch.Spec:
    return autoarch.load(EXAMPLES / f"{name}.spec")


def test_load_and_loads_agree():
    path = EXAMPLES / "quickstart.spec"
    a = autoarch.load(path)
    b = autoarch.loads(path.read_text(), str(path))
    cand = a.space().sample(5)
    assert a.build(cand).hash == b.build(cand).hash
    assert a.name == "digits" and a.filename == str(path)


def test_load_missing_file_is_a_spec_error():
    with pytest.raises(autoarch.SpecError, match="no such file"):
        autoarch.load(EXAMPLES / "nope.spec")


def test_build_accepts_values_as_text():
    spec = load("quickstart")
    choices = {"digits.width": 64, "digits.i": 1, "digits.i[0].h": "mlp",
               "digits.i[0].h.mlp.expand": 2}
    text = {k: str(v) for k, v in choices.items()}
    assert spec.build(text).hash == spec.build(choices).hash
    assert spec.build(text).choices == choices


def test_build_rejects_unknown_and_missing_decisions_and_bad_values():
    spec = load("quickstart")
    good = {"digits.width": 64, "digits.i": 1, "digits.i[0].h": "mlp",
            "digits.i[0].h.mlp.expand": 2}
    with pytest.raises(autoarch.AssignmentError) as e:
        spec.build({**good, "digits.widht": 64})
    assert "digits.width" in (e.value.hint or "")
    with pytest.raises(autoarch.AssignmentError, match="no value for decision digits.i"):
        spec.build({"digits.width": 64})
    with pytest.raises(autoarch.AssignmentError, match="one of 32, 64, 128"):
        spec.build({**good, "digits.width": 48})


def test_build_ignores_decisions_of_alternatives_not_taken():
    spec = load("quickstart")
    choices = {"digits.width": 32, "digits.i": 1, "digits.i[0].h": "kan",
               "digits.i[0].h.kan.basis": "rbf", "digits.i[0].h.mlp.expand": 4,
               "digits.i[2].h": "mlp"}
    g = spec.build(choices)
    assert "digits.i[0].h.mlp.expand" not in g.choices


def test_candidate_errors_are_spec_errors_with_a_location():
    spec = autoarch.loads(dedent("""
        model m(x: [4, 64]) -> [4, 64] {
          return attention(x, heads = choice(2, 3))
        }
    """), "heads.spec")
    spec.build({"m.return.heads": 2})
    with pytest.raises(autoarch.ShapeError) as e:
        spec.build({"m.return.heads": 3})
    assert (e.value.line, e.value.column) == (3, 31)
    assert isinstance(e.value, autoarch.CandidateError)


def test_require_rejects_a_candidate():
    spec = autoarch.loads(dedent("""
        model m(x: [16]) -> [16] {
          let a = choice(8, 32)
          let b = choice(8, 32)
          require a <= b, "narrowing only"
          return linear(linear(x, a), 16) + linear(linear(x, b), 16)
        }
    """), "t.spec")
    ok = {"m.a": 8, "m.b": 32}
    assert spec.build(ok).params > 0
    with pytest.raises(autoarch.RequireError, match="narrowing only"):
        spec.build({"m.a": 32, "m.b": 8})
    assert spec.space().count() == 4  # require does not change the count


def test_train_and_search_settings():
    spec = load("tabular")
    cand = spec.space().sample(0)
    train = spec.train_config(cand)
    assert train["epochs"] == 10 and train["data"].name == "digits"
    assert train["optimizer"].name == "adamw"
    assert train["optimizer"].get("lr") == cand["lr"]
    assert train["batch"] == 64  # default
    search = spec.search_config()
    assert search["strategy"].name == "tpe" and search["trials"] == 40
    assert [o.name for o in search["objective"]] == ["maximize", "minimize"]


def test_constraints_against_the_costs_of_each_candidate():
    text = (EXAMPLES / "quickstart.spec").read_text().replace(
        "search { strategy = random  trials = 10 }",
        "search {\n  constraint params <= 50k\n  constraint flops < 1M\n}")
    spec = autoarch.loads(text, "q.spec")
    space = spec.space()
    seen = set()
    for seed in range(40):
        g = spec.build(space.sample(seed))
        want = [text for text, ok in (("params <= 50k", g.params <= 50_000),
                                      ("flops < 1M", g.flops < 1_000_000)) if not ok]
        assert spec.violated_constraints(g) == want
        seen.add(len(want))
    assert seen == {0, 1, 2}


def test_first_decider_builds_the_first_candidate():
    spec = load("quickstart")
    g = spec.build_with(autoarch.FirstDecider())
    assert g.choices == {"digits.width": 32, "digits.i": 1, "digits.i[0].h": "mlp",
                         "digits.i[0].h.mlp.expand": 2}


# ---- an Optuna trial is a decider ------------------------------------------


@pytest.mark.parametrize("sampler", ["random", "tpe"])
def test_optuna_trials_decide_candidates(sampler):
    spec = load("tabular")
    space = spec.space()
    samplers = {"random": optuna.samplers.RandomSampler(seed=0),
                "tpe": optuna.samplers.TPESampler(seed=0, n_startup_trials=5)}
    graphs = {}

    def objective(trial):
        g = spec.build_with(autoarch.OptunaDecider(trial))
        graphs[trial.number] = g
        return g.params

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=samplers[sampler])
    study.optimize(objective, n_trials=25)
    for t in study.trials:
        g = graphs[t.number]
        assert t.params == g.choices
    # the objective's value is the parameter count of the module the trial's params
    # build, counted by torch (not the IR's own formula the objective returned)
    for t in study.trials[:5]:
        model = autoarch.compile(spec, t.params, seed=0)
        assert t.value == sum(p.numel() for p in model.parameters())
        for name, dist in t.distributions.items():
            d = space[name]
            if d.kind == "categorical":
                assert list(dist.choices) == list(d.choices)
            else:
                assert (dist.low, dist.high, dist.log) == (d.low, d.high, d.log)
    # the same assignment rebuilt outside Optuna gives the same graph
    best = study.best_trial
    assert spec.build(best.params).hash == graphs[best.number].hash

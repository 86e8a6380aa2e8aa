"""``tpe`` and ``nsga2`` propose a candidate no other trial holds (``FreshSampler``).

The reference is Optuna's own TPE / NSGA-II with the same settings, unwrapped: on the
same space and seed it does repeat candidates (so these tests can fail), the wrapped
one does not while new candidates remain; the plan is read back by a new sampler
object (a resumed run), survives pickling (Ray), and works with several objectives.
"""

from __future__ import annotations

import pickle
import warnings
from textwrap import dedent

import optuna
import pytest
from optuna.distributions import CategoricalDistribution

import autoarch
from autoarch import OptunaDecider
from autoarch.search.strategies import make_sampler
from autoarch.search.strategies._fresh import PLAN_ATTR, FreshSampler

optuna.logging.set_verbosity(optuna.logging.WARNING)

# 3 x 2 x 4 = 24 candidates
SPACE = dedent("""
    model f(x: [8]) -> [2] {
      h = act(linear(x, choice(4, 8, 16)), choice(relu, gelu))
      let k = choice(a: 1, b: 2, c: 3, d: 4)
      return linear(h, 2)
    }
""")


@pytest.fixture(scope="module")
def spec() -> autoarch.Spec:
    return autoarch.loads(SPACE, "f.spec")


def _score(g) -> float:
    return float(g.params % 13)


def _run(spec, study, n, fresh=None, values=1):
    for _ in range(n):
        if fresh is not None:
            study.sampler = fresh()
        t = study.ask()
        g = spec.build_with(OptunaDecider(t))
        v = _score(g)
        study.tell(t, v if values == 1 else [v, -float(g.params)])


def _keys(study):
    return [tuple(sorted(t.params.items(), key=str)) for t in study.trials]


def _inner(name, spec, seed):
    s = make_sampler(name, spec, seed=seed, n_objectives=1, trials=30)
    assert isinstance(s, FreshSampler)
    return s.inner


def _count(spec) -> int:
    return spec.space().count()


@pytest.mark.parametrize("name", ["tpe", "nsga2"])
def test_no_candidate_twice_while_new_ones_remain(name, spec):
    n = _count(spec)
    assert n >= 12
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = optuna.create_study(sampler=_inner(name, spec, 0), direction="maximize")
        _run(spec, ref, n)
        assert len(set(_keys(ref))) < n  # Optuna's own sampler repeats candidates
        study = optuna.create_study(
            sampler=make_sampler(name, spec, seed=0, n_objectives=1, trials=30),
            direction="maximize")
        _run(spec, study, n)
    keys = _keys(study)
    assert len(set(keys)) == n  # every candidate once
    assert all(t.system_attrs[PLAN_ATTR] for t in study.trials)


@pytest.mark.parametrize("name", ["tpe", "nsga2"])
def test_a_new_sampler_object_continues_identically(name, spec):
    make = lambda: make_sampler(name, spec, seed=5, n_objectives=1, trials=30)  # noqa: E731
    one = optuna.create_study(sampler=make(), direction="maximize")
    _run(spec, one, 16)
    many = optuna.create_study(sampler=make(), direction="maximize")
    _run(spec, many, 16, fresh=make)
    assert _keys(one) == _keys(many)
    # mid-trial: a new object reads the plan back instead of choosing again
    trial = one.ask()
    frozen = one._storage.get_trial(trial._trial_id)
    plan = frozen.system_attrs[PLAN_ATTR]
    dist = CategoricalDistribution(["relu", "gelu"])
    name_ = next(k for k in plan if plan[k] in ("relu", "gelu"))
    assert make().sample_independent(one, frozen, name_, dist) == plan[name_]
    assert trial.suggest_categorical(name_, ["relu", "gelu"]) == plan[name_]


def test_pickles_and_continues(spec):
    sampler = make_sampler("tpe", spec, seed=1, n_objectives=1, trials=30)
    study = optuna.create_study(sampler=sampler, direction="maximize")
    _run(spec, study, 6)
    study.sampler = pickle.loads(pickle.dumps(sampler))  # Ray checkpoints the searcher
    assert study.sampler._spec is None
    _run(spec, study, 6)
    assert len(set(_keys(study))) == 12


def test_several_objectives(spec):
    sampler = make_sampler("nsga2", spec, seed=2, n_objectives=2, trials=30)
    study = optuna.create_study(sampler=sampler, directions=["maximize", "maximize"])
    _run(spec, study, 20, values=2)
    assert len(set(_keys(study))) == 20
    assert study.best_trials


def test_exhausted_space_keeps_the_proposal(spec):
    n = _count(spec)
    study = optuna.create_study(
        sampler=make_sampler("tpe", spec, seed=3, n_objectives=1, trials=30),
        direction="maximize")
    _run(spec, study, n + 3)
    assert len(set(_keys(study))) == n  # then repeats: nothing new is left
    assert all(t.state.is_finished() for t in study.trials)

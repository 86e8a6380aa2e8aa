"""The strategies' `search` settings and budget-sized defaults.

``population`` and ``tournament`` (regularized evolution) are validated where the spec
is checked, with located errors; a tournament larger than the population is a located
error when the sampler is made; strategies that do not use them ignore them (as the
one-shot settings are ignored by the others), so ``--strategy`` can switch freely.
"""

from __future__ import annotations

from textwrap import dedent

import optuna
import pytest

import autoarch
from autoarch.search.strategies import evolution, make_sampler, nsga2, tpe

SPACE = dedent("""
    model m(x: [8]) -> [2] {
      h = linear(x, choice(4, 8, 16))
      return linear(act(h, choice(relu, gelu)), 2)
    }
""")


def spec_with(search: str) -> autoarch.Spec:
    return autoarch.loads(SPACE + f"search {{ {search} }}\n", "s.spec")


@pytest.mark.parametrize("setting, message", [
    ("population = 0", "population must be an integer from 1 to"),
    ("population = 2.5", "population must be an integer from 1 to"),
    ("population = true", "population must be an integer from 1 to"),
    ('population = "big"', "population must be an integer from 1 to"),
    ("tournament = 0", "tournament must be an integer from 1 to"),
    ("tournament = -2", "tournament must be an integer from 1 to"),
])
def test_bad_values_are_located_errors(setting, message):
    with pytest.raises(autoarch.SpecError, match=message) as e:
        spec_with(f"strategy = evolution  {setting}").search_config()
    err = e.value
    assert (err.filename, err.line) == ("s.spec", 6)
    assert err.column == len("search { strategy = evolution  ") + len(setting.split("=")[0]) + 3
    assert "s.spec:6:" in str(err.format())


def test_a_tournament_larger_than_the_population_is_located_at_the_tournament():
    spec = spec_with("strategy = evolution  population = 3  tournament = 5")
    with pytest.raises(autoarch.SpecError, match=r"tournament must be at most population \(3\), "
                                                 "got 5") as e:
        make_sampler("evolution", spec, seed=0, n_objectives=1)
    assert (e.value.line, e.value.column) == (6, len("search { strategy = evolution  "
                                                     "population = 3  tournament = ") + 1)


def test_evolution_reads_the_settings():
    s = evolution.make_sampler(spec_with("population = 7  tournament = 3"), seed=0,
                               n_objectives=1, trials=100)
    assert (s.population_size, s.tournament_size) == (7, 3)
    # a tournament alone: the budget-sized population, but never below the tournament
    s = evolution.make_sampler(spec_with("tournament = 9"), seed=0, n_objectives=1,
                               trials=20)
    assert (s.population_size, s.tournament_size) == (9, 9)
    s = evolution.make_sampler(spec_with("population = 3"), seed=0, n_objectives=1,
                               trials=100)
    assert (s.population_size, s.tournament_size) == (3, 2)


@pytest.mark.parametrize("strategy", ["random", "tpe", "mcts", "nsga2", "surrogate", "grid"])
def test_other_strategies_ignore_the_settings(strategy):
    spec = spec_with(f"strategy = {strategy}  population = 3  tournament = 5")
    assert make_sampler(strategy, spec, seed=0, n_objectives=1, trials=10) is not None


def test_unknown_setting_suggests_the_new_ones():
    with pytest.raises(autoarch.SpecError, match="unknown search setting 'populaton'"):
        spec_with("populaton = 3")


def test_tpe_start_up_follows_the_budget_and_differs_from_random():
    assert [tpe.startup_trials(n) for n in (5, 25, 50, 100, 1000)] == [3, 3, 5, 10, 10]
    spec = spec_with("trials = 50")
    assert tpe.make_sampler(spec, seed=0, n_objectives=1).inner._n_startup_trials == 5

    def first(sampler, n=5):
        study = optuna.create_study(sampler=sampler, direction="maximize")
        for _ in range(n):
            t = study.ask()
            spec.build_with(autoarch.OptunaDecider(t))
            study.tell(t, 0.0)
        return [t.params for t in study.trials]

    rand = first(make_sampler("random", spec, seed=0, n_objectives=1))
    ours = first(make_sampler("tpe", spec, seed=0, n_objectives=1))
    assert ours != rand
    assert ours == first(make_sampler("tpe", spec, seed=0, n_objectives=1))  # deterministic


def test_nsga2_generation_follows_the_budget():
    sizes = [nsga2.make_sampler(spec_with(""), seed=0, n_objectives=2, trials=n)
             .inner._population_size for n in (10, 50, 1000)]
    assert sizes == [6, 10, 20]

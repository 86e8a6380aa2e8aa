"""The search strategies' Optuna samplers: MCTS, regularized evolution and grid.

Optuna's own sampler contract tests run against MCTS and evolution; then each sampler's
algorithm is checked on its own terms (MCTS beats random on a structured tree;
evolution's children differ from their parents in exactly the mutated decision; the
grid visits every candidate once), statelessness across sampler objects and processes,
and a real local Ray Tune run through ``OptunaSearch``.
"""

from __future__ import annotations

import math
import os
import pickle
import statistics
import time
from pathlib import Path
from textwrap import dedent

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.testing.pytest_samplers import BasicSamplerTestCase, SingleOnlySamplerTestCase
from optuna.trial import TrialState

import autoarch
from autoarch import OptunaDecider
from autoarch.search.strategies import evolution, grid, mcts, surrogate
from autoarch.search.strategies.evolution import MUTATED_ATTR, PARENT_ATTR, EvolutionSampler
from autoarch.search.strategies.grid import ASSIGNMENT_ATTR, GridSampler
from autoarch.search.strategies.mcts import MCTSSampler
from autoarch.search.strategies.surrogate import PLAN_ATTR, SpecPool, SurrogateSampler

optuna.logging.set_verbosity(optuna.logging.WARNING)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

SMALL = dedent("""
    model g(x: [16]) -> [16] {
      let w = choice(8, 16)
      h = choice(
        small: linear(x, 16),
        deep: linear(relu(linear(x, choice(8, 32))), 16),
        mix: mlp(x, expand = int(1, 3))
      )
      return linear(h, w) if w == 16 else linear(linear(h, w), 16)
    }
""")


@pytest.fixture(scope="module")
def small_spec() -> autoarch.Spec:
    return autoarch.loads(SMALL, "g.spec")


@pytest.fixture(scope="module")
def quickstart() -> autoarch.Spec:
    return autoarch.load(EXAMPLES / "quickstart.spec")


# ---- Optuna's contract tests ---------------------------------------------------------


class TestMCTSContract(BasicSamplerTestCase, SingleOnlySamplerTestCase):
    @pytest.fixture
    def sampler(self):
        return lambda: MCTSSampler(seed=0)


class TestEvolutionContract(BasicSamplerTestCase, SingleOnlySamplerTestCase):
    @pytest.fixture
    def sampler(self):
        # a small population so that evolution (not just its random start) is exercised
        return lambda: EvolutionSampler(seed=0, population_size=3, tournament_size=2)


class TestSurrogateContract(BasicSamplerTestCase, SingleOnlySamplerTestCase):
    @pytest.fixture
    def sampler(self):
        # the contract's parameters are not the spec's: the plan is ignored for them
        spec = autoarch.loads(SMALL, "g.spec")
        return lambda: SurrogateSampler(SpecPool(spec), seed=0, startup=2)


@pytest.mark.parametrize("module", [mcts, evolution, surrogate])
def test_factories_refuse_several_objectives(module, small_spec):
    name = module.__name__.rsplit(".", 1)[1]
    with pytest.raises(autoarch.SpecError, match=f"strategy {name} is single-objective; use "
                                                 "nsga2 or tpe"):
        module.make_sampler(small_spec, seed=0, n_objectives=2)
    assert module.make_sampler(small_spec, seed=0, n_objectives=1) is not None


# ---- MCTS ------------------------------------------------------------------------------

BEST = (2, 0, 3, 1)


def tree(trial) -> float:
    """Depth 4, branching 4; a prefix near the best leaf scores near the best leaf."""
    v = 0.0
    for d in range(4):
        c = trial.suggest_categorical(f"d{d}", [0, 1, 2, 3])
        v += (4 - d) * (1 - abs(c - BEST[d]) / 3)
    return v


def trials_to_optimum(sampler, budget: int = 256) -> int:
    study = optuna.create_study(sampler=sampler, direction="maximize")
    for i in range(budget):
        t = study.ask()
        v = tree(t)
        study.tell(t, v)
        if v >= 10.0 - 1e-9:
            return i + 1
    return budget + 1


def test_mcts_finds_the_best_leaf_faster_than_random():
    seeds = range(6)
    ours = [trials_to_optimum(MCTSSampler(seed=s)) for s in seeds]
    rand = [trials_to_optimum(optuna.samplers.RandomSampler(seed=s)) for s in seeds]
    # 256 leaves: random needs ~256 on average; UCT follows the good prefixes
    assert max(ours) <= 128, ours
    assert statistics.mean(ours) * 2 < statistics.mean(rand), (ours, rand)


def test_mcts_tries_each_alternative_before_repeating_one():
    study = optuna.create_study(sampler=MCTSSampler(seed=3), direction="maximize")
    study.optimize(tree, n_trials=4)
    assert sorted(t.params["d0"] for t in study.trials) == [0, 1, 2, 3]


def conditional(trial) -> float:
    kind = trial.suggest_categorical("kind", ["mlp", "kan", None])
    s = 0.0
    if kind == "mlp":
        s += math.log10(trial.suggest_float("lr", 1e-5, 1e-1, log=True))
        s += trial.suggest_int("width", 16, 512, log=True) / 512
    elif kind == "kan":
        s += trial.suggest_float("dropout", 0.0, 0.5, step=0.1)
        s += trial.suggest_int("grid", 2, 12, step=2)
        if trial.suggest_categorical("deep", [True, False]):
            s += trial.suggest_float("decay", -1.0, 1.0)
    else:
        s += trial.suggest_int("repeat", 1, 3)
    return s


DOMAINS = {
    "lr": FloatDistribution(1e-5, 1e-1, log=True),
    "width": IntDistribution(16, 512, log=True),
    "dropout": FloatDistribution(0.0, 0.5, step=0.1),
    "grid": IntDistribution(2, 12, step=2),
    "decay": FloatDistribution(-1.0, 1.0),
    "repeat": IntDistribution(1, 3),
}


@pytest.mark.parametrize("make", [lambda: MCTSSampler(seed=1),
                                  lambda: EvolutionSampler(seed=1, population_size=5,
                                                           tournament_size=2)])
def test_conditional_and_continuous_values_are_valid(make):
    study = optuna.create_study(sampler=make(), direction="maximize")
    study.optimize(conditional, n_trials=120)
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    for t in study.trials:
        for name, v in t.params.items():
            d = DOMAINS.get(name)
            if d is None:
                continue
            want = int if isinstance(d, IntDistribution) else float
            assert type(v) is want, (name, v)
            assert d.low <= v <= d.high, (name, v)
            if d.step is not None:
                k = (v - d.low) / d.step
                assert abs(k - round(k)) < 1e-9, (name, v)
    kinds = {t.params["kind"] for t in study.trials}
    assert kinds == {"mlp", "kan", None}


def test_mcts_progressive_widening_limits_distinct_values():
    study = optuna.create_study(sampler=MCTSSampler(seed=0, widening=(1.0, 0.5)))
    study.optimize(lambda t: t.suggest_float("x", 0.0, 1.0) ** 2, n_trials=50)
    distinct = {t.params["x"] for t in study.trials}
    # at most ceil(sqrt(N)) children after N visits
    assert len(distinct) <= math.ceil(math.sqrt(49))
    assert len(distinct) >= 5


def test_mcts_avoids_failing_and_infeasible_branches():
    def objective(trial):
        kind = trial.suggest_categorical("kind", ["fails", "infeasible", "ok"])
        x = trial.suggest_int("x", 0, 3)
        if kind == "fails":
            raise RuntimeError("boom")
        trial.set_user_attr("kind", kind)
        if kind == "infeasible":
            trial.set_constraint("valid", 1.0)
            return 100.0  # a great value that must not count
        return float(x)

    study = optuna.create_study(sampler=MCTSSampler(seed=0), direction="maximize")
    study.optimize(objective, n_trials=60, catch=(RuntimeError,))
    late = [t.params["kind"] for t in study.trials[20:]]
    assert late.count("ok") > 0.6 * len(late), late


def test_mcts_pruned_trials_count_as_the_worst():
    def objective(trial):
        kind = trial.suggest_categorical("kind", ["pruned", "ok"])
        trial.suggest_int("x", 0, 3)
        if kind == "pruned":
            raise optuna.TrialPruned()
        return 1.0

    study = optuna.create_study(sampler=MCTSSampler(seed=0))
    study.optimize(objective, n_trials=30)
    late = [t.params["kind"] for t in study.trials[10:]]
    assert late.count("ok") > 0.6 * len(late), late


# ---- statelessness -------------------------------------------------------------------

MAKERS = {
    "mcts": lambda: MCTSSampler(seed=7),
    "evolution": lambda: EvolutionSampler(seed=7, population_size=4, tournament_size=2),
}


def _run(study, n: int, fresh=None) -> None:
    for _ in range(n):
        if fresh is not None:
            study.sampler = fresh()
        t = study.ask()
        study.tell(t, conditional(t))


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_a_new_sampler_object_continues_identically(name):
    make = MAKERS[name]
    one = optuna.create_study(sampler=make(), direction="maximize")
    _run(one, 40)
    many = optuna.create_study(sampler=make(), direction="maximize")
    _run(many, 40, fresh=make)
    assert [t.params for t in one.trials] == [t.params for t in many.trials]
    if name == "evolution":
        assert [t.system_attrs.get(PARENT_ATTR) for t in one.trials] == [
            t.system_attrs.get(PARENT_ATTR) for t in many.trials]


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_two_processes_sharing_a_journal_continue_identically(name, tmp_path):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    make = MAKERS[name]
    reference = optuna.create_study(sampler=make(), direction="maximize")
    _run(reference, 30)
    path = str(tmp_path / "journal.log")
    a = optuna.create_study(study_name="s", direction="maximize", sampler=make(),
                            storage=JournalStorage(JournalFileBackend(path)))
    b = optuna.load_study(study_name="s", sampler=make(),
                          storage=JournalStorage(JournalFileBackend(path)))
    for i in range(30):
        _run(a if i % 2 == 0 else b, 1)
    assert [t.params for t in reference.trials] == [t.params for t in a.trials]


def test_a_new_sampler_mid_trial_gives_the_same_suggestion():
    for make in MAKERS.values():
        study = optuna.create_study(sampler=make(), direction="maximize")
        _run(study, 25)
        trial = study.ask()  # the old sampler's before_trial has run
        frozen = study._storage.get_trial(trial._trial_id)
        dist = CategoricalDistribution(["mlp", "kan", None])
        fresh = make().sample_independent(study, frozen, "kind", dist)
        assert trial.suggest_categorical("kind", ["mlp", "kan", None]) == fresh


def test_samplers_are_fast_enough():
    for make in MAKERS.values():
        study = optuna.create_study(sampler=make(), direction="maximize")
        _run(study, 100)
        sampler = study.sampler
        trial = study.ask()
        frozen = study._storage.get_trial(trial._trial_id)
        d = FloatDistribution(1e-5, 1e-1, log=True)
        sampler.sample_independent(study, frozen, "lr", d)  # the once-per-trial snapshot
        t0 = time.perf_counter()
        for _ in range(200):
            sampler.sample_independent(study, frozen, "lr", d)
        assert (time.perf_counter() - t0) / 200 < 1e-3


# ---- evolution ------------------------------------------------------------------------


def test_evolution_children_differ_from_parents_in_the_mutated_decision(quickstart):
    spec = quickstart
    size = 6

    def objective(trial):
        graph = spec.build_with(OptunaDecider(trial))  # CandidateError would FAIL the trial
        if trial.number % 7 == 3:
            trial.set_constraint("valid", 1.0)  # infeasible: never a parent
        return graph.params

    sampler = EvolutionSampler(seed=0, population_size=size, tournament_size=3)
    study = optuna.create_study(sampler=sampler, direction="minimize")
    study.optimize(objective, n_trials=60)
    trials = study.trials
    assert all(t.state == TrialState.COMPLETE for t in trials)
    children = [t for t in trials if t.system_attrs[PARENT_ATTR] is not None]
    assert len(children) >= 40
    for child in children:
        parent = trials[child.system_attrs[PARENT_ATTR]]
        name = child.system_attrs[MUTATED_ATTR]
        assert name in parent.params
        assert child.params[name] != parent.params[name]
        shared = (set(child.params) & set(parent.params)) - {name}
        assert all(child.params[k] == parent.params[k] for k in shared), child.number
        # the child is a whole, valid candidate of the space
        graph = spec.build(child.params)
        assert dict(graph.choices) == child.params
        # aging: the parent is among the last `size` feasible trials before the child
        feasible = [t.number for t in trials[:child.number] if t.number % 7 != 3]
        assert parent.number in feasible[-size:], (child.number, parent.number)
        assert parent.number % 7 != 3


def test_evolution_is_random_until_the_population_is_full():
    study = optuna.create_study(sampler=EvolutionSampler(seed=0, population_size=10))
    study.optimize(conditional, n_trials=14)
    parents = [t.system_attrs[PARENT_ATTR] for t in study.trials]
    assert parents[:10] == [None] * 10
    assert all(p is not None for p in parents[10:])


def test_evolution_mutations_of_numbers_differ_and_fit():
    s = EvolutionSampler(seed=0)
    import random

    rng = random.Random(0)
    for d, old in [(IntDistribution(16, 512, log=True), 16), (IntDistribution(1, 2), 2),
                   (IntDistribution(0, 10, step=2), 4), (FloatDistribution(1e-5, 1.0, log=True),
                                                         1.0),
                   (FloatDistribution(0.0, 0.5, step=0.1), 0.3), (FloatDistribution(-1, 1), 0.5),
                   (IntDistribution(1, 2, log=True), 1)]:
        for _ in range(50):
            v = s.mutate(d, old, rng)
            assert v != old and d._contains(d.to_internal_repr(v)), (d, v)
            assert type(v) is (int if isinstance(d, IntDistribution) else float)


# ---- grid ----------------------------------------------------------------------------


def test_grid_visits_every_candidate_once_in_order(small_spec):
    space = small_spec.space()
    sampler = GridSampler(lambda: space.enumerate(), seed=0, check=True)
    study = optuna.create_study(sampler=sampler)
    assert not sampler.exhausted(study)
    study.optimize(lambda t: float(small_spec.build_with(OptunaDecider(t)).params),
                   n_trials=space.count() + 5)  # stops by itself when exhausted
    assert len(study.trials) == space.count() == 12
    assert [t.params for t in study.trials] == list(space.enumerate())
    assert sampler.exhausted(study)


def test_grid_retries_a_failed_candidate_once(small_spec):
    sampler = grid.make_sampler(small_spec, seed=0, n_objectives=2)
    attempts: dict[str, int] = {}

    def objective(trial):
        small_spec.build_with(OptunaDecider(trial))
        key = repr(sorted(trial.params.items()))
        attempts[key] = attempts.get(key, 0) + 1
        if trial.params["g.h"] == "small":
            raise RuntimeError("always fails")
        if trial.params.get("g.h.deep") == 32 and attempts[key] == 1:
            raise RuntimeError("fails once")
        return 0.0, 1.0

    study = optuna.create_study(sampler=sampler, directions=["minimize", "minimize"])
    study.optimize(objective, n_trials=40, catch=(RuntimeError,))
    assert sampler.exhausted(study)
    # 12 candidates; the two "small" ones (w = 8, 16) fail twice each (tried, retried),
    # the two "deep 32" ones fail once and then complete
    assert len(study.trials) == 12 + 2 + 2
    done = [t.params for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(done) == 12 - 2


def test_grid_counts_partial_and_enqueued_trials_as_held(small_spec):
    space = small_spec.space()
    sampler = GridSampler(space.enumerate, seed=0)
    study = optuna.create_study(sampler=sampler)
    every = list(space.enumerate())
    study.enqueue_trial(every[3])
    t = study.ask()
    small_spec.build_with(OptunaDecider(t))
    assert t.params == every[3]
    study.tell(t, 0.0)
    # an invalid candidate stops elaboration half-way; the system attr still says which
    t = study.ask()
    t.suggest_categorical("g.w", [8, 16])
    assert study._storage.get_trial(t._trial_id).system_attrs[ASSIGNMENT_ATTR] == every[0]
    study.tell(t, 0.0)
    for _ in range(len(every) - 2):
        t = study.ask()
        small_spec.build_with(OptunaDecider(t))
        study.tell(t, 0.0)
    assert sampler.exhausted(study)
    got = [t.system_attrs[ASSIGNMENT_ATTR] for t in study.trials]
    assert sorted(map(repr, got)) == sorted(map(repr, every))


def test_samplers_pickle(small_spec):
    for sampler in (MCTSSampler(seed=0), EvolutionSampler(seed=0),
                    grid.make_sampler(small_spec, seed=0, n_objectives=1)):
        study = optuna.create_study(sampler=sampler)
        study.optimize(lambda t: float(small_spec.build_with(OptunaDecider(t)).params),
                       n_trials=3)
        copy = pickle.loads(pickle.dumps(sampler))
        study.sampler = copy
        study.optimize(lambda t: float(small_spec.build_with(OptunaDecider(t)).params),
                       n_trials=3)
    assert [t.params for t in study.trials] == list(small_spec.space().enumerate())[:6]


def test_grid_refuses_continuous_spaces():
    spec = autoarch.load(EXAMPLES / "tabular.spec")
    with pytest.raises(autoarch.AssignmentError, match="continuous"):
        grid.make_sampler(spec, seed=0, n_objectives=1)
    with pytest.raises(autoarch.AssignmentError, match="continuous"):
        GridSampler(spec.space().enumerate, check=True)


# ---- Ray Tune ------------------------------------------------------------------------


class SpecSpace:
    """A define-by-run space for OptunaSearch: the spec asks the trial.

    Ray pickles the searcher (space and sampler included) at checkpoints, and a Spec
    does not pickle, so this holds the spec's text.
    """

    def __init__(self, text: str):
        self.text = text

    def __call__(self, trial) -> None:
        autoarch.loads(self.text, "g.spec").build_with(OptunaDecider(trial))


@pytest.mark.parametrize("make", [
    lambda: MCTSSampler(seed=0),
    lambda: EvolutionSampler(seed=0, population_size=2, tournament_size=2),
], ids=["mcts", "evolution"])
def test_ray_tune_optuna_search(make, ray_session, small_spec):
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    def score(config):  # defined here: Ray ships it by value to its workers
        return {"score": float(config["g.w"]) + (5.0 if config["g.h"] == "deep" else 0.0)}

    searcher = OptunaSearch(space=SpecSpace(SMALL), sampler=make(), metric="score",
                            mode="max")
    tuner = tune.Tuner(
        score,
        tune_config=tune.TuneConfig(search_alg=searcher, num_samples=6, reuse_actors=True,
                                    max_concurrent_trials=2),
        run_config=tune.RunConfig(storage_path=os.path.join(ray_session, "results"),
                                  verbose=0))
    results = tuner.fit()
    assert len(results) == 6 and not results.errors
    for r in results:
        small_spec.build(r.config)  # every proposal is a whole candidate
    study = searcher._ot_study
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 6
    pickle.dumps(searcher.__dict__)  # what Ray's searcher checkpoint saves


def test_evolution_population_follows_the_run_budget(quickstart):
    # documented: population = min(20, max(4, trials // 4)); tournament = min(5, max(2, pop // 2))
    by_spec = evolution.make_sampler(quickstart, seed=0, n_objectives=1)  # spec: trials = 10
    assert (by_spec.population_size, by_spec.tournament_size) == (4, 2)
    by_flag = evolution.make_sampler(quickstart, seed=0, n_objectives=1, trials=40)
    assert (by_flag.population_size, by_flag.tournament_size) == (10, 5)
    big = evolution.make_sampler(quickstart, seed=0, n_objectives=1, trials=1000)
    assert big.population_size == 20


# -- the strategies are the modules of search/strategies


def test_the_strategies_are_the_modules_of_their_folder():
    """The spec, the CLI and ``make_sampler`` know exactly the files in
    search/strategies/ (listed here with pathlib, not pkgutil); each makes an
    Optuna sampler."""
    from autoarch.compiler.settings import STRATEGIES
    from autoarch.search import strategies

    folder = Path(strategies.__file__).parent
    on_disk = {p.stem for p in folder.glob("*.py") if not p.stem.startswith("_")}
    assert set(strategies.MODULES) == on_disk
    assert set(STRATEGIES) == on_disk
    assert len(STRATEGIES) == len(set(STRATEGIES))
    spec = autoarch.load(EXAMPLES / "quickstart.spec")
    for name in sorted(on_disk):
        sampler = strategies.make_sampler(name, spec, seed=0, n_objectives=1, trials=5)
        assert isinstance(sampler, optuna.samplers.BaseSampler), name


# ---- surrogate ----------------------------------------------------------------------


def _spec_run(spec, study, n, fresh=None, score=None):
    for _ in range(n):
        if fresh is not None:
            study.sampler = fresh()
        t = study.ask()
        g = spec.build_with(OptunaDecider(t))
        study.tell(t, score(g) if score else float(g.params % 97))


def test_surrogate_continues_identically_with_new_sampler_objects(small_spec):
    make = lambda: SurrogateSampler(SpecPool(small_spec), seed=3)  # noqa: E731
    one = optuna.create_study(sampler=make(), direction="maximize")
    _spec_run(small_spec, one, 25)
    many = optuna.create_study(sampler=make(), direction="maximize")
    _spec_run(small_spec, many, 25, fresh=make)
    assert [t.params for t in one.trials] == [t.params for t in many.trials]
    assert all(t.system_attrs[PLAN_ATTR] for t in one.trials[3:12])  # 12 candidates
    # mid-trial: a new object reads the plan back
    trial = one.ask()
    frozen = one._storage.get_trial(trial._trial_id)
    dist = CategoricalDistribution([8, 16])
    assert make().sample_independent(one, frozen, "g.w", dist) == trial.suggest_categorical(
        "g.w", [8, 16])


def test_surrogate_proposes_no_candidate_twice_and_finds_the_best(small_spec):
    pool = SpecPool(small_spec)
    n = small_spec.space().count()
    best_params = max(small_spec.build(a).params for a in small_spec.space().enumerate())
    study = optuna.create_study(sampler=SurrogateSampler(pool, seed=0), direction="maximize")
    _spec_run(small_spec, study, n, score=lambda g: float(g.params))
    keys = [tuple(sorted(t.params.items(), key=str)) for t in study.trials]
    assert len(set(keys)) == len(keys) == n  # every candidate once, then exhausted
    early = max(t.value for t in study.trials[:8])
    assert early == best_params  # a linear score is found quickly


def test_surrogate_samples_a_space_too_large_to_enumerate(quickstart):
    pool = SpecPool(quickstart, enumerate_limit=10)
    sampler = SurrogateSampler(pool, seed=0, startup=2, candidates=16)
    study = optuna.create_study(sampler=sampler, direction="maximize")
    _spec_run(quickstart, study, 6)
    assert pool().enumerated is None
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    pickle.loads(pickle.dumps(sampler))  # Ray pickles the sampler



def test_surrogate_ucb_width_anneals_over_the_budget(small_spec):
    s = SurrogateSampler(SpecPool(small_spec), seed=0, trials=16)
    assert s.model == "gp" and s.explore == 2.0
    assert [s._beta(n) for n in (0, 12, 16, 40)] == [2.0, 1.0, 0.0, 0.0]
    assert SurrogateSampler(SpecPool(small_spec), seed=0)._beta(40) == 2.0  # no budget
    made = surrogate.make_sampler(small_spec, seed=0, n_objectives=1, trials=30)
    assert made.trials == 30


def test_surrogate_linear_model_is_still_there(small_spec):
    pool = SpecPool(small_spec)
    sampler = SurrogateSampler(pool, seed=0, model="linear")
    assert sampler.explore == 1.0
    study = optuna.create_study(sampler=sampler, direction="maximize")
    _spec_run(small_spec, study, 10, score=lambda g: float(g.params))
    keys = [tuple(sorted(t.params.items(), key=str)) for t in study.trials]
    assert len(set(keys)) == len(keys)
    assert all(t.system_attrs[PLAN_ATTR] for t in study.trials[3:])


def test_surrogate_fits_its_gp_on_a_bounded_set_keeping_the_best(quickstart, monkeypatch):
    """Past GP_POINTS finished trials the GP sees the best half and a random half of
    the rest (its cost grows with the cube of what it sees)."""
    monkeypatch.setattr(surrogate, "GP_POINTS", 10)
    seen: list[tuple[int, float, float]] = []
    real = SurrogateSampler._ucb

    def spy(self, X, y, Xc, beta):  # noqa: ANN001, ANN202
        seen.append((len(y), float(max(y)), float(sorted(y)[-5]) if len(y) >= 5 else 0.0))
        return real(self, X, y, Xc, beta)

    monkeypatch.setattr(SurrogateSampler, "_ucb", spy)
    pool = SpecPool(quickstart)
    study = optuna.create_study(sampler=SurrogateSampler(pool, seed=0, startup=2, trials=30),
                                direction="maximize")
    _spec_run(quickstart, study, 30, score=lambda g: float(int(g.hash[:12], 16)))
    keys = [tuple(sorted(t.params.items(), key=str)) for t in study.trials]
    assert len(set(keys)) == 30  # still never a candidate twice
    assert max(n for n, _, _ in seen) == 10 and seen[-1][0] == 10
    # the five best of the 29 finished trials are among what the last fit saw: their
    # normal scores (ranks 29 .. 25 of 29; the values are distinct) are its five largest
    assert len({t.value for t in study.trials[:29]}) == 29
    from scipy.stats import norm

    assert seen[-1][1] == pytest.approx(norm.ppf((29 - 0.5) / 29))
    assert seen[-1][2] == pytest.approx(norm.ppf((25 - 0.5) / 29))


@pytest.mark.parametrize("kwargs, message", [
    ({"model": "forest"}, "model must be 'gp' or 'linear'"),
    ({"lengthscale": 0}, "must be > 0"),
    ({"noise": -1}, "must be > 0"),
    ({"explore": -0.5}, "explore must be >= 0"),
    ({"trials": 0}, "trials must be at least 1"),
])
def test_surrogate_refuses_bad_arguments(small_spec, kwargs, message):
    with pytest.raises(ValueError, match=message):
        SurrogateSampler(SpecPool(small_spec), seed=0, **kwargs)

# ---- evolution: no wasted children ----------------------------------------------------


def test_evolution_children_are_not_earlier_trials():
    # a flat space (no branch opens a decision to sample at random): 24 candidates
    flat = autoarch.loads(dedent("""
        model f(x: [8]) -> [2] {
          h = act(linear(x, choice(4, 8, 16)), choice(relu, gelu))
          return linear(linear(h, choice(2, 3, 5, 7)), 2)
        }
    """), "f.spec")
    sampler = EvolutionSampler(seed=0, population_size=4, tournament_size=2)
    study = optuna.create_study(sampler=sampler, direction="maximize")
    _spec_run(flat, study, 20)
    seen: list[dict] = []
    children = 0
    for t in study.trials:
        parent = t.system_attrs.get(PARENT_ATTR)
        if parent is not None:
            p = study.trials[parent]
            neighbours = [{**p.params, k: v} for k, d in p.distributions.items()
                          for v in d.choices if v != p.params[k]]
            if any(n not in seen for n in neighbours):  # (else every child is a repeat)
                assert t.params not in seen, t.number
                children += 1
        seen.append(t.params)
    assert children >= 10

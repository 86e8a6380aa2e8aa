"""Regularized evolution (aging evolution; Real et al. 2019) as an Optuna sampler.

The population is the last ``population_size`` finished, feasible trials by number
(a sliding window, so the oldest member dies first, whatever its fitness). Each new
trial runs a tournament of ``tournament_size`` members drawn from the population; the
winner is the parent. The child copies the parent's value for every decision it meets
except one, chosen uniformly among the parent's parameters, which gets a different
valid value; decisions the parent did not have (a branch the mutation opened) are
sampled at random, and so are values that no longer fit the asked range. Until the
population is full, trials are sampled at random.

The parent and the mutated parameter are written to the trial's system attrs
(``evolution:parent``, ``evolution:mutated``; both None for a random trial), so the
history can say "mutated X of trial N", and so a new sampler object (another process,
a resumed study, Ray's OptunaSearch) continues the same trial the same way. Nothing
else is kept between trials. Single-objective only.

See docs/strategies.md.
"""

from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING, Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.samplers import BaseSampler
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from ._common import (
    StatelessSampler,
    check_single_objective,
    coerce,
    draw_new,
    feasible,
    fits,
    nth_value,
    sample_value,
    single_objective_only,
    size,
    trial_rng,
    vkey,
)

if TYPE_CHECKING:
    from optuna.study import Study

    from autoarch.compiler.spec import Spec

__all__ = ["EvolutionSampler", "make_sampler", "PARENT_ATTR", "MUTATED_ATTR"]

#: system attr: number of the parent trial (None: sampled at random)
PARENT_ATTR = "evolution:parent"
#: system attr: name of the mutated parameter (None: sampled at random, or nothing to mutate)
MUTATED_ATTR = "evolution:mutated"
#: system attr: the mutated parameter's new value (chosen with the parent)
VALUE_ATTR = "evolution:value"
#: mutations tried to find a child no earlier trial already is
_ATTEMPTS = 32
_NONE = object()


class _Plan:
    __slots__ = ("parent", "params", "mutated", "value")

    def __init__(self, parent: int | None, params: dict[str, Any] | None, mutated: str | None,
                 value: Any = _NONE):
        self.parent = parent
        self.params = params
        self.mutated = mutated
        self.value = value


class EvolutionSampler(StatelessSampler):
    """Regularized (aging) evolution over the decisions of a define-by-run space.

    Args:
        seed: seed of every per-trial random stream (None: a random one).
        population_size: how many of the most recent finished, feasible trials form the
            population; trials are random until that many exist.
        tournament_size: members drawn (without replacement) for each tournament.
        log_sigma: a mutated int or float decision with ``log = true`` moves by a normal
            step in log space of this fraction of its log range (other numeric decisions
            get a different value drawn uniformly).

    COMPLETE trials with a constraint above zero (infeasible), FAIL and PRUNED trials
    never join the population (a pruned trial has no final value to compete with).
    """

    _who = "EvolutionSampler"

    def __init__(self, seed: int | None = None, *, population_size: int = 20,
                 tournament_size: int = 5, log_sigma: float = 0.25):
        if population_size < 1:
            raise ValueError("population_size must be at least 1")
        if not 1 <= tournament_size <= population_size:
            raise ValueError("tournament_size must be between 1 and population_size")
        if log_sigma <= 0:
            raise ValueError("log_sigma must be > 0")
        super().__init__(seed)
        self.population_size = int(population_size)
        self.tournament_size = int(tournament_size)
        self.log_sigma = float(log_sigma)

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        if len(study.directions) == 1:
            self._plan(study, trial)  # choose the parent when the trial starts

    # -- the parent

    def population(self, study: Study, exclude: int | None = None) -> list[FrozenTrial]:
        """The current population: the last ``population_size`` finished feasible trials."""
        pop = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
               if t._trial_id != exclude and t.values and feasible(t)]
        pop.sort(key=lambda t: t.number)
        return pop[-self.population_size:]

    def _plan(self, study: Study, trial: FrozenTrial) -> _Plan:
        return self._per_trial(study, trial, lambda: self._new_plan(study, trial))

    def _new_plan(self, study: Study, trial: FrozenTrial) -> _Plan:
        """The parent recorded in the trial's system attrs, or a new one, recorded there."""
        attrs = trial.system_attrs
        if PARENT_ATTR in attrs:
            number = attrs[PARENT_ATTR]
            params = None
            if number is not None:
                storage = study._storage
                tid = storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
                params = storage.get_trial(tid).params
            plan = _Plan(number, params, attrs.get(MUTATED_ATTR), attrs.get(VALUE_ATTR, _NONE))
        else:
            plan = self._choose(study, trial)
            storage = study._storage
            storage.set_trial_system_attr(trial._trial_id, PARENT_ATTR, plan.parent)
            storage.set_trial_system_attr(trial._trial_id, MUTATED_ATTR, plan.mutated)
            if plan.value is not _NONE:
                storage.set_trial_system_attr(trial._trial_id, VALUE_ATTR, plan.value)
        return plan

    def _choose(self, study: Study, trial: FrozenTrial) -> _Plan:
        pop = self.population(study, exclude=trial._trial_id)
        if len(pop) < self.population_size:
            return _Plan(None, None, None)
        rng = trial_rng(self._seed, trial.number, "evolution")
        contenders = rng.sample(pop, self.tournament_size)
        sign = 1.0 if study.directions[0] == StudyDirection.MAXIMIZE else -1.0
        parent = contenders[0]
        for t in contenders[1:]:
            if sign * t.value > sign * parent.value:  # type: ignore[operator]
                parent = t
        names = sorted(n for n, d in parent.distributions.items() if not d.single())
        if not names:
            return _Plan(parent.number, parent.params, None)
        # a child that some earlier trial already is would be a wasted trial: mutate
        # again (another decision, another value), up to _ATTEMPTS times
        earlier = [t.params for t in study.get_trials(deepcopy=False)
                   if t._trial_id != trial._trial_id and t.params]
        for _ in range(_ATTEMPTS):
            mutated = names[rng.randrange(len(names))]
            dist = parent.distributions[mutated]
            value = self.mutate(dist, coerce(dist, parent.params[mutated]), rng)
            child = {**parent.params, mutated: value}
            if not any(_within(p, child) for p in earlier):
                break
        return _Plan(parent.number, parent.params, mutated, value)

    # -- values

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        check_single_objective(study, "EvolutionSampler")
        dist = param_distribution
        plan = self._plan(study, trial)
        rng = trial_rng(self._seed, trial.number, param_name)
        if plan.params is None or param_name not in plan.params:
            return sample_value(dist, rng)
        old = plan.params[param_name]
        if not fits(dist, old):
            return draw_new(dist, rng, {vkey(old)})
        if param_name == plan.mutated:
            if plan.value is not _NONE and fits(dist, plan.value):
                return coerce(dist, plan.value)
            return self.mutate(dist, coerce(dist, old), rng)
        return coerce(dist, old)

    def mutate(self, dist: BaseDistribution, old: Any, rng: random.Random) -> Any:
        """A value of ``dist`` other than ``old`` (``old`` itself if it is the only one)."""
        n = size(dist)
        if n == 1:
            return old
        if isinstance(dist, CategoricalDistribution):
            others = [c for c in dist.choices if vkey(c) != vkey(old)]
            return others[rng.randrange(len(others))]
        assert isinstance(dist, IntDistribution | FloatDistribution)
        if dist.log:
            lo, hi = math.log(dist.low), math.log(dist.high)
            for _ in range(8):
                x = min(max(math.log(old) + rng.gauss(0.0, self.log_sigma * (hi - lo)), lo), hi)
                v: Any = math.exp(x)
                if isinstance(dist, IntDistribution):
                    v = min(max(int(round(v)), dist.low), dist.high)
                else:
                    v = float(min(max(v, dist.low), dist.high))
                if v != old:
                    return v
            if isinstance(dist, IntDistribution):  # a small range: the next value over
                return old + 1 if old < dist.high and (old == dist.low or rng.random() < 0.5) \
                    else old - 1
            return draw_new(dist, rng, {vkey(old)})
        if n is None:
            return draw_new(dist, rng, {vkey(old)})
        i = int(round((old - dist.low) / dist.step))  # type: ignore[operator]
        j = rng.randrange(n - 1)
        return nth_value(dist, j + 1 if j >= i else j)


def _within(params: dict[str, Any], child: dict[str, Any]) -> bool:
    """Whether a trial with ``params`` is the candidate ``child`` leads to: each of its
    values is the child's (then elaboration follows its path and asks nothing else)."""
    return all(k in child and vkey(child[k]) == vkey(v) for k, v in params.items())


def make_sampler(spec: Spec, *, seed: int | None, n_objectives: int,
                 trials: int | None = None) -> BaseSampler:
    """The sampler of ``strategy = evolution``.

    ``search { population = P  tournament = K }`` set the sizes. Without them, the
    population is a quarter of the trial budget (``trials``, by default the spec's
    ``search { trials = N }``), at least 4 and at most 20, so that short searches still
    evolve (and at least ``tournament`` when that is given); the tournament is half the
    population, at least 2 and at most 5. A tournament larger than a given population
    is a SpecError at the ``tournament`` setting.
    """
    single_objective_only("evolution", n_objectives)
    cfg = spec.search_config()
    if trials is None:
        trials = int(cfg["trials"])
    population, tournament = cfg.get("population"), cfg.get("tournament")
    if population is None:
        population = max(min(20, max(4, trials // 4)), tournament or 0)
    if tournament is None:
        tournament = min(5, max(2, population // 2), population)
    if tournament > population:
        from autoarch.dsl.errors import SpecValueError

        span = next((s.value.span for s in spec.program.search.settings
                     if s.name == "tournament"), None) if spec.program.search else None
        raise SpecValueError(f"tournament must be at most population ({population}), got "
                             f"{tournament}", span,
                             hint="a tournament draws its members from the population"
                             ).with_source(spec.source)
    return EvolutionSampler(seed=seed, population_size=int(population),
                            tournament_size=int(tournament))

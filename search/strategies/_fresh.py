"""Fresh proposals: an Optuna sampler wrapped so that each trial proposes a new candidate.

Optuna's TPE and NSGA-II choose a trial's values one decision at a time, and in a
small discrete space they often land on a candidate an earlier trial already is
(TPE: about a quarter of its proposals on the shipped tables). The driver does not
train a duplicate again, but the trial is spent. :class:`FreshSampler` asks the
wrapped sampler for the whole candidate when the trial starts, by *rehearsing* the
elaboration (``spec.elaborate(decider, build=False)``, each decision answered as
Optuna's ``Trial`` would: the wrapped sampler's relative values first, then its
independent ones), and asks again (its generator moves on) while the candidate is
one another trial holds, finished or running, up to ``attempts`` times (4); then up
to 32 uniformly random candidates; then it keeps the first proposal.

The chosen candidate is written to the trial's system attr ``fresh:plan`` (None:
the rehearsal failed, the trial samples as the wrapped sampler would), and the
trial's ``suggest_*`` return its values; a new sampler object (a resumed study,
another process, Ray's OptunaSearch after unpickling) reads the plan back instead of
choosing again. Everything else (seeds, start-up, generations, ``after_trial``) is
the wrapped sampler's.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

from ._common import (
    SpecText,
    TrialCache,
    coerce,
    fits,
    sample_value,
    trial_key,
    trial_rng,
    vkey,
)

if TYPE_CHECKING:
    from optuna.study import Study

    from autoarch.compiler.spec import Spec

__all__ = ["FreshSampler", "PLAN_ATTR", "distribution"]

#: system attr: the candidate (decision name -> value) the trial was given
PLAN_ATTR = "fresh:plan"
#: proposals asked of the wrapped sampler to find a new candidate (each one costs a
#: proposal: TPE fits its estimators again)
ATTEMPTS = 4
#: uniformly random candidates drawn after that
DRAWS = 32


def distribution(d: Any) -> BaseDistribution:
    """The Optuna distribution ``OptunaDecider`` asks for a decision."""
    if d.kind == "categorical":
        return CategoricalDistribution(list(d.choices))
    if d.kind == "int":
        return IntDistribution(d.low, d.high, log=d.log, step=d.step)
    return FloatDistribution(d.low, d.high, log=d.log, step=d.step)


class _Rehearsal:
    """A decider that answers with ``sample(name, distribution)`` and keeps the answers."""

    def __init__(self, sample: Callable[[str, BaseDistribution], Any]):
        self.sample = sample
        self.params: dict[str, Any] = {}

    def decide(self, d: Any) -> Any:
        v = self.sample(d.name, distribution(d))
        self.params[d.name] = v
        return v


def _key(params: Mapping[str, Any]) -> frozenset[tuple[str, Any]]:
    return frozenset((k, vkey(v)) for k, v in params.items())


class FreshSampler(SpecText, BaseSampler):
    """``inner``'s proposals, re-asked until the trial's candidate is a new one.

    Args:
        inner: the Optuna sampler whose proposals are used.
        spec: the spec whose space is searched (held as text; picklable).
        seed: seed of the random fallback draws.
        attempts: proposals asked of ``inner`` before random draws.
    """

    def __init__(self, inner: BaseSampler, spec: Spec, *, seed: int, attempts: int = ATTEMPTS):
        self.inner = inner
        self._hold(spec)
        self._seed = int(seed)
        self.attempts = int(attempts)
        self._cache = TrialCache()

    # -- the plan

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self.inner.before_trial(study, trial)
        self._plan(study, trial)

    def _plan(self, study: Study, trial: FrozenTrial) -> dict[str, Any] | None:
        key = trial_key(study, trial)
        hit = self._cache.get(key)
        if hit is not None:
            return hit[0]
        attrs = trial.system_attrs
        if PLAN_ATTR in attrs:
            plan = attrs[PLAN_ATTR]
        else:
            plan = self._choose(study, trial)
            study._storage.set_trial_system_attr(trial._trial_id, PLAN_ATTR, plan)
        self._cache.put(key, (plan,))
        return plan

    def _rehearse(self, sample: Callable[[str, BaseDistribution], Any]) -> dict[str, Any]:
        from autoarch.dsl.errors import SpecError

        decider = _Rehearsal(sample)
        try:
            self.spec().elaborate(decider, build=False)
        except SpecError:
            pass  # an invalid candidate: the trial meets the same error with these values
        return decider.params

    def _choose(self, study: Study, trial: FrozenTrial) -> dict[str, Any] | None:
        inner = self.inner
        taken = {_key(t.params) for t in study.get_trials(deepcopy=False)
                 if t._trial_id != trial._trial_id and t.params}
        space = inner.infer_relative_search_space(study, trial)
        first = None
        for _ in range(self.attempts):
            relative = inner.sample_relative(study, trial, space) if space else {}

            def ask(name: str, dist: BaseDistribution,
                    relative: dict[str, Any] = relative) -> Any:
                if name in relative and name in space and fits(dist, relative[name]):
                    return coerce(dist, relative[name])
                return inner.sample_independent(study, trial, name, dist)

            plan = self._rehearse(ask)
            if first is None:
                first = plan
            if _key(plan) not in taken:
                return plan
        rng = trial_rng(self._seed, trial.number, "fresh")
        for _ in range(DRAWS):
            plan = self._rehearse(lambda name, dist: sample_value(dist, rng))
            if _key(plan) not in taken:
                return plan
        return first

    # -- Optuna's interface

    def infer_relative_search_space(self, study: Study,
                                    trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(self, study: Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return {}

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        plan = self._plan(study, trial)
        if plan and param_name in plan and fits(param_distribution, plan[param_name]):
            return coerce(param_distribution, plan[param_name])
        return self.inner.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self._cache.drop(trial_key(study, trial))
        self.inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.inner.reseed_rng()
        self._seed = random.SystemRandom().randrange(2**63)

"""What the strategy samplers share: distribution helpers, the per-trial cache, a base class.

The helpers (:func:`sample_value`, :func:`fits`, :func:`coerce`, :func:`trial_rng`, ...)
work on Optuna distributions and parameter values; :class:`StatelessSampler` is the base
of the samplers that keep nothing between trials but their seed (MCTS, evolution, grid).
:mod:`.mcts` re-exports the helpers under their old names.

See docs/strategies.md.
"""

from __future__ import annotations

import bisect
import math
import random
import threading
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.samplers import BaseSampler
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from autoarch.dsl.errors import CommandError

if TYPE_CHECKING:
    from optuna.study import Study

    from autoarch.compiler.spec import Spec

_T = TypeVar("_T")

#: how many candidate draws progressive widening makes to find a value not tried yet
_DRAWS = 32
#: discrete ranges up to this size are enumerated when random draws keep hitting tried values
_ENUMERATE_LIMIT = 4096


def fresh_seed() -> int:
    return random.SystemRandom().randrange(2**63)


def trial_rng(seed: int, number: int, *salt: Any) -> random.Random:
    """A generator seeded from the sampler's seed, the trial number and a salt.

    Seeding from text uses SHA-512, so the stream is the same in every process.
    """
    return random.Random(":".join([str(seed), str(number), *map(str, salt)]))


class TrialSeeded:
    """Mixin for Optuna's own samplers (random, TPE, NSGA-II): per-trial seeds.

    ``class S(TrialSeeded, optuna.samplers.XSampler)`` takes X's arguments (``seed``
    among them) and needs no body of its own.

    Their generators are reseeded from ``(seed, trial number)`` before every trial,
    so a resumed study (a new sampler object on an existing study) continues the
    sequence an uninterrupted run would have drawn instead of replaying it from
    its start, and every process draws the same values for the same trial.
    """

    _trial_seed: int
    #: salt of the per-trial seeds: samplers with different salts draw different values
    #: from the same seed (TPE's start-up trials are not random's first trials)
    _salt: ClassVar[str] = "optuna"

    def __init__(self, seed: int | None = None, **kwargs: Any):
        super().__init__(seed=seed, **kwargs)  # type: ignore[call-arg]
        self._trial_seed = fresh_seed() if seed is None else seed

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        from optuna.samplers._lazy_random_state import LazyRandomState

        rng = trial_rng(self._trial_seed, trial.number, self._salt)
        for owner in (self, getattr(self, "_random_sampler", None)):
            state = getattr(owner, "_rng", None)
            if isinstance(state, LazyRandomState):
                state.rng.seed(rng.randrange(2**32))
        super().before_trial(study, trial)  # type: ignore[misc]


class SingleObjectiveError(CommandError, ValueError):
    """A single-objective strategy (or pruner) given several objectives.

    A one-line user error, and a ValueError, as Optuna's samplers raise for a study
    they cannot serve.
    """


def single_objective(who: str, n_objectives: int) -> None:
    """The one check that ``who`` (a strategy, a sampler, a pruner) gets one objective."""
    if n_objectives > 1:
        raise SingleObjectiveError(f"{who} is single-objective; use nsga2 or tpe for "
                                   f"several objectives (this search has {n_objectives})")


def check_single_objective(study: Study, who: str) -> None:
    single_objective(who, len(study.directions))


def vkey(v: Any) -> tuple[bool, Any]:
    """A hashable key for a parameter value: ``True`` and ``1`` differ, ``1`` and ``1.0`` not."""
    return (v.__class__ is bool, v)


def size(dist: BaseDistribution) -> int | None:
    """Number of values of a distribution; None for a continuous float range."""
    if isinstance(dist, CategoricalDistribution):
        return len(dist.choices)
    if isinstance(dist, IntDistribution):
        return (dist.high - dist.low) // dist.step + 1
    assert isinstance(dist, FloatDistribution)
    if dist.step is None:
        return None if dist.high > dist.low else 1
    return int(math.floor((dist.high - dist.low) / dist.step + 1e-9)) + 1


def nth_value(dist: BaseDistribution, i: int) -> Any:
    """The ``i``-th value of a discrete distribution, as the right Python type."""
    if isinstance(dist, CategoricalDistribution):
        return dist.choices[i]
    if isinstance(dist, IntDistribution):
        return int(dist.low + dist.step * i)
    assert isinstance(dist, FloatDistribution) and dist.step is not None
    v = float(Decimal(repr(dist.low)) + i * Decimal(repr(dist.step)))
    return min(max(v, dist.low), dist.high)


def sample_value(dist: BaseDistribution, rng: random.Random) -> Any:
    """One value drawn from ``dist`` (log-uniformly where ``log``), as the right Python type."""
    if isinstance(dist, CategoricalDistribution):
        return dist.choices[rng.randrange(len(dist.choices))]
    if isinstance(dist, IntDistribution):
        if dist.log:
            lo, hi = math.log(dist.low - 0.5), math.log(dist.high + 0.5)
            v = int(round(math.exp(rng.uniform(lo, hi))))
            return min(max(v, dist.low), dist.high)
        return nth_value(dist, rng.randrange(size(dist)))  # type: ignore[arg-type]
    assert isinstance(dist, FloatDistribution)
    if dist.step is not None:
        return nth_value(dist, rng.randrange(size(dist)))  # type: ignore[arg-type]
    if dist.log:
        v = math.exp(rng.uniform(math.log(dist.low), math.log(dist.high)))
    else:
        v = rng.uniform(dist.low, dist.high)
    return float(min(max(v, dist.low), dist.high))


def choice_index(dist: CategoricalDistribution, v: Any) -> int | None:
    """Position of ``v`` among the choices (same type first; ``True`` is never ``1``)."""
    fallback = None
    for i, c in enumerate(dist.choices):
        if c.__class__ is v.__class__ and c == v:
            return i
        if fallback is None and c == v and vkey(c)[0] == vkey(v)[0]:
            fallback = i
    return fallback


def fits(dist: BaseDistribution, v: Any) -> bool:
    """Whether ``v`` is a value of ``dist`` (it may come from a trial with another range)."""
    if isinstance(dist, CategoricalDistribution):
        return choice_index(dist, v) is not None
    if isinstance(v, bool) or not isinstance(v, int | float):
        return False
    if isinstance(dist, IntDistribution) and v != int(v):
        return False
    try:
        return bool(dist._contains(dist.to_internal_repr(v)))
    except (ValueError, TypeError, OverflowError):
        return False


def coerce(dist: BaseDistribution, v: Any) -> Any:
    """``v`` (which :func:`fits`) as the distribution's own value and Python type."""
    if isinstance(dist, CategoricalDistribution):
        return dist.choices[choice_index(dist, v)]  # type: ignore[index]
    if isinstance(dist, IntDistribution):
        return int(v)
    return float(v)


def draw_new(dist: BaseDistribution, rng: random.Random, tried: set[Any]) -> Any:
    """A value of ``dist`` whose :func:`vkey` is not in ``tried`` (if one exists)."""
    v = sample_value(dist, rng)
    for _ in range(_DRAWS):
        if vkey(v) not in tried:
            return v
        v = sample_value(dist, rng)
    n = size(dist)
    if n is not None and n <= _ENUMERATE_LIMIT:
        free = [x for x in (nth_value(dist, i) for i in range(n)) if vkey(x) not in tried]
        if free:
            return free[rng.randrange(len(free))]
    return v


def feasible(trial: FrozenTrial) -> bool:
    """No constraint (``trial.set_constraint``) is above zero."""
    return all(c <= 0.0 for c in trial.constraints.values())


def rank_rewards(trials: Iterable[FrozenTrial], direction: StudyDirection) -> dict[int, float]:
    """Trial number -> reward in [0, 1]: the rank of its value among the given trials.

    The best gets 1, the worst 0, ties share the mean of their ranks; a lone trial gets 1.
    """
    pairs = [(t.number, t.value) for t in trials]
    if not pairs:
        return {}
    sign = 1.0 if direction == StudyDirection.MAXIMIZE else -1.0
    ordered = sorted(sign * v for _, v in pairs)  # type: ignore[operator]
    n = len(ordered)
    if n == 1:
        return {pairs[0][0]: 1.0}
    out = {}
    for number, v in pairs:
        x = sign * v  # type: ignore[operator]
        lo, hi = bisect.bisect_left(ordered, x), bisect.bisect_right(ordered, x)
        out[number] = (lo + 0.5 * (hi - lo - 1)) / (n - 1)
    return out


class SpecText:
    """Holds a spec as its text, so that what holds it pickles (Ray pickles samplers):
    ``spec()`` is the spec, parsed again once per process after unpickling."""

    def _hold(self, spec: Spec) -> None:
        self.source, self.filename = spec.source, spec.filename
        self._spec: Spec | None = spec

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_spec"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _spec=None)

    def spec(self) -> Spec:
        if self._spec is None:
            from autoarch.compiler.spec import loads

            self._spec = loads(self.source, self.filename)
        return self._spec


class TrialCache:
    """Data a sampler computes once per trial (never across trials): trial id -> value.

    Bounded, thread-safe, and dropped when pickled (Ray checkpoints the searcher).
    """

    def __init__(self, limit: int = 32):
        self.limit = limit
        self._data: dict[Any, Any] = {}
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        return self._data.get(key)

    def put(self, key: Any, value: Any) -> Any:
        with self._lock:
            self._data[key] = value
            while len(self._data) > self.limit:
                self._data.pop(next(iter(self._data)), None)
        return value

    def drop(self, key: Any) -> None:
        with self._lock:
            self._data.pop(key, None)

    def __getstate__(self) -> dict[str, Any]:
        return {"limit": self.limit}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["limit"])  # type: ignore[misc]


def trial_key(study: Study, trial: FrozenTrial) -> tuple[int, int, int]:
    return (id(study._storage), study._study_id, trial._trial_id)


def single_objective_only(strategy: str, n_objectives: int) -> None:
    single_objective(f"strategy {strategy}", n_objectives)


class StatelessSampler(BaseSampler):
    """A sampler that keeps nothing between trials but its seed.

    Holds ``_seed`` (``reseed_rng`` draws a fresh one) and a :class:`TrialCache` of what
    it computes once per trial, dropped in ``after_trial`` (and on pickling). It samples
    every parameter independently: the relative search space is empty.

    ``_who`` names the sampler in the error a study with several objectives gets from
    ``sample_relative``; None (the default) accepts any number of objectives.
    """

    _who: ClassVar[str | None] = None

    def __init__(self, seed: int | None = None):
        self._seed = fresh_seed() if seed is None else int(seed)
        self._cache = TrialCache()

    def reseed_rng(self) -> None:
        self._seed = fresh_seed()

    def infer_relative_search_space(self, study: Study,
                                    trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(self, study: Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if self._who is not None:
            check_single_objective(study, self._who)
        return {}

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self._cache.drop(trial_key(study, trial))

    def _per_trial(self, study: Study, trial: FrozenTrial, compute: Callable[[], _T]) -> _T:
        """The trial's cached value, or ``compute()``, cached (None is never cached)."""
        key = trial_key(study, trial)
        value = self._cache.get(key)
        if value is not None:
            return value
        return self._cache.put(key, compute())

"""Monte Carlo tree search over the tree of decisions (UCT, DeepArchitect-style).

The tree is the one elaboration walks: each node is the list of values given so far
in the current trial, in the order the spec met its decisions; its children are the
values of the next decision. A finished trial lies *under* a node when it has the
same values for every parameter the current trial has already been given (define-by-
run makes that the same as following the same path: conditional decisions simply
appear or not).

Nothing is kept in the sampler between trials except its seed: every trial rebuilds
its statistics from the study's trials, so the sampler works across processes, on
resumed studies and inside Ray Tune's ``OptunaSearch``. Randomness is seeded per
trial from ``(seed, trial.number, parameter name)``.

This module also holds the distribution helpers the other strategy modules share
(:func:`sample_value`, :func:`fits`, :func:`coerce`, :func:`trial_rng`, ...).

See docs/strategies.md.
"""

from __future__ import annotations

import bisect
import math
import random
import threading
from collections.abc import Iterable, Sequence
from decimal import Decimal
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

if TYPE_CHECKING:
    from optuna.study import Study

    from autoarch.compiler.spec import Spec

__all__ = ["MCTSSampler", "make_sampler"]

#: how many candidate draws progressive widening makes to find a value not tried yet
_DRAWS = 32
#: discrete ranges up to this size are enumerated when random draws keep hitting tried values
_ENUMERATE_LIMIT = 4096


# ---- shared helpers (also used by evolution.py and grid.py) -------------------------


def fresh_seed() -> int:
    return random.SystemRandom().randrange(2**63)


def trial_rng(seed: int, number: int, *salt: Any) -> random.Random:
    """A generator seeded from the sampler's seed, the trial number and a salt.

    Seeding from text uses SHA-512, so the stream is the same in every process.
    """
    return random.Random(":".join([str(seed), str(number), *map(str, salt)]))


def check_single_objective(study: Study, who: str) -> None:
    n = len(study.directions)
    if n > 1:
        raise ValueError(f"{who} is single-objective, but this study has {n} objectives; "
                         "use NSGA-II (nsga2) or TPE for several objectives")


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


# ---- MCTS ---------------------------------------------------------------------------


class _Snapshot:
    """The study's other trials as (params, reward) rows, and the rows under the current node."""

    __slots__ = ("rows", "prefix", "under")

    def __init__(self, rows: list[tuple[dict[str, Any], float]]):
        self.rows = rows
        self.prefix: dict[str, Any] = {}
        self.under = rows

    def at(self, params: dict[str, Any]) -> list[tuple[dict[str, Any], float]]:
        """Rows whose params agree with ``params`` on every name in it."""
        old = self.prefix
        if len(params) >= len(old) and all(
                k in params and vkey(params[k]) == vkey(v) for k, v in old.items()):
            base, new = self.under, [(k, vkey(v)) for k, v in params.items() if k not in old]
        else:
            base, new = self.rows, [(k, vkey(v)) for k, v in params.items()]
        if new:
            base = [r for r in base
                    if all(k in r[0] and vkey(r[0][k]) == kv for k, kv in new)]
        self.prefix, self.under = dict(params), base
        return base


class MCTSSampler(BaseSampler):
    """UCT over the tree of decisions, rebuilt from the study at every trial.

    Args:
        seed: seed of every per-trial random stream (None: a random one).
        exploration: the UCT constant ``c`` in ``mean + c * sqrt(ln N / n)``.
        widening: ``(c, alpha)`` of progressive widening for int and float decisions: a
            node visited N times may have ``ceil(c * N ** alpha)`` distinct values.
        virtual_loss: count trials still running (other than the current one) as visits
            with reward 0, so that parallel workers spread out; no effect when trials run
            one at a time.

    Rewards are ranks: a COMPLETE, feasible trial gets the rank of its objective value
    among all such trials, scaled to [0, 1] (1 is best, direction-aware). PRUNED trials,
    FAIL trials and infeasible trials (a constraint above zero) count as visits with
    reward 0 (the worst). Single-objective only.
    """

    def __init__(self, seed: int | None = None, *, exploration: float = math.sqrt(2),
                 widening: tuple[float, float] = (1.0, 0.5), virtual_loss: bool = True):
        if exploration < 0:
            raise ValueError("exploration must be >= 0")
        if widening[0] <= 0 or not 0 <= widening[1] <= 1:
            raise ValueError("widening must be (c > 0, 0 <= alpha <= 1)")
        self._seed = fresh_seed() if seed is None else int(seed)
        self.exploration = float(exploration)
        self.widening = (float(widening[0]), float(widening[1]))
        self.virtual_loss = virtual_loss
        self._cache = TrialCache()

    def reseed_rng(self) -> None:
        self._seed = fresh_seed()

    def infer_relative_search_space(self, study: Study,
                                    trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(self, study: Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        check_single_objective(study, "MCTSSampler")
        return {}

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self._cache.drop(trial_key(study, trial))

    def _snapshot(self, study: Study, trial: FrozenTrial) -> _Snapshot:
        key = trial_key(study, trial)
        snap = self._cache.get(key)
        if snap is not None:
            return snap
        states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        if self.virtual_loss:
            states += (TrialState.RUNNING,)
        others = [t for t in study.get_trials(deepcopy=False, states=states)
                  if t._trial_id != trial._trial_id and t.params]
        good = [t for t in others
                if t.state == TrialState.COMPLETE and t.values and feasible(t)]
        rewards = rank_rewards(good, study.directions[0])
        rows = [(t.params, rewards.get(t.number, 0.0)) for t in others]
        return self._cache.put(key, _Snapshot(rows))

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        check_single_objective(study, "MCTSSampler")
        dist = param_distribution
        rows = self._snapshot(study, trial).at(trial.params)
        rng = trial_rng(self._seed, trial.number, param_name)
        # children of this node: value key -> [visits, reward sum, value]
        children: dict[Any, list[Any]] = {}
        for params, reward in rows:
            if param_name in params:
                v = params[param_name]
                c = children.get(vkey(v))
                if c is None:
                    children[vkey(v)] = [1, reward, v]
                else:
                    c[0] += 1
                    c[1] += reward
        allowed = {k: c for k, c in children.items() if fits(dist, c[2])}
        if isinstance(dist, CategoricalDistribution):
            untried = [c for c in dist.choices if vkey(c) not in allowed]
            if untried:
                return untried[rng.randrange(len(untried))]
        else:
            n_values = size(dist)
            visits = sum(c[0] for c in allowed.values())
            k = math.ceil(self.widening[0] * visits ** self.widening[1]) if visits else 1
            if n_values is not None:
                k = min(k, n_values)
            if len(allowed) < k:
                return draw_new(dist, rng, set(allowed))
        return coerce(dist, self._uct(list(allowed.values()), rng))

    def _uct(self, children: list[list[Any]], rng: random.Random) -> Any:
        log_n = math.log(sum(c[0] for c in children))
        best: list[Any] = []
        top = -math.inf
        for n, total, value in children:
            score = total / n + self.exploration * math.sqrt(log_n / n)
            if score > top + 1e-12:
                top, best = score, [value]
            elif score >= top - 1e-12:
                best.append(value)
        return best[rng.randrange(len(best))] if len(best) > 1 else best[0]


def make_sampler(spec: Spec, *, seed: int | None, n_objectives: int) -> BaseSampler:
    """The sampler of ``strategy = mcts``."""
    single_objective_only("mcts", n_objectives)
    return MCTSSampler(seed=seed)


def single_objective_only(strategy: str, n_objectives: int) -> None:
    if n_objectives > 1:
        from autoarch.dsl.errors import SpecError

        raise SpecError(f"strategy {strategy} is single-objective; use nsga2 or tpe for a "
                        "list of objectives")


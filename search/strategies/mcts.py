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

The distribution helpers the strategy modules share (:func:`sample_value`,
:func:`fits`, :func:`coerce`, :func:`trial_rng`, ...) live in :mod:`._common`; this
module re-exports them under their old names.

See docs/strategies.md.
"""

from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING, Any

from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

# the shared helpers live in _common; the ones not used here are re-exported, as before
from ._common import (  # noqa: F401
    _DRAWS,
    _ENUMERATE_LIMIT,
    StatelessSampler,
    TrialCache,
    check_single_objective,
    choice_index,
    coerce,
    draw_new,
    feasible,
    fits,
    fresh_seed,
    nth_value,
    rank_rewards,
    sample_value,
    single_objective_only,
    size,
    trial_key,
    trial_rng,
    vkey,
)

if TYPE_CHECKING:
    from optuna.study import Study

    from autoarch.compiler.spec import Spec

__all__ = ["MCTSSampler", "make_sampler"]

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


class MCTSSampler(StatelessSampler):
    """UCT over the tree of decisions, rebuilt from the study at every trial.

    Args:
        seed: seed of every per-trial random stream (None: a random one).
        exploration: the UCT constant ``c`` in ``mean + c * sqrt(ln N / n)``.
        widening: ``(c, alpha)`` of progressive widening for int and float decisions: a
            node visited N times may have ``ceil(c * N ** alpha)`` distinct values.
        virtual_loss: count trials still running (other than the current one) as visits
            with reward 0, so that parallel workers spread out; no effect when trials run
            one at a time.
        rave: pseudo-count ``k`` of RAVE for categorical decisions: a child's mean reward
            is ``(sum + k * g) / (n + k)``, where ``g`` is the mean reward of that value
            of the decision over every trial of the study (1 if none has it), and every
            choice is scored (tried or not) by that mean plus
            ``exploration * sqrt(ln(N + 1) / (n + 1))``. 0: plain UCT, untried first.

    Rewards are ranks: a COMPLETE, feasible trial gets the rank of its objective value
    among all such trials, scaled to [0, 1] (1 is best, direction-aware). PRUNED trials,
    FAIL trials and infeasible trials (a constraint above zero) count as visits with
    reward 0 (the worst). Single-objective only.
    """

    _who = "MCTSSampler"

    def __init__(self, seed: int | None = None, *, exploration: float = math.sqrt(2),
                 widening: tuple[float, float] = (1.0, 0.5), virtual_loss: bool = True,
                 rave: float = 2.0):
        if exploration < 0:
            raise ValueError("exploration must be >= 0")
        if widening[0] <= 0 or not 0 <= widening[1] <= 1:
            raise ValueError("widening must be (c > 0, 0 <= alpha <= 1)")
        super().__init__(seed)
        self.exploration = float(exploration)
        self.widening = (float(widening[0]), float(widening[1]))
        self.virtual_loss = virtual_loss
        if rave < 0:
            raise ValueError("rave must be >= 0")
        self.rave = float(rave)

    def _snapshot(self, study: Study, trial: FrozenTrial) -> _Snapshot:
        return self._per_trial(study, trial, lambda: self._new_snapshot(study, trial))

    def _new_snapshot(self, study: Study, trial: FrozenTrial) -> _Snapshot:
        states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        if self.virtual_loss:
            states += (TrialState.RUNNING,)
        others = [t for t in study.get_trials(deepcopy=False, states=states)
                  if t._trial_id != trial._trial_id and t.params]
        good = [t for t in others
                if t.state == TrialState.COMPLETE and t.values and feasible(t)]
        rewards = rank_rewards(good, study.directions[0])
        rows = [(t.params, rewards.get(t.number, 0.0)) for t in others]
        return _Snapshot(rows)

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
        if isinstance(dist, CategoricalDistribution) and self.rave > 0:
            return self._rave(dist, allowed, self._snapshot(study, trial).rows, param_name, rng)
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

    def _rave(self, dist: CategoricalDistribution, children: dict[Any, list[Any]],
              rows: list[tuple[dict[str, Any], float]], name: str, rng: random.Random) -> Any:
        """UCT whose means are shrunk towards the value's mean reward over the whole
        study (RAVE / all-moves-as-first): ``(sum + k * global) / (n + k)``; a value
        never tried anywhere gets the optimistic global mean 1."""
        glob: dict[Any, list[float]] = {}
        for params, reward in rows:
            if name in params:
                g = glob.setdefault(vkey(params[name]), [0, 0.0])
                g[0] += 1
                g[1] += reward
        k = self.rave
        log_n = math.log(sum(c[0] for c in children.values()) + 1)
        best: list[Any] = []
        top = -math.inf
        for value in dist.choices:
            n, total = children[vkey(value)][:2] if vkey(value) in children else (0, 0.0)
            g = glob.get(vkey(value))
            prior = g[1] / g[0] if g else 1.0
            score = ((total + k * prior) / (n + k)
                     + self.exploration * math.sqrt(log_n / (n + 1)))
            if score > top + 1e-12:
                top, best = score, [value]
            elif score >= top - 1e-12:
                best.append(value)
        return best[rng.randrange(len(best))] if len(best) > 1 else best[0]

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


def make_sampler(spec: Spec, *, seed: int | None, n_objectives: int,
                 trials: int | None = None) -> BaseSampler:
    """The sampler of ``strategy = mcts``."""
    single_objective_only("mcts", n_objectives)
    return MCTSSampler(seed=seed)


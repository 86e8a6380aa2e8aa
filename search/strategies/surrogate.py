"""``surrogate``: Gaussian-process surrogate over the IR's features, budget-annealed UCB.

Each trial (after a few random ones) fits a Gaussian process to the finished trials'
objective ranks on features of their candidates and proposes the candidate with the
best upper confidence bound ``mean + beta * sd`` among a pool of candidates not
evaluated (nor running) yet. ``beta`` shrinks with the budget spent,
``beta = explore * sqrt(1 - trial number / trials)`` (``explore`` 2 by default; the
budget is the run's ``trials``, the spec's unless ``--trials`` says otherwise): early
trials try candidates the model is unsure about, the last ones the best predicted (a
search's result is its best *observed* value, so a budget that ends on good
candidates ends on a good incumbent).

- **Model**: a GP with a squared-exponential kernel on the features (length scale
  ``lengthscale``, unit signal variance: the targets are normal scores) and
  observation noise ``noise`` (defaults 3.0 and 0.5); one trial costs a Cholesky of
  the finished trials' kernel matrix and a solve per pool candidate (a few ms for 50
  trials and 800 candidates; past ``GP_POINTS`` = 500 finished trials it is fitted
  on the best 250 and 250 others drawn at random). It models interactions of
  decisions, which the additive (linear) model of ``model = "linear"`` cannot.
  ``model = "linear"`` is the former behaviour: a Bayesian ridge regression (prior
  variance ``prior``) and Thompson sampling (one weight vector drawn from the
  posterior, its spread scaled by ``explore``), with no annealing.
- **Features** (what the IR gives for free): one-hot per value of every categorical
  decision, ``(present, scaled value)`` for every int or float decision (log-scaled
  where ``log = true``); a decision a candidate lacks (a branch not taken) is all
  zeros. With ``costs = True`` (the default for enumerable spaces) also the
  candidate's log parameter count, log FLOPs and op count, from its built graph
  (standardised over the space).
- **Pool**: a discrete space of at most ``enumerate_limit`` candidates is enumerated
  once (memoised per process, a pure function of the spec's text) and scored whole;
  a larger or continuous space is scored on ``candidates`` random candidates per
  trial (``Space.sample``, seeded per trial).
- **Targets**: ranks of the finished trials' values, mapped to normal scores, so one
  diverged candidate does not flatten the rest; FAIL, PRUNED and infeasible trials
  get the worst rank.
- **Plan**: the chosen candidate is written to the trial's system attr
  ``surrogate:plan`` when the trial starts, and ``sample_independent`` returns its
  values (a decision outside it is sampled at random). A new sampler object (a
  resumed study, another process) reads the plan back instead of choosing again;
  nothing else is kept between trials.

On the shipped tables (``benchmarks/bench_strategies.py``) the GP-UCB form beats the
bench's SMBO reference on ``quickstart`` at 25 and 50 trials (300 seeds, paired
-0.14 ± 0.05 and -0.10 ± 0.04 accuracy points of regret) where the linear Thompson
form tied it, and is no worse on ``mlp_digits`` (100 seeds: -0.16 ± 0.27, -0.09 ±
0.26).
Single-objective only. See docs/strategies.md.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from ._common import (
    SpecText,
    StatelessSampler,
    check_single_objective,
    coerce,
    feasible,
    fits,
    sample_value,
    single_objective_only,
    trial_rng,
    vkey,
)

if TYPE_CHECKING:
    from optuna.study import Study

    from autoarch.compiler.spec import Spec

__all__ = ["SurrogateSampler", "SpecPool", "make_sampler", "PLAN_ATTR"]

#: system attr: the candidate (decision name -> value) the trial was given; None: random
PLAN_ATTR = "surrogate:plan"
#: discrete spaces up to this many candidates are enumerated and scored whole
ENUMERATE_LIMIT = 5000
#: the GP is fitted on at most this many finished trials (past it, the best half and a
#: random half of the rest): its cost grows with their cube, and a proposal against
#: 5000 candidates takes about 0.3 s at 500 trials, 2.6 s at 2000 (one core)
GP_POINTS = 500


def _akey(a: Mapping[str, Any]) -> frozenset[tuple[str, Any]]:
    return frozenset((k, vkey(v)) for k, v in a.items())


class _Features:
    """Feature vectors of assignments, from the space's decisions (and built graphs)."""

    def __init__(self, decisions: list[Any], costs: Any = None):
        import numpy as np

        self.np = np
        self.cols: dict[Any, int] = {}
        self.numeric: dict[str, tuple[int, Any]] = {}
        n = 0
        for d in decisions:
            if d.kind == "categorical":
                for c in d.choices:
                    self.cols[(d.name, vkey(c))] = n
                    n += 1
            else:
                self.numeric[d.name] = (n, d)
                n += 2
        self.costs = costs  # callable assignment -> tuple of floats, or None
        self.n_costs = 3 if costs is not None else 0
        self.width = n + self.n_costs

    def one(self, a: Mapping[str, Any]) -> Any:
        x = self.np.zeros(self.width)
        for k, v in a.items():
            j = self.cols.get((k, vkey(v)))
            if j is not None:
                x[j] = 1.0
                continue
            num = self.numeric.get(k)
            if num is not None and isinstance(v, int | float) and not isinstance(v, bool):
                j, d = num
                x[j] = 1.0
                lo, hi = float(d.low), float(d.high)
                if d.log and lo > 0 and v > 0:
                    lo, hi, v = math.log(lo), math.log(hi), math.log(v)
                x[j + 1] = (v - lo) / (hi - lo) if hi > lo else 0.0
        if self.n_costs:
            c = self.costs(a)
            if c is not None:
                x[-self.n_costs:] = c
        return x

    def many(self, assignments: list[Mapping[str, Any]]) -> Any:
        if not assignments:
            return self.np.zeros((0, self.width))
        return self.np.stack([self.one(a) for a in assignments])


class _Pool:
    """A spec's candidates and features, a pure function of its text (memoised)."""

    def __init__(self, spec: Spec, enumerate_limit: int, costs: bool | None):
        space = spec.space()
        self.space = space
        n = space.count()
        self.enumerated: list[dict[str, Any]] | None = None
        if n is not None and n <= enumerate_limit:
            self.enumerated = list(space.enumerate())
        if costs is None:
            costs = self.enumerated is not None
        self.features = _Features(space.decisions, self._costs(spec) if costs else None)
        self.X = None
        if self.enumerated is not None:
            self.X = self.features.many(self.enumerated)
            if costs:  # standardise the cost columns over the space
                c = self.X[:, -self.features.n_costs:]
                mu, sd = c.mean(axis=0), c.std(axis=0)
                sd[sd == 0] = 1.0
                self.X[:, -self.features.n_costs:] = (c - mu) / sd
                self._cost_scale = (mu, sd)
        self.keys = ([_akey(a) for a in self.enumerated] if self.enumerated is not None
                     else None)
        self.index = ({k: i for i, k in enumerate(self.keys)} if self.keys is not None
                      else None)

    @staticmethod
    def _costs(spec: Spec) -> Any:
        def costs(a: Mapping[str, Any]) -> tuple[float, float, float] | None:
            try:
                g = spec.build(dict(a))
                return (math.log1p(g.params), math.log1p(g.flops), math.log1p(len(g)))
            except Exception:  # noqa: BLE001 - an invalid candidate: no cost features
                return None

        return costs

    def x(self, a: Mapping[str, Any]) -> Any:
        """Features of one assignment (from the enumeration when it is there)."""
        if self.index is not None:
            i = self.index.get(_akey(a))
            if i is not None:
                return self.X[i]  # type: ignore[index]
        x = self.features.one(a)
        if self.features.n_costs and getattr(self, "_cost_scale", None) is not None:
            mu, sd = self._cost_scale
            x[-self.features.n_costs:] = (x[-self.features.n_costs:] - mu) / sd
        return x


_POOLS: OrderedDict[Any, _Pool] = OrderedDict()
_POOLS_LOCK = threading.Lock()


class SpecPool(SpecText):
    """The spec's candidate pool as a picklable callable (Ray pickles the sampler).

    Holds the spec's text; the pool is built on first use and memoised per process.
    """

    def __init__(self, spec: Spec, *, enumerate_limit: int = ENUMERATE_LIMIT,
                 costs: bool | None = None):
        self._hold(spec)
        self.enumerate_limit, self.costs = enumerate_limit, costs

    def __call__(self) -> _Pool:
        key = (self.source, self.filename, self.enumerate_limit, self.costs)
        with _POOLS_LOCK:
            pool = _POOLS.get(key)
            if pool is not None:
                _POOLS.move_to_end(key)
                return pool
        pool = _Pool(self.spec(), self.enumerate_limit, self.costs)
        with _POOLS_LOCK:
            _POOLS[key] = pool
            while len(_POOLS) > 4:
                _POOLS.popitem(last=False)
        return pool


class SurrogateSampler(StatelessSampler):
    """A Gaussian-process surrogate of the candidates' features, budget-annealed UCB.

    Args:
        pool: a callable returning the candidate pool (:class:`SpecPool`).
        seed: seed of every per-trial random stream (None: a random one).
        startup: trials sampled at random (decision by decision) before the surrogate
            is used.
        candidates: random candidates scored per trial when the space is not
            enumerated.
        trials: the search's budget; the UCB width anneals to 0 over it (None: no
            annealing, ``beta = explore`` throughout).
        model: ``"gp"`` (GP, UCB) or ``"linear"`` (Bayesian ridge, Thompson sampling).
        lengthscale: the GP kernel's length scale, in feature units (two candidates
            differing in one categorical decision are at distance sqrt(2)).
        noise: observation noise variance (in units of the normal-score target).
        explore: ``"gp"``: the UCB width ``beta`` at the start of the budget;
            ``"linear"``: the scale of the posterior draw (0: the posterior mean).
            None: 2.0 for ``"gp"``, 1.0 for ``"linear"``.
        prior: ``"linear"`` only: the prior variance of each weight.
    """

    _who = "SurrogateSampler"

    def __init__(self, pool: Any, seed: int | None = None, *, startup: int = 3,
                 candidates: int = 256, trials: int | None = None, model: str = "gp",
                 lengthscale: float = 3.0, noise: float = 0.5,
                 explore: float | None = None, prior: float = 1.0):
        if startup < 1:
            raise ValueError("startup must be at least 1")
        if candidates < 1:
            raise ValueError("candidates must be at least 1")
        if trials is not None and trials < 1:
            raise ValueError("trials must be at least 1 (or None)")
        if model not in ("gp", "linear"):
            raise ValueError(f"model must be 'gp' or 'linear', got {model!r}")
        if prior <= 0 or noise <= 0 or lengthscale <= 0:
            raise ValueError("prior, noise and lengthscale must be > 0")
        if explore is None:
            explore = 2.0 if model == "gp" else 1.0
        if explore < 0:
            raise ValueError("explore must be >= 0")
        super().__init__(seed)
        self.pool = pool
        self.startup = int(startup)
        self.candidates = int(candidates)
        self.trials = None if trials is None else int(trials)
        self.model = model
        self.lengthscale = float(lengthscale)
        self.noise = float(noise)
        self.explore = float(explore)
        self.prior = float(prior)

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        if len(study.directions) == 1:
            self._plan(study, trial)

    def _plan(self, study: Study, trial: FrozenTrial) -> dict[str, Any]:
        return self._per_trial(study, trial, lambda: self._new_plan(study, trial))

    def _new_plan(self, study: Study, trial: FrozenTrial) -> dict[str, Any]:
        attrs = trial.system_attrs
        if PLAN_ATTR in attrs:
            plan = attrs[PLAN_ATTR]
            return dict(plan) if plan else {}
        plan = self._choose(study, trial)
        study._storage.set_trial_system_attr(trial._trial_id, PLAN_ATTR, plan or None)
        return plan

    def _choose(self, study: Study, trial: FrozenTrial) -> dict[str, Any]:
        import numpy as np

        others = [t for t in study.get_trials(deepcopy=False)
                  if t._trial_id != trial._trial_id and t.params]
        scored = [t for t in others if t.state in (TrialState.COMPLETE, TrialState.PRUNED,
                                                   TrialState.FAIL)]
        if len(scored) < self.startup:
            return {}
        pool = self.pool()
        rng = trial_rng(self._seed, trial.number, "surrogate")
        taken = {_akey(t.params) for t in others}
        if pool.enumerated is not None:
            idx = [i for i, k in enumerate(pool.keys) if k not in taken]
            if not idx:
                return {}
            cands, Xc = None, pool.X[idx]
        else:
            cands = []
            for _ in range(self.candidates):
                a = pool.space.sample(seed=rng.randrange(2**63))
                if _akey(a) not in taken:
                    cands.append(a)
            if not cands:
                return {}
            Xc = np.stack([pool.x(a) for a in cands])
        X = np.stack([pool.x(t.params) for t in scored])
        y = self._targets(scored, study.directions[0])
        if self.model == "gp":
            if len(y) > GP_POINTS:  # the best half and a random half of the rest
                order = np.argsort(-y, kind="stable")
                keep = list(order[:GP_POINTS // 2]) + rng.sample(
                    list(order[GP_POINTS // 2:]), GP_POINTS - GP_POINTS // 2)
                X, y = X[keep], y[keep]
            scores = self._ucb(X, y, Xc, self._beta(trial.number))
        else:
            scores = self._thompson(X, y, Xc, rng)
        best = int(np.argmax(scores))
        if cands is None:
            return dict(pool.enumerated[idx[best]])
        return dict(cands[best])

    def _beta(self, number: int) -> float:
        """The UCB width of trial ``number``: ``explore`` shrunk by the budget spent."""
        if self.trials is None:
            return self.explore
        return self.explore * math.sqrt(max(0.0, 1.0 - number / self.trials))

    def _ucb(self, X: Any, y: Any, Xc: Any, beta: float) -> Any:
        """GP posterior mean + beta * sd of the candidates ``Xc`` given ``(X, y)``."""
        import numpy as np

        def kernel(a: Any, b: Any) -> Any:
            d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
            return np.exp(-np.maximum(d2, 0.0) / (2.0 * self.lengthscale ** 2))

        L = np.linalg.cholesky(kernel(X, X) + self.noise * np.eye(len(X)))
        Ks = kernel(Xc, X)
        V = np.linalg.solve(L, Ks.T)  # L^-1 k(X, x) per candidate
        mean = V.T @ np.linalg.solve(L, y)
        if beta == 0:
            return mean
        var = np.maximum(1.0 - (V * V).sum(axis=0), 1e-12)
        return mean + beta * np.sqrt(var)

    def _thompson(self, X: Any, y: Any, Xc: Any, rng: Any) -> Any:
        """Scores of ``Xc`` under one draw of a Bayesian ridge's weights."""
        import numpy as np

        # posterior N(mu, S) with S = (X'X / noise + I / prior)^-1
        A = X.T @ X / self.noise + np.eye(X.shape[1]) / self.prior
        L = np.linalg.cholesky(A)
        mu = np.linalg.solve(A, X.T @ y / self.noise)
        z = np.random.default_rng(rng.randrange(2**63)).standard_normal(X.shape[1])
        w = mu + self.explore * np.linalg.solve(L.T, z)  # a draw, covariance A^-1
        return Xc @ w

    @staticmethod
    def _targets(trials: list[FrozenTrial], direction: StudyDirection) -> Any:
        """Normal scores of the trials' ranks (worst for FAIL, PRUNED, infeasible)."""
        import numpy as np
        from scipy.stats import norm, rankdata

        sign = 1.0 if direction == StudyDirection.MAXIMIZE else -1.0
        good = [t.state == TrialState.COMPLETE and bool(t.values) and feasible(t)
                for t in trials]
        vals = [sign * t.value if ok else -math.inf  # type: ignore[operator]
                for t, ok in zip(trials, good, strict=True)]
        finite = [v for v in vals if v != -math.inf]
        floor = (min(finite) - 1.0) if finite else 0.0
        r = rankdata([v if v != -math.inf else floor for v in vals])
        return norm.ppf((r - 0.5) / len(r)) if len(r) > 1 else np.zeros(len(r))

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        check_single_objective(study, "SurrogateSampler")
        plan = self._plan(study, trial)
        if param_name in plan and fits(param_distribution, plan[param_name]):
            return coerce(param_distribution, plan[param_name])
        return sample_value(param_distribution,
                            trial_rng(self._seed, trial.number, param_name))


def make_sampler(spec: Spec, *, seed: int | None, n_objectives: int,
                 trials: int | None = None) -> BaseSampler:
    """The sampler of ``strategy = surrogate``: 3 random trials (2 for a budget under
    15), then GP-UCB annealed over the budget of ``trials`` (the spec's by default)."""
    single_objective_only("surrogate", n_objectives)
    if trials is None:
        trials = int(spec.search_config()["trials"])
    return SurrogateSampler(SpecPool(spec), seed=seed, startup=min(3, max(2, trials // 5)),
                            trials=trials)

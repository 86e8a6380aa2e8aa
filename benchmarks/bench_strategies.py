"""Strategy benchmark: every search strategy replayed on the shipped tabular benchmarks.

For each table under ``search/table_data/`` (every candidate of a small space trained
with 3 seeds), each strategy and each budget (10, 25, 50 and 100 trials, up to
``--trials``), ``--seeds`` searches of that many trials are replayed in memory
(``autoarch.search.strategies._replay``), each told its budget as
``search { trials = N }`` tells a real run (strategies size their start-up and
populations by it): the strategy's sampler from ``make_sampler``, each trial elaborated as the driver does, its value the
table's ``val_accuracy`` of ONE recorded training seed drawn per (search seed, trial
number) (noisy, as a real run sees), a re-proposed candidate told its first value.

Printed per table and strategy:

- **regret** at 10, 25, 50 and 100 trials: the best table mean minus the table mean
  (over the 3 training seeds) of the incumbent at the end of a search of that budget,
  the candidate with the best *observed* value; mean over search seeds with a 95% t
  interval;
- **top-1%**: the fraction of runs of the largest budget whose *evaluated set* contains
  one of the space's top-1% candidates by table mean (``ceil(0.01 * n)`` of them);
- **overhead**: ms per trial of ask + elaborate + tell (no training);
- the **paired difference to random** (same search seeds) at 25 and 50 trials with its
  95% CI, and whether the CI excludes 0 (negative: lower regret than random).

Two references: ``random``, and ``smbo``, a simple surrogate baseline defined in this
file (ridge regression on one-hot decisions, 256 random candidates of the space scored
per proposal, 10% random proposals). ``grid`` enumerates in order and is left out.
A third line, ``top-N``, is no strategy: the regret when the N trials are the space's
N best candidates by table mean, each told one recorded seed. With seed noise as
large as the gaps at the top of a space, the incumbent (picked by one noisy value per
candidate) is often not the best of what was evaluated, so this is about the least
regret a search that evaluates that many good candidates can expect.

Run: ``python benchmarks/bench_strategies.py [--seeds 100] [--trials 100]
[--strategies random,tpe,...] [--tables mlp_digits,quickstart] [--workers 2]``
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

# one BLAS thread per process: the worker processes already fill the cores, and the
# surrogates' small matrix products only lose time to threads fighting over them
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

from autoarch.search.strategies._common import (  # noqa: E402
    StatelessSampler,
    coerce,
    fits,
    sample_value,
    trial_rng,
    vkey,
)

ROOT = Path(__file__).resolve().parent.parent

TABLES = ROOT / "search" / "table_data"
STRATEGIES = ("random", "smbo", "tpe", "mcts", "evolution", "nsga2", "surrogate")
BUDGETS = (10, 25, 50, 100)
PAIRED_AT = (25, 50)


# ---- the SMBO reference ----------------------------------------------------------------


_POOLS: dict[str, list[dict[str, Any]]] = {}


def _pool(spec: Any) -> list[dict[str, Any]]:
    """Every candidate of the (small, discrete) space, enumerated once per process."""
    if spec.source not in _POOLS:
        _POOLS[spec.source] = list(spec.space().enumerate())
    return _POOLS[spec.source]


class SMBOSampler(StatelessSampler):
    """Reference: ridge regression on one-hot decisions, 256 random candidates per
    proposal, 10% random proposals (and random until 2 trials have values).

    The candidates are drawn uniformly from the space's enumeration (these spaces are
    small and discrete); each trial's plan is the best-scored candidate not evaluated
    yet, and ``sample_independent`` returns its values. Deterministic per seed.
    """

    def __init__(self, spec: Any, seed: int | None = None, *, candidates: int = 256,
                 random_fraction: float = 0.1, alpha: float = 1.0):
        super().__init__(seed)
        self.pool = _pool(spec)
        self.candidates, self.random_fraction, self.alpha = (candidates, random_fraction,
                                                             alpha)
        cols: dict[Any, int] = {}
        for a in self.pool:
            for k, v in a.items():
                cols.setdefault((k, vkey(v)), len(cols))
        self.cols = cols

    def _x(self, params: dict[str, Any]) -> Any:
        x = np.zeros(len(self.cols))
        for k, v in params.items():
            j = self.cols.get((k, vkey(v)))
            if j is not None:
                x[j] = 1.0
        return x

    def _plan(self, study: Any, trial: Any) -> dict[str, Any]:
        return self._per_trial(study, trial, lambda: self._new_plan(study, trial))

    def _new_plan(self, study: Any, trial: Any) -> dict[str, Any]:
        rng = trial_rng(self._seed, trial.number, "smbo")
        others = [t for t in study.get_trials(deepcopy=False) if t._trial_id != trial._trial_id]
        done = [t for t in others if t.state == TrialState.COMPLETE]
        seen = {frozenset((k, vkey(v)) for k, v in t.params.items()) for t in others}
        idx = [rng.randrange(len(self.pool)) for _ in range(self.candidates)]
        fresh = [i for i in idx if frozenset(
            (k, vkey(v)) for k, v in self.pool[i].items()) not in seen] or idx
        if len(done) < 2 or rng.random() < self.random_fraction:
            return dict(self.pool[fresh[0]])
        X = np.array([self._x(t.params) for t in done])
        y = np.array([t.value for t in done], dtype=float)
        A = X.T @ X + self.alpha * np.eye(X.shape[1])
        w = np.linalg.solve(A, X.T @ (y - y.mean()))
        scores = np.array([self._x(self.pool[i]) for i in fresh]) @ w
        return dict(self.pool[fresh[int(np.argmax(scores))]])

    def before_trial(self, study: Any, trial: Any) -> None:
        self._plan(study, trial)

    def sample_independent(self, study: Any, trial: Any, name: str, dist: Any) -> Any:
        plan = self._plan(study, trial)
        if name in plan and fits(dist, plan[name]):
            return coerce(dist, plan[name])
        return sample_value(dist, trial_rng(self._seed, trial.number, name))


# ---- workers ---------------------------------------------------------------------------

_DATA: dict[str, Any] = {}


def _data(path: str) -> Any:
    from autoarch.search.strategies._replay import load_table

    if path not in _DATA:
        _DATA[path] = load_table(path)
    return _DATA[path]


def _job(args: tuple[str, str, list[int], list[int]]
         ) -> list[tuple[int, int, list[Any], list[float]]]:
    """Each seed's search at each budget: a search told its budget, as a user runs it."""
    path, strategy, seeds, budgets = args
    from autoarch.search.strategies._replay import replay

    data = _data(path)
    out = []
    for s in seeds:
        for b in budgets:
            if strategy == "smbo":
                run = replay(data, "smbo", seed=s, trials=b,
                             make=lambda spec, seed, trials: SMBOSampler(spec, seed=seed))
            else:
                run = replay(data, strategy, seed=s, trials=b)
            out.append((s, b, list(zip(run.hashes, run.observed, strict=True)),
                        run.overhead))
    return out


# ---- report ----------------------------------------------------------------------------


def _top_n(data: Any, budget: int, seeds: list[int]) -> list[float]:
    """Regret when a search's trials are the space's ``budget`` best candidates by table
    mean, each told one recorded seed drawn as the replay draws it: what evaluating the
    very best candidates gives when the incumbent is picked by one noisy value each."""
    from autoarch.search.strategies._replay import ReplayRun, regret

    best = sorted(data.means, key=lambda h: -data.means[h])[:budget]
    out = []
    for s in seeds:
        observed = []
        for number, h in enumerate(best):
            recs = [v for v in data.values[h] if v is not None]
            observed.append(recs[trial_rng(s, number, "replay").randrange(len(recs))])
        out.append(regret(data, ReplayRun("top-n", s, best, observed, []), budget))
    return out


def _fmt(mean: float, half: float, scale: float = 100.0) -> str:
    return f"{mean * scale:5.2f} ± {half * scale:4.2f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=100, help="search seeds per strategy")
    ap.add_argument("--trials", type=int, default=100, help="trials per search")
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--tables", default=None, help="table names (default: every shipped one)")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)

    from autoarch.search.strategies import NAMES
    from autoarch.search.strategies._replay import ReplayRun, paired, regret, summary_stats

    strategies = [s for s in args.strategies.split(",") if s]
    for s in strategies:
        if s != "smbo" and s not in NAMES:
            ap.error(f"unknown strategy {s}")
    strategies = [s for s in strategies if s != "smbo" and s in NAMES or s == "smbo"]
    strategies = [s for s in strategies if s not in ("grid", "oneshot")]
    if "random" not in strategies:
        strategies.insert(0, "random")
    names = args.tables.split(",") if args.tables else None
    paths = sorted(p for p in TABLES.glob("*.db") if names is None or p.stem in names)
    if not paths:
        print(f"no table in {TABLES}")
        return 1
    budgets = [b for b in BUDGETS if b <= args.trials] or [args.trials]
    print(f"strategies on tabular benchmarks: {args.seeds} search seeds x budgets "
          f"{', '.join(map(str, budgets))} trials (each budget its own search, told its "
          f"budget), {args.workers} processes")
    print("grid is left out: it enumerates the space in a fixed order (no search).")
    print("value of a trial: val_accuracy of ONE recorded training seed drawn per (search "
          "seed, trial); a duplicate gets its first value.")
    print("regret@N = best table mean - table mean of the incumbent (best observed) at the "
          "end of an N-trial search, in accuracy points, mean ± 95% CI.")
    print("top-1% = fraction of runs whose evaluated set (after the full budget) holds one "
          "of the space's top-1% candidates by table mean.")
    print("overhead = ms per trial of ask + elaborate + tell.\n")
    t_start = time.perf_counter()
    seeds = list(range(args.seeds))
    chunk = max(1, math.ceil(len(seeds) / (4 * args.workers)))
    jobs = [(str(p), s, seeds[i:i + chunk], budgets)
            for p in paths for s in strategies for i in range(0, len(seeds), chunk)]
    ctx = mp.get_context("fork" if sys.platform != "win32" else "spawn")
    if args.workers > 1:
        with ctx.Pool(args.workers) as pool:
            results = pool.map(_job, jobs, chunksize=1)
    else:
        results = [_job(j) for j in jobs]
    runs: dict[tuple[str, str, int], dict[int, ReplayRun]] = {}
    for job, res in zip(jobs, results, strict=True):
        for s, b, rows, overhead in res:
            runs.setdefault((job[0], job[1], b), {})[s] = ReplayRun(
                job[1], s, [h for h, _ in rows], [v for _, v in rows], overhead)

    for p in paths:
        data = _data(str(p))
        top = data.top(0.01)
        print(f"== {p.stem}: {len(data.means)} candidates, best mean "
              f"{data.best:.4f}, top-1% = {len(top)} candidates")
        head = "".join(f"{'regret@' + str(b):>16}" for b in budgets)
        print(f"{'strategy':<11}{head}{'top-1%':>9}{'ms/trial':>10}")
        reg: dict[str, dict[int, list[float]]] = {}
        for s in strategies:
            reg[s] = {b: [regret(data, runs[(str(p), s, b)][i], b) for i in seeds]
                      for b in budgets}
            rs = [runs[(str(p), s, budgets[-1])][i] for i in seeds]
            hit = statistics.fmean(1.0 if top & set(r.hashes) else 0.0 for r in rs)
            ms = statistics.fmean(x for r in rs for x in r.overhead) * 1e3
            cells = "".join(f"{_fmt(*summary_stats(reg[s][b])):>16}" for b in budgets)
            print(f"{s:<11}{cells}{hit:9.2f}{ms:10.2f}")
        cells = "".join(f"{_fmt(*summary_stats(_top_n(data, b, seeds))):>16}" for b in budgets)
        print(f"{'top-N':<11}{cells}   (reference: the N trials are the N best candidates)")
        print("\npaired difference of regret to random (negative: better), "
              "mean ± 95% CI; * = CI excludes 0")
        ref_names = ["random"] + (["smbo"] if "smbo" in strategies else [])
        for ref in ref_names:
            at = [b for b in PAIRED_AT if b in budgets]
            print(f"  vs {ref}:")
            for s in strategies:
                if s == ref:
                    continue
                cells = []
                for b in at:
                    m, half, _p = paired(reg[s][b], reg[ref][b])
                    mark = "*" if (m + half < 0 or m - half > 0) else " "
                    cells.append(f"@{b}: {_fmt(m, half):>14}{mark}")
                print(f"    {s:<11}" + "   ".join(cells))
        print()
    print(f"total wall time {time.perf_counter() - t_start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

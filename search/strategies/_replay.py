"""A lean replay loop: a strategy's search on a tabular benchmark, in memory.

What ``benchmarks/bench_strategies.py`` and ``tests/search/test_strategy_quality.py``
measure. It keeps only what a comparison of strategies needs from a real
(``autoarch search --replay``) run: an in-memory Optuna study, the sampler of
``make_sampler``, each trial elaborated as the driver does
(``spec.build_with(OptunaDecider(trial))``), and the trial's value looked up in the
table:

- **one recorded training seed per trial**, drawn from ``(search seed, trial number)``
  exactly as :class:`autoarch.search.tables.ReplayObjective` draws it (noisy, as a
  real run sees);
- a **re-proposed candidate** (same architecture hash) is told the value it was told
  the first time, as the driver does for duplicates;
- a candidate with no complete record is told FAIL.

No history, no checks beyond elaboration (the table spaces have no constraints).
Not a strategy (the module name starts with ``_``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._common import trial_rng

__all__ = ["TableData", "ReplayRun", "load_table", "replay", "regret", "summary_stats",
           "paired"]


@dataclass
class TableData:
    """What a replay needs from a table, small and picklable."""

    path: str
    spec_text: str
    spec_name: str
    #: arch hash -> the metric of each recorded seed, in seed order (None: not complete)
    values: dict[str, list[float | None]]
    #: arch hash -> mean over complete seeds
    means: dict[str, float]
    _spec: Any = field(default=None, repr=False, compare=False)

    @property
    def best(self) -> float:
        return max(self.means.values())

    def top(self, fraction: float = 0.01) -> set[str]:
        """The best ``ceil(fraction * n)`` candidates by mean (at least one)."""
        import math

        k = max(1, math.ceil(fraction * len(self.means)))
        return set(sorted(self.means, key=lambda h: -self.means[h])[:k])

    def spec(self) -> Any:
        if self._spec is None:
            from autoarch.compiler.spec import loads

            self._spec = loads(self.spec_text, f"{self.spec_name}.spec")
        return self._spec

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_spec": None}


def load_table(path: str | Path, metric: str = "val_accuracy") -> TableData:
    """Read a table (:class:`autoarch.search.tables.Table`) into a :class:`TableData`."""
    from autoarch.search.tables import Table

    t = Table(path)
    values: dict[str, list[float | None]] = {}
    for h, recs in t.records.items():
        values[h] = [float(r.metrics[metric]) if r.state == "complete" and metric in r.metrics
                     else None for r in recs]
    return TableData(str(path), t.spec_text, t.spec_name, values, t.mean_values(metric))


@dataclass
class ReplayRun:
    """One replayed search: per trial, the candidate, the value told, the overhead."""

    strategy: str
    seed: int
    hashes: list[str | None]
    observed: list[float | None]
    #: seconds of ask + elaborate + tell, per trial
    overhead: list[float]

    def incumbents(self) -> list[str | None]:
        """After each trial, the candidate with the best value observed so far."""
        out: list[str | None] = []
        best, inc = None, None
        for h, v in zip(self.hashes, self.observed, strict=True):
            if v is not None and (best is None or v > best):
                best, inc = v, h
            out.append(inc)
        return out


def replay(data: TableData, strategy: str | None = None, *, seed: int, trials: int,
           sampler: Any = None, make: Callable[..., Any] | None = None) -> ReplayRun:
    """Search ``data``'s space for ``trials`` trials with ``strategy``'s sampler (or the
    given ``sampler``, or ``make(spec, seed=, trials=)``), maximizing the table's metric.
    """
    import optuna

    from autoarch.compiler.deciders import OptunaDecider
    from autoarch.dsl.errors import CandidateError

    from . import make_sampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = data.spec()
    if sampler is None:
        if make is not None:
            sampler = make(spec, seed=seed, trials=trials)
        else:
            assert strategy is not None
            sampler = make_sampler(strategy, spec, seed=seed, n_objectives=1, trials=trials)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    told: dict[str, float | None] = {}
    run = ReplayRun(strategy or type(sampler).__name__, seed, [], [], [])
    clock = time.perf_counter
    for number in range(trials):
        t0 = clock()
        trial = study.ask()
        try:
            h: str | None = spec.build_with(OptunaDecider(trial)).hash
        except CandidateError:
            h = None
        spent = clock() - t0
        if h is None:
            value = None
        elif h in told:
            value = told[h]
        else:
            recs = data.values.get(h) or [None]
            value = recs[trial_rng(seed, number, "replay").randrange(len(recs))]
            told[h] = value
        t0 = clock()
        if value is None:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            study.tell(trial, value)
        run.overhead.append(spent + clock() - t0)
        run.hashes.append(h)
        run.observed.append(value)
    return run


def regret(data: TableData, run: ReplayRun, at: int) -> float:
    """Best table mean minus the table mean of the incumbent after ``at`` trials."""
    inc = run.incumbents()[:at]
    h = inc[-1] if inc else None
    if h is None or h not in data.means:
        return data.best - min(data.means.values())
    return data.best - data.means[h]


def summary_stats(xs: list[float], confidence: float = 0.95) -> tuple[float, float]:
    """Mean and the half-width of its t confidence interval."""
    import statistics

    from scipy import stats

    n = len(xs)
    mean = statistics.fmean(xs)
    if n < 2:
        return mean, float("nan")
    sd = statistics.stdev(xs)
    return mean, stats.t.ppf(0.5 + confidence / 2, n - 1) * sd / n**0.5


def paired(a: list[float], b: list[float], confidence: float = 0.95
           ) -> tuple[float, float, float]:
    """Mean of ``a - b`` (paired), its CI half-width, and the one-sided p that it is >= 0
    (small p: ``a`` is reliably below ``b``, i.e. lower regret)."""
    from scipy import stats

    d = [x - y for x, y in zip(a, b, strict=True)]
    mean, half = summary_stats(d, confidence)
    if all(x == d[0] for x in d):
        p = 0.0 if d[0] < 0 else 1.0
    else:
        p = float(stats.ttest_1samp(d, 0.0, alternative="less").pvalue)
    return mean, half, p

"""Search quality on the shipped mlp_digits table: every strategy beats random.

The lean replay loop of ``autoarch.search.strategies._replay`` (the one
``benchmarks/bench_strategies.py`` runs): 60 search seeds x 50 trials per strategy,
each trial told the val_accuracy of one recorded training seed. A strategy passes when
its regret at 50 trials (best table mean minus the table mean of its incumbent) is
below random's on the same search seeds with a one-sided paired t-test p < 0.01: not
one lucky seed. About a minute per strategy on one core, so marked slow; the benchmark
covers it with 100 seeds.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from autoarch.search.strategies._replay import load_table, paired, regret, replay

TABLE = Path(__file__).resolve().parents[2] / "search" / "table_data" / "mlp_digits.db"
SEEDS, TRIALS = 60, 50

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not TABLE.exists(), reason="no mlp_digits table")]


@functools.cache
def _data():
    return load_table(TABLE)


@functools.cache
def _regrets(strategy: str) -> tuple[float, ...]:
    data = _data()
    return tuple(regret(data, replay(data, strategy, seed=s, trials=TRIALS), TRIALS)
                 for s in range(SEEDS))


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
@pytest.mark.parametrize("strategy", ["tpe", "mcts", "evolution", "surrogate", "nsga2"])
def test_strategy_beats_random_at_50_trials(strategy):
    ours, rand = list(_regrets(strategy)), list(_regrets("random"))
    mean, half, p = paired(ours, rand)
    assert p < 0.01, (f"{strategy}: regret - random's = {mean:.4f} ± {half:.4f} "
                      f"(one-sided p = {p:.3g})")

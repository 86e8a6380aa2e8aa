"""``nsga2``: NSGA-II for several objectives (a Pareto front), with constrained domination.

Infeasible trials (invalid or over-budget candidates, told through
``trial.set_constraint``) are dominated by every feasible one.
"""

from __future__ import annotations

from typing import Any

import optuna

from ._common import TrialSeeded


class NSGAIISampler(TrialSeeded, optuna.samplers.NSGAIISampler):
    """Optuna's NSGA-II, seeded per trial (a resumed run continues its sequence)."""


def make_sampler(spec: Any, *, seed: int | None, n_objectives: int,
                 trials: int | None = None) -> Any:
    return NSGAIISampler(seed=seed, population_size=20)

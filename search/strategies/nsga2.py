"""``nsga2``: NSGA-II for several objectives (a Pareto front), with constrained domination.

Infeasible trials (invalid or over-budget candidates, told through
``trial.set_constraint``) are dominated by every feasible one.
"""

from __future__ import annotations

from typing import Any

import optuna

from ._common import TrialSeeded
from ._fresh import FreshSampler


class NSGAIISampler(TrialSeeded, optuna.samplers.NSGAIISampler):
    """Optuna's NSGA-II, seeded per trial (a resumed run continues its sequence)."""

    _salt = "nsga2"


def make_sampler(spec: Any, *, seed: int | None, n_objectives: int,
                 trials: int | None = None) -> Any:
    """A generation is a fifth of the trial budget, at least 6 and at most 20, so
    that a short search has several generations."""
    if trials is None:
        trials = int(spec.search_config()["trials"])
    inner = NSGAIISampler(seed=seed, population_size=min(20, max(6, trials // 5)))
    return FreshSampler(inner, spec, seed=inner._trial_seed)

"""``tpe``: Optuna's Tree-structured Parzen Estimator, multivariate and grouped.

``group = True`` splits the define-by-run space into groups of decisions that
appear together, so conditional decisions (those of an alternative not always
taken) are modelled jointly with their siblings instead of independently. Trials
told infeasible (``trial.set_constraint``: invalid or over-budget candidates) are
ranked below every feasible one. Several objectives use MOTPE.
"""

from __future__ import annotations

import warnings
from typing import Any

import optuna

from ._common import TrialSeeded
from ._fresh import FreshSampler


class TPESampler(TrialSeeded, optuna.samplers.TPESampler):
    """Optuna's TPE, seeded per trial (a resumed run continues its sequence).

    Its per-trial seeds are salted apart from ``random``'s, so its random start-up
    trials are not the first trials random search draws with the same seed.
    """

    _salt = "tpe"


def startup_trials(trials: int) -> int:
    """Random start-up trials for a budget: a tenth of it, at least 3 and at most 10."""
    return min(10, max(3, trials // 10))


def make_sampler(spec: Any, *, seed: int | None, n_objectives: int,
                 trials: int | None = None) -> Any:
    if trials is None:
        trials = int(spec.search_config()["trials"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        inner = TPESampler(seed=seed, multivariate=True, group=True,
                           n_startup_trials=startup_trials(trials), constant_liar=True)
    return FreshSampler(inner, spec, seed=inner._trial_seed)

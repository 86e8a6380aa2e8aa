"""``random``: each decision uniformly at random (log-uniformly where ``log = true``)."""

from __future__ import annotations

from typing import Any

import optuna

from ._common import TrialSeeded


class RandomSampler(TrialSeeded, optuna.samplers.RandomSampler):
    """Optuna's random sampler, seeded per trial (a resumed run continues its sequence)."""


def make_sampler(spec: Any, *, seed: int | None, n_objectives: int,
                 trials: int | None = None) -> Any:
    return RandomSampler(seed=seed)

"""``random``: each decision uniformly at random (log-uniformly where ``log = true``)."""

from __future__ import annotations

from typing import Any


def make_sampler(spec: Any, *, seed: int | None, n_objectives: int,
                 trials: int | None = None) -> Any:
    import optuna

    return optuna.samplers.RandomSampler(seed=seed)

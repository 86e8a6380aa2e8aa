"""Search strategies: one module per strategy, each with ``make_sampler``.

Every strategy is an Optuna sampler driving the one elaboration path
(``spec.build_with(OptunaDecider(trial))``)::

    make_sampler(spec, *, seed, n_objectives, trials=None) -> optuna.samplers.BaseSampler

``trials`` is the run's budget (the spec's, or ``--trials``).
"""

from __future__ import annotations

import importlib
from typing import Any

from ...compiler.settings import STRATEGIES
from ...dsl.errors import SpecError, suggest

#: strategy name -> module of this package (``oneshot`` trains a supernet instead)
MODULES = {name: name for name in STRATEGIES if name != "oneshot"}


def make_sampler(name: str, spec: Any, *, seed: int | None, n_objectives: int,
                 trials: int | None = None) -> Any:
    """The Optuna sampler of strategy ``name`` for ``spec``'s space."""
    if name not in MODULES:
        if name in STRATEGIES:
            raise SpecError(f"strategy {name} is not available in this version",
                            hint="one of " + ", ".join(MODULES))
        raise SpecError(f"unknown strategy '{name}'",
                        hint=suggest(name, MODULES, listing="expected one of"))
    module = importlib.import_module(f"{__name__}.{MODULES[name]}")
    return module.make_sampler(spec, seed=seed, n_objectives=n_objectives, trials=trials)

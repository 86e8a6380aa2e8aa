"""Search strategies: one module per strategy, each with ``make_sampler``.

Every strategy is an Optuna sampler driving the one elaboration path
(``spec.build_with(OptunaDecider(trial))``)::

    make_sampler(spec, *, seed, n_objectives, trials=None) -> optuna.samplers.BaseSampler

``trials`` is the run's budget (the spec's, or ``--trials``). The strategies are
the modules of this package whose names do not start with ``_``, found without
importing them: a new strategy is one new module, and the spec's
``strategy = <name>`` accepts it at once (``compiler/settings.py`` reads
:data:`NAMES`).
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from ...dsl.errors import SpecError, suggest

#: strategy name -> module of this package
MODULES = {info.name: info.name for info in pkgutil.iter_modules(__path__)
           if not info.name.startswith("_")}
#: every name ``strategy = ...`` accepts
NAMES = tuple(MODULES)


def make_sampler(name: str, spec: Any, *, seed: int | None, n_objectives: int,
                 trials: int | None = None) -> Any:
    """The Optuna sampler of strategy ``name`` for ``spec``'s space."""
    if name not in MODULES:
        raise SpecError(f"unknown strategy '{name}'",
                        hint=suggest(name, MODULES, listing="expected one of"))
    module = importlib.import_module(f"{__name__}.{MODULES[name]}")
    return module.make_sampler(spec, seed=seed, n_objectives=n_objectives, trials=trials)


def prepare_of(name: str) -> Any:
    """The ``prepare`` hook of strategy ``name``'s module, or None.

    A strategy that must do work before the loop defines it (one-shot trains its
    supernet there): ``prepare(spec, opts, history, run_id, run, db, note, deadline)``
    returns candidates (choices) the loop evaluates first, in order.
    """
    if name not in MODULES:
        return None
    return getattr(importlib.import_module(f"{__name__}.{MODULES[name]}"), "prepare", None)

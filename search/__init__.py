"""Search: strategies as Optuna samplers, the trainer, and the SQLite history.

``autoarch.search`` is both this package and the search function::

    >>> result = autoarch.search(spec, strategy="tpe", trials=20, db="runs.db")
    >>> from autoarch.search import MCTSSampler, EvolutionSampler   # plain Optuna samplers
    >>> from autoarch.search import train_supernet, score_candidate  # one-shot, by hand

Heavy parts (optuna, torch) load on first use.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

_LAZY = {
    "MCTSSampler": ".strategies.mcts",
    "EvolutionSampler": ".strategies.evolution",
    "GridSampler": ".strategies.grid",
    "History": ".history",
    "SearchError": ".options",
    "SearchInterrupted": ".run_setup",
    "SearchResult": ".results",
    "Reporter": ".engine",
    "TrialOutcome": ".results",
    "Trial": ".objective",
    "TrialPruned": ".objective",
    "search": ".engine",
    "load_data": ".data",
    "Dataset": ".data",
    "train": ".trainer",
    "TrainingFailed": ".trainer",
    "train_supernet": ".supernet",
    "Table": ".tables",
    "tabulate": ".tabulate",
    "score_candidate": ".supernet",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _SearchModule(types.ModuleType):
    """Calling the module runs :func:`autoarch.search.engine.search`."""

    def __call__(self, spec: Any, **kwargs: Any) -> Any:
        from .engine import search

        return search(spec, **kwargs)


sys.modules[__name__].__class__ = _SearchModule
__all__ = sorted(_LAZY)

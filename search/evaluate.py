"""Evaluating one candidate: its training settings, its training, and why it failed.

Written once, used by the in-process loop and by Ray workers alike:

- :func:`trial_config` is *the* training configuration of a trial: the spec's
  `train` settings for the candidate, the defaults, and the command-line
  overrides (``--epochs``, ``--data``) applied inside it. It is what is
  trained, recorded in ``trials.train_config``, and compared to find duplicates.
- :func:`train_candidate` loads the data, lowers the graph and trains it.
- :func:`failure_reason` turns an exception into the one line a history row keeps.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..compiler.settings import defaults
from ..compiler.values import to_json
from ..dsl.errors import SpecError


@dataclass(frozen=True)
class Overrides:
    """Settings given for the whole search that replace the spec's `train` ones."""

    epochs: int | None = None
    #: a data value (``Symbol`` / ``SymbolCall``) with any file path made absolute
    data: Any = None
    #: the training seed (a table's runs, search/tables.py)
    seed: int | None = None

    def to_json(self) -> dict[str, Any]:
        out = {"epochs": self.epochs, "data": None if self.data is None else str(self.data)}
        if self.seed is not None:  # (absent otherwise: runs recorded before it compare equal)
            out["train_seed"] = self.seed
        return out


def trial_config(graph: Any, overrides: Overrides | None = None) -> dict[str, Any]:
    """The training settings of a candidate: defaults, the spec's, then the overrides."""
    overrides = overrides or Overrides()
    cfg = {**defaults("train"), **graph.train}
    if overrides.epochs is not None:
        cfg["epochs"] = overrides.epochs
    if overrides.data is not None:
        cfg["data"] = overrides.data
    if overrides.seed is not None:
        cfg["seed"] = overrides.seed
    return cfg


def config_text(cfg: Mapping[str, Any], data_fingerprint: str | None,
                objective: str | None = None) -> str:
    """The recorded form of a trial's settings (what duplicates are compared by):
    with ``objective``, the name of the objective function that trains it."""
    from .history import dumps

    out = {**{k: _json(v) for k, v in cfg.items()}, "data_fingerprint": data_fingerprint}
    if objective is not None:
        out["objective_fn"] = objective
    return dumps(out)


def _json(v: Any) -> Any:
    j = to_json(v)
    return j if j is None or isinstance(j, str | int | float | bool | list | dict) else str(v)


def load_trial_data(cfg: Mapping[str, Any], base_dir: str | Path,
                    progress: Callable[[int, int], None] | None = None) -> Any:
    from .data import load_data

    kwargs = {"progress": progress} if progress is not None else {}
    return load_data(cfg["data"], val_split=cfg["val_split"], seed=0, base_dir=base_dir,
                     **kwargs)


def train_candidate(graph: Any, cfg: Mapping[str, Any], base_dir: str | Path, *,
                    on_epoch: Callable[[Any], None] | None = None,
                    deadline: float | None = None, objective: Any = None,
                    number: int | None = None) -> Any:
    """Lower ``graph`` and train it with ``cfg``: with the built-in trainer (its
    ``TrainResult``), or with a :class:`~autoarch.search.objective.UserObjective`."""
    from ..backends.torch import lower_graph
    from .trainer import train

    if objective is not None:
        return objective.run(graph, cfg, base_dir, number=number, on_epoch=on_epoch,
                             deadline=deadline)
    data = load_trial_data(cfg, base_dir)
    model = lower_graph(graph, seed=cfg["seed"])
    return train(model, data, dict(cfg), on_epoch=on_epoch, deadline=deadline)


def failure_reason(e: BaseException) -> str:
    """One line for ``trials.error``."""
    from .trainer import TrainingFailed

    if isinstance(e, TrainingFailed):
        return e.reason
    if isinstance(e, SpecError):
        return located_reason(e)
    return f"{type(e).__name__}: {e}"


def located_reason(e: SpecError) -> str:
    where = f"{Path(e.filename).name}:{e.line}:{e.column}: " if e.span else ""
    return where + e.message


def model_bytes(model: Any, spec: Any, choices: Mapping[str, Any], seed: int | None) -> bytes:
    """The file ``autoarch.save_model`` would write, as bytes."""
    from ..backends.torch import save_model

    buf = io.BytesIO()
    save_model(model, spec, dict(choices), buf, seed=seed)
    return buf.getvalue()


def epoch_row(ep: Any) -> dict[str, Any]:
    """An ``EpochResult`` (or an objective function's report) as an ``epochs`` row."""
    from .history import dumps

    extra = getattr(ep, "extra", None)
    return {"epoch": ep.epoch, "train_loss": ep.train_loss,
            "train_accuracy": ep.train_accuracy, "val_loss": ep.val_loss,
            "val_accuracy": ep.val_accuracy, "lr": ep.lr, "wall_s": ep.wall_s,
            "metrics": dumps(extra) if extra else None}

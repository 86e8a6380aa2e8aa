"""Your own objective: ``autoarch.search(spec, objective=fn)`` trains each candidate with ``fn``.

``fn(model, trial)`` receives the compiled candidate (an ``nn.Module`` already on
``trial.device``, its parameters seeded by ``trial.seed``) and a :class:`Trial`,
trains it however it likes, and returns the objective:

- a number: the value of the spec's objective metric measured by training (the one
  objective that is not a cost such as ``params``);
- a dict naming each of the spec's objective metrics measured by training; its other
  numbers are kept with the trial's metrics;
- ``None``: the numbers of the last ``trial.report(...)``.

``trial.report(epoch, **metrics)`` records the epoch in the history and tells the
search's pruner; when the pruner stops the trial it raises :class:`TrialPruned` (a
subclass of ``optuna.TrialPruned``): let it propagate. An exception raised by ``fn``
fails that trial only (its traceback is kept in the history) and the search goes on.

Everything else is as with the built-in trainer: candidates are checked before ``fn``
sees them (shapes, ``require``, constraints, size), duplicates are not trained again,
every trial and epoch is recorded, and a killed run resumes. The function is part of
the run's settings: a run resumes only with an objective function of the same name.

Example:
    >>> def fit(model, trial):
    ...     opt = torch.optim.Adam(model.parameters(), lr=trial.lr)
    ...     for epoch in range(1, trial.epochs + 1):
    ...         ...
    ...         trial.report(epoch, val_accuracy=acc)
    ...     return acc
    >>> autoarch.search(spec, objective=fit, trials=20, db="runs.db")
"""

from __future__ import annotations

import hashlib
import inspect
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from ..compiler.settings import COST_METRICS, EPOCH_METRICS
from .trainer import TrainingFailed


class TrialPruned(optuna.TrialPruned):
    """Raised by ``trial.report`` when the search's pruner stops the trial early."""


class ObjectiveFailed(TrainingFailed):
    """The objective function returned something that is not the objective."""


#: epoch columns of the history a report fills by name; other numbers go to ``metrics``
EPOCH_COLUMNS = (*EPOCH_METRICS, "lr", "wall_s")


@dataclass
class Reported:
    """One ``trial.report``: the epoch's numbers, as the history's ``epochs`` row has them."""

    epoch: int
    wall_s: float
    train_loss: float | None = None
    train_accuracy: float | None = None
    val_loss: float | None = None
    val_accuracy: float | None = None
    lr: float | None = None
    #: the other numbers reported (the row's ``metrics`` JSON)
    extra: dict[str, float] = field(default_factory=dict)

    def numbers(self) -> dict[str, float]:
        """Every number reported for the epoch, by name."""
        out = {k: getattr(self, k) for k in EPOCH_COLUMNS if getattr(self, k) is not None}
        return {**out, **self.extra}


class Trial:
    """What an objective function knows of the candidate it trains.

    Attributes:
        number: the trial's number in the run (as the history and Optuna count).
        choices: the candidate's decisions, by name.
        graph: its IR (:class:`autoarch.Graph`: ``params``, ``flops``, ``hash``, ...).
        seed: the `train` block's seed (the model's parameters were seeded with it,
            and ``torch.manual_seed(seed)`` was called before ``fn``).
        device: the ``torch.device`` the model is on (the `train` block's ``device``).
        train: the candidate's `train` settings (defaults filled in, ``--epochs`` and
            ``data=`` applied), as plain values: ``{"epochs": 10, "batch": 64,
            "optimizer": "adamw(lr = 0.001)", ...}``.
        epochs, batch, lr: the `train` settings' epochs, batch size and learning rate.
    """

    def __init__(self, graph: Any, cfg: Mapping[str, Any], *, number: int | None,
                 base_dir: str | Path, device: Any,
                 on_epoch: Callable[[Reported], None] | None = None,
                 deadline: float | None = None):
        from .trainer import base_lr

        self.graph = graph
        self.choices = dict(graph.choices)
        self.number = number
        self.seed = int(cfg["seed"])
        self.device = device
        self.train = {k: _plain(v) for k, v in cfg.items()}
        self.epochs, self.batch = int(cfg["epochs"]), int(cfg["batch"])
        self.lr = base_lr(cfg["optimizer"])
        self.reports: list[Reported] = []
        self._cfg, self._base_dir = cfg, base_dir
        self._on_epoch, self._deadline = on_epoch, deadline
        self._data: Any = None
        self._clock = time.perf_counter()

    @property
    def data(self) -> Any:
        """The data set of the `train` settings (``data=`` of the search, or the spec's),
        as an :class:`autoarch.Dataset`; loaded on first use."""
        if self._data is None:
            from .evaluate import load_trial_data

            self._data = load_trial_data(self._cfg, self._base_dir)
        return self._data

    def report(self, epoch: int, **metrics: Any) -> None:
        """Record ``epoch`` (counted from 1, increasing) with its metrics (numbers: floats,
        ints or one-element tensors). ``train_loss``, ``train_accuracy``, ``val_loss``,
        ``val_accuracy``, ``lr`` and ``wall_s`` fill the history's epoch columns (``wall_s``
        defaults to the seconds since the previous report); other names are kept in the
        epoch's ``metrics``. The pruner watches the objective's metric.

        Raises:
            TrialPruned: the pruner stopped the trial (let it propagate).
        """
        from .trainer import DeadlineReached

        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 1:
            raise ValueError(f"trial.report: epoch must be an integer >= 1, got {epoch!r}")
        if self.reports and epoch <= self.reports[-1].epoch:
            raise ValueError(f"trial.report: epoch {epoch} after epoch "
                             f"{self.reports[-1].epoch}; epochs must increase")
        values = {str(k): _number(k, v, "trial.report") for k, v in metrics.items()}
        now = time.perf_counter()
        wall = values.pop("wall_s", now - self._clock)
        self._clock = now
        known = {k: values.pop(k) for k in EPOCH_COLUMNS if k in values}
        rep = Reported(epoch, wall, **known, extra=values)
        self.reports.append(rep)
        if self._on_epoch is not None:
            self._on_epoch(rep)
        if self._deadline is not None and time.time() > self._deadline:
            raise DeadlineReached(f"stopped after epoch {epoch}")

    def __repr__(self) -> str:
        return (f"Trial(number={self.number}, choices={self.choices}, params="
                f"{self.graph.params:,}, seed={self.seed}, device={self.device})")


@dataclass
class ObjectiveResult:
    """What an objective function's training gave: as the trainer's ``TrainResult``."""

    metrics: dict[str, Any]
    model: Any
    epochs: list[Reported]


class UserObjective:
    """An objective function and the objectives it must measure; picklable when ``fn`` is."""

    def __init__(self, fn: Callable[..., Any], objectives: list[Any]):
        self.fn = fn
        #: the objectives' metrics that training measures (the others are costs)
        self.measured = [o.metric for o in objectives if o.metric not in COST_METRICS]
        self.name = function_name(fn)

    def run(self, graph: Any, cfg: Mapping[str, Any], base_dir: str | Path, *,
            number: int | None = None, on_epoch: Callable[[Reported], None] | None = None,
            deadline: float | None = None) -> ObjectiveResult:
        """Lower ``graph``, hand it to the function with its :class:`Trial`, and check
        what the function returns."""
        import torch

        from ..backends.torch import lower_graph
        from .trainer import _device

        device = _device(cfg["device"])
        model = lower_graph(graph, seed=int(cfg["seed"])).to(device)
        trial = Trial(graph, cfg, number=number, base_dir=base_dir, device=device,
                      on_epoch=on_epoch, deadline=deadline)
        torch.manual_seed(int(cfg["seed"]))
        start = time.perf_counter()
        value = self.fn(model, trial)
        elapsed = time.perf_counter() - start
        metrics = self.metrics_of(value, trial)
        metrics.setdefault("train_time", elapsed)
        return ObjectiveResult(metrics, model, trial.reports)

    def metrics_of(self, value: Any, trial: Trial) -> dict[str, Any]:
        """The trial's metrics from what the function returned (see the module)."""
        what = f"objective function {self.name}"
        if value is None:
            if not trial.reports:
                raise ObjectiveFailed(f"{what} returned None and reported no metrics; "
                                      "return a number or a dict such as "
                                      f"{{'{(self.measured or ['val_loss'])[0]}': 0.9}}")
            value = trial.reports[-1].numbers()
            value.pop("wall_s", None)
        if isinstance(value, Mapping):
            metrics = {str(k): _number(k, v, what, ObjectiveFailed) for k, v in value.items()}
        else:
            if len(self.measured) != 1:
                raise ObjectiveFailed(
                    f"{what} returned one number, but the spec's objectives measure "
                    f"{len(self.measured)} metrics by training ({', '.join(self.measured)}); "
                    "return a dict naming each")
            metrics = {self.measured[0]: _number(self.measured[0], value, what,
                                                 ObjectiveFailed)}
        costs = sorted(set(metrics) & set(COST_METRICS))
        if costs:
            raise ObjectiveFailed(f"{what} returned {', '.join(costs)}: the candidate's costs "
                                  "come from its graph; leave them out")
        missing = [m for m in self.measured if m not in metrics]
        if missing:
            raise ObjectiveFailed(f"{what} returned {sorted(metrics)} without "
                                  f"{', '.join(missing)} (the spec's objective)")
        return metrics


def function_name(fn: Any) -> str:
    """``module.qualname`` of a function (or of a callable object's class): what a run
    records of its objective function, and what a resumed run must match."""
    target = fn if hasattr(fn, "__qualname__") else type(fn)
    inner = getattr(fn, "func", None)  # functools.partial
    if inner is not None and not hasattr(fn, "__qualname__"):
        return f"partial({function_name(inner)})"
    return f"{getattr(target, '__module__', None) or '?'}.{target.__qualname__}"


def source_digest(fn: Any) -> str | None:
    """A digest of the function's source code, where Python can find it."""
    try:
        text = inspect.getsource(getattr(fn, "func", fn))
    except (OSError, TypeError):
        return None
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _number(name: Any, v: Any, what: str, error: type[Exception] = TypeError) -> float:
    """A reported or returned value as a float (a one-element tensor or array counts)."""
    if isinstance(v, bool) or isinstance(v, str):
        raise error(f"{what}: {name} must be a number, got {type(v).__name__}")
    try:
        return float(v)
    except (TypeError, ValueError, RuntimeError):
        raise error(f"{what}: {name} must be a number, got {type(v).__name__}") from None


def _plain(v: Any) -> Any:
    """A `train` setting as a plain value: symbols as their spec text, lists as lists."""
    from ..compiler.values import to_json

    return to_json(v)

"""Training one candidate: minibatch training, validation per epoch, final metrics.

:func:`train` takes a model (a compiled candidate or any ``nn.Module``), a
:class:`~autoarch.search.data.Dataset` and the candidate's `train` settings
(:meth:`Spec.train_config`), and returns the per-epoch history and the metrics
a search objective may name. What it does, in order:

1. checks the model against the data with one forward of two examples (a
   mismatch is a :class:`SpecError` naming both shapes);
2. builds the optimizer (muP parameter groups when the model's `init` recorded
   muP learning-rate multipliers, Adam/AdamW only);
3. trains ``epochs`` epochs of shuffled minibatches, with the learning rate set
   before every step by the schedule, the MoE load-balancing losses added, and
   the gradient norm clipped when ``grad_clip`` is set;
4. evaluates on the validation split after every epoch, calls ``on_epoch``, and
   at the end scores the test split too (when the data set has one).

Data in memory is indexed directly; a data set read from torch datasets
(:meth:`Dataset.from_datasets`) is batched by a ``DataLoader`` in exactly the
same batches, so both give the same numbers.

A loss that is not finite stops training with :class:`TrainingFailed`.
Runs are deterministic on CPU: the same model, data, settings and seed give
bit-identical losses and accuracies (timings aside).

Example:
    >>> data = load_data(Symbol("digits"))
    >>> result = train(model, data, spec.train_config(choices), epochs=3)
    >>> result.metrics["val_accuracy"]
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..backends.torch.init import mup_param_groups
from ..compiler.settings import OPTIMIZERS, SCHEDULES, defaults
from ..compiler.values import Symbol, SymbolCall
from ..dsl.errors import SpecError, suggest
from .data import Dataset

#: weight of the MoE load-balancing losses (``aux_loss`` of every submodule) in the loss
AUX_LOSS_COEF = 0.01
#: default settings of each optimizer where the spec leaves them out
OPTIMIZER_DEFAULTS: dict[str, dict[str, Any]] = {
    "adamw": {"lr": 1e-3, "weight_decay": 0.01, "betas": (0.9, 0.999), "eps": 1e-8},
    "adam": {"lr": 1e-3, "weight_decay": 0.0, "betas": (0.9, 0.999), "eps": 1e-8},
    "sgd": {"lr": 1e-3, "weight_decay": 0.0, "momentum": 0.0, "nesterov": False},
}
#: smallest batch used for evaluation (larger batches, fewer calls; results do not depend on it)
EVAL_BATCH = 1024


class DeadlineReached(Exception):
    """Training was stopped at ``deadline`` (the search's timeout), between two steps."""


class TrainingFailed(Exception):
    """Training could not go on (a loss became nan or inf); ``reason`` says where."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class EpochResult:
    """One epoch: its mean training loss/accuracy, the validation scores after it.

    ``epoch`` counts from 1; ``lr`` is the base learning rate of the epoch's last
    step; ``wall_s`` covers the epoch's training and its validation.
    """

    epoch: int
    train_loss: float
    train_accuracy: float | None
    val_loss: float
    val_accuracy: float | None
    wall_s: float
    lr: float


@dataclass
class TrainResult:
    """The epochs, the final metrics, and the trained model (in eval mode)."""

    epochs: list[EpochResult]
    metrics: dict[str, float]
    model: nn.Module = field(repr=False)


def train(model: nn.Module, data: Dataset, config: dict[str, Any], *,
          epochs: int | None = None, on_epoch: Callable[[EpochResult], None] | None = None,
          seed: int | None = None, deadline: float | None = None) -> TrainResult:
    """Train ``model`` on ``data`` with the `train` settings ``config``.

    Args:
        model: the candidate; trained in place.
        data: train, validation and (optionally) test splits, in memory or read
            from torch datasets.
        config: `train` settings as :meth:`Spec.train_config` gives them (missing
            keys take their defaults; ``data`` and ``val_split`` are not used here).
        epochs: overrides ``config["epochs"]``.
        on_epoch: called after every epoch; an exception it raises (to prune the
            trial) propagates unchanged.
        seed: overrides ``config["seed"]``.
        deadline: a ``time.time()`` after which training stops with
            :class:`DeadlineReached`; checked before every step and every evaluation.

    Returns:
        The epochs and metrics: ``train_loss``, ``val_loss``, ``test_loss``,
        ``train_time`` (seconds), ``latency`` (seconds per validation example), and
        for classification ``train_accuracy``, ``val_accuracy``, ``test_accuracy``.
        Without a test split there are no ``test_loss`` and ``test_accuracy``.

    Raises:
        SpecError: settings that do not fit the data or the model.
        DataError: an item of torch datasets that does not fit the first training
            item (a subclass of SpecError).
        TrainingFailed: a loss became nan or inf.
        DeadlineReached: ``deadline`` passed.
    """
    cfg = {**defaults("train"), **config}
    n_epochs = int(epochs if epochs is not None else cfg["epochs"])
    seed = int(seed if seed is not None else cfg["seed"])
    batch = int(cfg["batch"])
    if n_epochs < 1 or batch < 1:
        raise SpecError(f"epochs and batch must be at least 1, got {n_epochs} and {batch}")
    classify = data.task == "classification"
    loss_fn = loss_function(cfg["loss"], data)
    device = _device(cfg["device"])
    clip = cfg.get("grad_clip")
    cosine = schedule_name(cfg["schedule"]) == "cosine"

    torch.manual_seed(seed)
    shuffle = torch.Generator().manual_seed(seed)
    # a DataLoader draws its workers' seed from this, not from torch's global generator
    # (which would shift dropout's draws away from those of the same data in memory)
    workers = torch.Generator().manual_seed(seed)
    model.to(device)
    if data.in_memory:  # moved once; torch datasets are read batch by batch
        x_train, y_train = data.x_train.to(device), data.y_train.to(device)
        x_val, y_val = data.x_val.to(device), data.y_val.to(device)
    check_shapes(model, data, device)

    optimizer, base_lrs = make_optimizer(model, cfg["optimizer"])
    nominal = lr = base_lr(cfg["optimizer"])
    aux_modules = [m for m in model.modules() if isinstance(getattr(m, "aux_loss", None),
                                                            torch.Tensor)]
    n = data.size("train")
    steps = steps_per_epoch(n, batch)
    total = steps * n_epochs
    history: list[EpochResult] = []
    train_time = 0.0
    last_eval_s = 0.0
    val: tuple[float, float | None] = (math.nan, None)

    for epoch in range(1, n_epochs + 1):
        start = time.perf_counter()
        model.train()
        perm = torch.randperm(n, generator=shuffle)
        if data.in_memory:
            perm = perm.to(device)
            batches: Iterator[tuple[torch.Tensor, torch.Tensor]] = (
                (x_train[idx], y_train[idx])
                for idx in (perm[step * batch:(step + 1) * batch] for step in range(steps)))
        else:  # the same rows, read by a DataLoader
            batches = data.batches(
                "train", [perm[step * batch:(step + 1) * batch].tolist() for step in range(steps)],
                generator=workers)
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        correct = torch.zeros((), dtype=torch.int64, device=device)
        seen = 0
        for step in range(steps):
            if deadline is not None and time.time() > deadline:
                raise DeadlineReached(f"stopped at epoch {epoch}, step {step + 1}")
            factor = cosine_factor(step + (epoch - 1) * steps, total) if cosine else 1.0
            if optimizer is not None:
                for group, base in zip(optimizer.param_groups, base_lrs, strict=True):
                    group["lr"] = base * factor
            lr = nominal * factor
            xb, yb = next(batches)
            xb, yb = xb.to(device), yb.to(device)
            out = model(xb)
            loss = loss_fn(out, yb)
            objective = loss
            if aux_modules:
                objective = loss + AUX_LOSS_COEF * sum(m.aux_loss for m in aux_modules)
            value = float(objective.detach())
            if not math.isfinite(value):
                raise TrainingFailed(f"loss is {nonfinite_text(value)} at epoch {epoch}, "
                                     f"step {step + 1}")
            if optimizer is not None:
                optimizer.zero_grad(set_to_none=True)
                objective.backward()
                if clip is not None:
                    nn.utils.clip_grad_norm_(model.parameters(), float(clip))
                optimizer.step()
            loss_sum += loss.detach().double() * len(xb)
            seen += len(xb)
            if classify:
                correct += (out.detach().argmax(-1) == yb).sum()
        train_loss = float(loss_sum) / seen
        train_acc = int(correct) / seen if classify else None
        if deadline is not None and time.time() > deadline:
            raise DeadlineReached(f"stopped after the steps of epoch {epoch}")
        eval_start = time.perf_counter()
        val = (evaluate(model, x_val, y_val, loss_fn, classify) if data.in_memory else
               evaluate_split(model, data, "val", loss_fn, classify, device, generator=workers))
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        end = time.perf_counter()
        last_eval_s = end - eval_start
        if not math.isfinite(val[0]):
            raise TrainingFailed(f"validation loss is {nonfinite_text(val[0])} after epoch {epoch}")
        result = EpochResult(epoch, train_loss, train_acc, val[0], val[1], end - start, lr)
        train_time += result.wall_s
        history.append(result)
        if on_epoch is not None:
            on_epoch(result)

    model.eval()
    last = history[-1]
    metrics = {"train_loss": last.train_loss, "val_loss": val[0],
               "train_time": train_time, "latency": last_eval_s / max(data.size("val"), 1)}
    if classify:
        metrics.update(train_accuracy=float(last.train_accuracy or 0.0),
                       val_accuracy=float(val[1] or 0.0))
    if data.has_test:  # a data set of your own may have none: then no test metrics
        test = evaluate_split(model, data, "test", loss_fn, classify, device,
                              generator=workers)
        metrics["test_loss"] = test[0]
        if classify:
            metrics["test_accuracy"] = float(test[1] or 0.0)
    return TrainResult(history, metrics, model)


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
             loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
             classify: bool) -> tuple[float, float | None]:
    """Mean loss and accuracy (None for regression) of ``model`` on ``x, y``, in eval mode."""
    n = len(x)
    chunks = ((x[lo:lo + EVAL_BATCH], y[lo:lo + EVAL_BATCH]) for lo in range(0, n, EVAL_BATCH))
    return _mean_scores(model, chunks, n, x.device, loss_fn, classify)


def evaluate_split(model: nn.Module, data: Dataset, split: str,
                   loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                   classify: bool, device: torch.device | str = "cpu", *,
                   generator: torch.Generator | None = None) -> tuple[float, float | None]:
    """:func:`evaluate` on a split (``"val"`` or ``"test"``) of either kind of data set.

    Torch datasets are read by a DataLoader in the same chunks of :data:`EVAL_BATCH`
    examples as tensors are, so both give the same numbers.
    """
    if data.in_memory:
        x, y = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
        return evaluate(model, x.to(device), y.to(device), loss_fn, classify)
    n = data.size(split)
    chunks = [list(range(lo, min(lo + EVAL_BATCH, n))) for lo in range(0, n, EVAL_BATCH)]
    return _mean_scores(model, data.batches(split, chunks, generator=generator), n,
                        torch.device(device), loss_fn, classify)


def _mean_scores(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
                 n: int, device: torch.device,
                 loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                 classify: bool) -> tuple[float, float | None]:
    model.eval()
    if n == 0:
        return math.nan, None
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    with torch.no_grad():
        for xb, yb in batches:
            xb, yb = xb.to(device), yb.to(device)
            out = model(xb)
            loss_sum += loss_fn(out, yb).double() * len(xb)
            if classify:
                correct += (out.argmax(-1) == yb).sum()
    return float(loss_sum) / n, (int(correct) / n if classify else None)


def check_shapes(model: nn.Module, data: Dataset, device: torch.device | str = "cpu") -> None:
    """Raise a SpecError unless ``model`` takes ``data``'s inputs and gives its outputs.

    One forward of two training examples in eval mode, without gradients (it
    leaves batch-norm statistics and the random state alone).
    """
    expected = _model_input_shape(model)
    got = data.input_shape
    if expected is not None and tuple(expected) != got:
        raise SpecError(f"the model takes {list(expected)} but data set {data.name} has "
                        f"inputs {list(got)}", hint=_shape_hint(data))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            first = (data.x_train[:2] if data.in_memory else
                     data.take("train", range(min(2, data.size("train"))))[0])
            out = model(first.to(device))
    except (RuntimeError, ValueError, IndexError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SpecError(f"the model cannot take the inputs of data set {data.name}, "
                        f"{list(got)}: {first}", hint=_shape_hint(data)) from None
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor):
        raise SpecError(f"the model returns {type(out).__name__}, not a tensor")
    want = data.output_shape
    if tuple(out.shape[1:]) != want:
        what = f"{want[0]} classes" if data.task == "classification" else "regression targets"
        raise SpecError(f"the model outputs {list(out.shape[1:])} but data set {data.name} "
                        f"needs {list(want)} ({what})",
                        hint=f"declare the model as -> {list(want)}")


def _model_input_shape(model: nn.Module) -> tuple[int, ...] | None:
    """The input shape a model declares (``autoarch_input_shape``), or that a Sequential's
    first Linear implies; None when unknown (the trial forward then decides)."""
    shape = getattr(model, "autoarch_input_shape", None)
    if shape is not None:
        return tuple(shape)
    if isinstance(model, nn.Sequential) and len(model) and isinstance(model[0], nn.Linear):
        return (model[0].in_features,)
    return None


def _shape_hint(data: Dataset) -> str:
    return (f"declare the model's input as x: {list(data.input_shape)} and its output as "
            f"-> {list(data.output_shape)} for {data.name}")


# ---- settings ----------------------------------------------------------------------


def setting_name(v: Any) -> str:
    """The name of a symbol setting (``cosine``, ``adamw(lr = 0.01)``) as text."""
    return v.name if isinstance(v, Symbol | SymbolCall) else str(v)


def schedule_name(v: Any) -> str:
    """The learning-rate schedule's name, checked."""
    name = setting_name(v)
    if name not in SCHEDULES:
        raise SpecError(f"unknown schedule '{name}'",
                        hint=suggest(name, SCHEDULES, listing="expected one of"))
    return name


def loss_function(v: Any, data: Dataset) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    name = setting_name(v)
    classify = data.task == "classification"
    if name == "auto":
        name = "cross_entropy" if classify else "mse"
    if name == "cross_entropy":
        if not classify:
            raise SpecError(f"loss = cross_entropy needs classes, but data set {data.name} is "
                            "a regression task", hint="use loss = mse (or auto)")
        return F.cross_entropy
    if name == "mse":
        if classify:
            raise SpecError(f"loss = mse needs regression targets, but data set {data.name} "
                            f"has {data.n_classes} classes",
                            hint="use loss = cross_entropy (or auto)")
        return F.mse_loss
    raise SpecError(f"unknown loss '{name}'",
                    hint=suggest(name, ("auto", "cross_entropy", "mse"), listing="expected"))


def _device(v: Any) -> torch.device:
    name = setting_name(v)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SpecError("device = cuda, but no CUDA GPU is available here",
                        hint="use device = auto to train on a GPU when there is one")
    if name not in ("cpu", "cuda"):
        raise SpecError(f"unknown device '{name}'", hint="expected auto, cpu or cuda")
    return torch.device(name)


def optimizer_settings(v: Any) -> tuple[str, dict[str, Any]]:
    """The optimizer's name and all its settings, defaults filled in."""
    name = setting_name(v)
    if name not in OPTIMIZERS:
        raise SpecError(f"unknown optimizer '{name}'",
                        hint=suggest(name, OPTIMIZERS, listing="expected one of"))
    settings = dict(OPTIMIZER_DEFAULTS[name])
    if isinstance(v, SymbolCall):
        for k, val in v.kwargs:
            if k not in settings:
                raise SpecError(f"{name}() has no setting '{k}'",
                                hint=suggest(k, settings, listing="it takes"))
            settings[k] = val
    settings["lr"] = float(settings["lr"])
    settings["weight_decay"] = float(settings["weight_decay"])
    if "betas" in settings:
        settings["betas"] = tuple(float(b) for b in settings["betas"])
        settings["eps"] = float(settings["eps"])
    else:
        settings["momentum"] = float(settings["momentum"])
        settings["nesterov"] = bool(settings["nesterov"])
        if settings["nesterov"] and settings["momentum"] <= 0:
            raise SpecError("sgd(nesterov = true) needs a momentum > 0",
                            hint="like sgd(lr = 0.1, momentum = 0.9, nesterov = true)")
    return name, settings


def base_lr(v: Any) -> float:
    """The optimizer setting's learning rate (its default where none is given)."""
    return optimizer_settings(v)[1]["lr"]


def has_mup(model: nn.Module) -> bool:
    """Whether an `init = mup(...)` recorded learning-rate multipliers in ``model``."""
    return any(m.__dict__.get("mup_lr_scales") for m in model.modules()) or any(
        hasattr(p, "mup_lr_scale") for p in model.parameters())


def make_optimizer(model: nn.Module, v: Any) -> tuple[torch.optim.Optimizer | None, list[float]]:
    """The torch optimizer and its groups' base learning rates (None: nothing to train)."""
    name, s = optimizer_settings(v)
    cls = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam, "sgd": torch.optim.SGD}[name]
    lr, wd = s.pop("lr"), s.pop("weight_decay")
    if name != "sgd" and has_mup(model):
        # muP's multipliers are Adam's (Tensor Programs V, table 3); SGD keeps one lr
        groups = mup_param_groups(model, lr, wd)
    else:
        params = [p for p in model.parameters() if p.requires_grad]
        groups = [{"params": params, "lr": lr, "weight_decay": wd}] if params else []
    if not groups:
        return None, []
    opt = cls(groups, lr=lr, weight_decay=wd, **s)
    return opt, [g["lr"] for g in opt.param_groups]


def steps_per_epoch(n: int, batch: int) -> int:
    """Batches per epoch: a last batch of a single example is dropped (batch norm needs 2)."""
    full, rest = divmod(n, batch)
    return max(full + (1 if rest > 1 else 0), 1)


def cosine_factor(step: int, total: int) -> float:
    """The cosine schedule's factor at step ``step`` of ``total`` (1 at 0, reaching 0 at total)."""
    return 0.5 * (1.0 + math.cos(math.pi * step / total))


def nonfinite_text(v: float) -> str:
    """How a loss that is not finite reads in an error: nan, inf or -inf."""
    return "nan" if math.isnan(v) else "inf" if v > 0 else "-inf"


"""Training a supernet, and scoring candidates with the weights they inherit from it.

:func:`train_supernet` trains a :class:`~autoarch.backends.torch.supernet.Supernet`
on the spec's data with its `train` settings (optimizer, batch, schedule, seed,
loss), one or more sampled paths per step (``path_samplers``), so that the
weights no step used stay bit-identical through it. After each epoch it can
save a checkpoint (weights, slot layout, optimizer, sampler and random state)
from which a killed run resumes at the next epoch with the same draws.

:func:`score_candidate` gives a candidate's validation metrics with inherited
weights: the path is extracted as an ordinary module, its BatchNorm statistics
recalibrated on training batches (SPOS), and it is evaluated on the validation
split, in milliseconds for the small models of a CPU search.

Example:
    >>> net = autoarch.supernet(spec, seed=0)
    >>> epochs = train_supernet(net, epochs=5, path_sampler="fair")
    >>> score_candidate(net, spec.space().sample(seed=1))["val_accuracy"]
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..backends.torch.supernet import Supernet, masked_step, recalibrate_batchnorm
from ..compiler.deciders import FirstDecider, RandomDecider
from ..compiler.settings import defaults
from ..compiler.supernet import path_graph
from ..dsl.errors import SpecError
from . import trainer
from .data import Dataset
from .evaluate import load_trial_data
from .path_samplers import PathSampler, make_path_sampler

#: training batches that re-estimate BatchNorm statistics before a path is scored
BN_BATCHES = 8
#: paths scored after each supernet epoch, for its progress line
PROGRESS_PATHS = 3
#: the format of a supernet checkpoint
CHECKPOINT_VERSION = 1


@dataclass
class SupernetEpoch:
    """One supernet epoch: mean training loss over its steps' paths; validation loss
    and accuracy averaged over a fixed set of scored paths."""

    epoch: int
    train_loss: float
    val_loss: float
    val_accuracy: float | None
    wall_s: float
    lr: float
    paths: int


class Validity:
    """Whether a path is a valid candidate that meets the spec's constraints (cached)."""

    def __init__(self, spec: Any):
        self.spec = spec
        self._seen: dict[Any, bool] = {}

    def __call__(self, choices: dict[str, Any]) -> bool:
        key = tuple(sorted((k, repr(v)) for k, v in choices.items()))
        ok = self._seen.get(key)
        if ok is None:
            try:
                graph = path_graph(self.spec, choices)
                self.spec.check_params(graph)  # too large to build: not a path
                ok = not self.spec.violated_constraints(graph)
            except SpecError as e:
                if type(e) is SpecError:
                    raise
                ok = False  # invalid candidate (require, shapes, too large)
            self._seen[key] = ok
        return ok


def supernet_config(spec: Any) -> dict[str, Any]:
    """The spec's `train` settings, defaults filled in: one set for every path, since
    ``check_supernet`` refused a `train` block that depends on a decision."""
    return {**defaults("train"), **spec.elaborate(FirstDecider(), build=False).train}


def spec_data(spec: Any, config: Mapping[str, Any] | None = None) -> Dataset:
    """The data set the spec's `train` block names (files relative to the spec)."""
    cfg = dict(config) if config is not None else supernet_config(spec)
    base = Path(spec.filename).parent if spec.filename and not spec.filename.startswith("<") \
        else Path(".")
    return load_trial_data(cfg, base)


def train_supernet(net: Supernet, data: Dataset | None = None, *, epochs: int = 1,
                   path_sampler: str | PathSampler = "uniform",
                   config: Mapping[str, Any] | None = None, seed: int | None = None,
                   checkpoint: str | Path | None = None,
                   on_epoch: Callable[[SupernetEpoch], None] | None = None,
                   on_step: Callable[[int, int], None] | None = None,
                   deadline: float | None = None) -> list[SupernetEpoch]:
    """Train ``net`` for ``epochs`` epochs; the epochs trained (all, after a resume).

    Args:
        net: the supernet (``autoarch.supernet(spec)``).
        data: the data; default: the spec's `train` data.
        epochs: supernet epochs (an epoch is one pass of steps over the training rows).
        path_sampler: ``uniform``, ``fair`` or ``pada`` (or a PathSampler).
        config: `train` settings (optimizer, batch, schedule, loss, seed, grad_clip);
            default the spec's. A decision in them is refused by the supernet.
        seed: overrides ``config["seed"]``.
        checkpoint: a file saved after every epoch; if it exists, training resumes
            after its last epoch (its settings must match, else a SpecError).
        on_epoch: called after every epoch (it may raise to stop training).
        on_step: called with (step, steps of the epoch).
        deadline: a ``time.time()`` after which training stops with DeadlineReached.
    """
    spec = net.spec
    cfg = {**(dict(config) if config is not None else supernet_config(spec))}
    if seed is not None:
        cfg["seed"] = seed
    seed = int(cfg["seed"])
    data = data if data is not None else spec_data(spec, cfg)
    data.require_in_memory("one-shot search")  # path samplers index the rows directly
    classify = data.task == "classification"
    loss_fn = trainer.loss_function(cfg["loss"], data)
    batch = int(cfg["batch"])
    clip = cfg.get("grad_clip")
    cosine = trainer.schedule_name(cfg["schedule"]) == "cosine"
    valid = Validity(spec)
    sampler = path_sampler if isinstance(path_sampler, PathSampler) else make_path_sampler(
        path_sampler, spec, valid, seed=seed)
    n = len(data.x_train)
    steps = trainer.steps_per_epoch(n, batch)
    total = steps * epochs
    identity = {"path_sampler": sampler.name, "epochs": epochs, "seed": seed,
                "batch": batch, "optimizer": str(cfg["optimizer"]), "rows": n,
                "schedule": str(cfg["schedule"])}

    torch.manual_seed(seed)
    shuffle = torch.Generator().manual_seed(seed)
    history: list[SupernetEpoch] = []
    start = 1
    state = None
    if checkpoint is not None and Path(checkpoint).exists():
        state = _load_checkpoint(Path(checkpoint), identity)
        net.adopt(state["layout"])  # the slots grown before the kill
        net.load_state_dict(state["net"])
    optimizer, base_lrs = trainer.make_optimizer(net, cfg["optimizer"])
    if optimizer is None:
        raise SpecError("the supernet has no trainable parameters", hint="nothing to train")
    if state is not None:
        _restore(net, optimizer, sampler, shuffle, state)
        history = [SupernetEpoch(**e) for e in state["history"]]
        start = state["epoch"] + 1
    net.on_grow.append(_follow(optimizer, base_lrs))
    monitor = _monitor_paths(spec, valid, seed)
    nominal = trainer.base_lr(cfg["optimizer"])
    lr = nominal
    try:
        for epoch in range(start, epochs + 1):
            t0 = time.perf_counter()
            net.train()
            perm = torch.randperm(n, generator=shuffle)
            loss_sum, counted = 0.0, 0
            for step in range(steps):
                if deadline is not None and time.time() > deadline:
                    raise trainer.DeadlineReached(f"stopped at supernet epoch {epoch}, "
                                                  f"step {step + 1}")
                done = (step + (epoch - 1) * steps) / total
                factor = trainer.cosine_factor(step + (epoch - 1) * steps, total) \
                    if cosine else 1.0
                for group, base in zip(optimizer.param_groups, base_lrs, strict=True):
                    group["lr"] = base * factor
                lr = nominal * factor
                paths = sampler.paths(done)
                if sampler.samples_data:
                    idx, weights = sampler.batch(n, batch, done, shuffle)
                else:
                    idx, weights = perm[step * batch:(step + 1) * batch], None
                loss, norms = _step(net, optimizer, paths, sampler.path_weights(paths),
                                    data.x_train[idx], data.y_train[idx], weights, loss_fn,
                                    classify, clip, epoch, step)
                sampler.feedback(paths, norms[0], idx, norms[1])
                loss_sum += loss
                counted += 1
                if on_step is not None:
                    on_step(step + 1, steps)
            val_loss, val_acc = _monitor(net, monitor, data, loss_fn, classify, batch, seed)
            result = SupernetEpoch(epoch, loss_sum / max(counted, 1), val_loss, val_acc,
                                   time.perf_counter() - t0, lr, counted)
            history.append(result)
            if checkpoint is not None:
                _save_checkpoint(Path(checkpoint), net, optimizer, sampler, shuffle, epoch,
                                 history, identity)
            if on_epoch is not None:
                on_epoch(result)
    finally:
        net.on_grow.pop()
    return history


def _step(net: Supernet, optimizer: torch.optim.Optimizer, paths: list[dict[str, Any]],
          path_weights: list[float], xb: torch.Tensor, yb: torch.Tensor,
          weights: torch.Tensor | None, loss_fn: Callable[..., torch.Tensor], classify: bool,
          clip: Any, epoch: int, step: int) -> tuple[float, tuple[float, torch.Tensor | None]]:
    """One optimizer step over ``paths`` (gradients summed); the mean loss, the gradient
    norm and each example's output-gradient norm."""
    optimizer.zero_grad(set_to_none=True)
    total = 0.0
    example_norms = None
    with net.tracking() as used:
        for choices, pw in zip(paths, path_weights, strict=True):
            path = net.path(choices)
            out = net(xb, path)
            if weights is None:
                loss = loss_fn(out, yb)
            else:
                per = loss_fn(out, yb, reduction="none")
                per = per.reshape(len(xb), -1).mean(1)
                loss = (per * weights).mean()
            objective = loss * pw
            aux = net.aux_loss(path)
            if aux is not None:
                objective = objective + trainer.AUX_LOSS_COEF * aux
            value = float(loss.detach())
            if not math.isfinite(value):
                raise trainer.TrainingFailed(f"supernet loss is {trainer.nonfinite_text(value)} at "
                                             f"epoch {epoch}, step {step + 1}")
            objective.backward()
            total += value
            with torch.no_grad():
                g = (F.softmax(out, -1) - F.one_hot(yb, out.shape[-1])) if classify \
                    else (out - yb)
                en = g.reshape(len(xb), -1).norm(dim=1)
                example_norms = en if example_norms is None else example_norms + en
        params = [p for p in net.parameters() if p.grad is not None]
        if clip is not None:
            norm = float(nn.utils.clip_grad_norm_(params, float(clip)))
        else:
            norm = float(torch.linalg.vector_norm(
                torch.stack([p.grad.detach().norm() for p in params]))) if params else 0.0
        masked_step(optimizer, used)
    return total / len(paths), (norm, example_norms)


def _follow(optimizer: torch.optim.Optimizer, base_lrs: list[float]) -> Callable[..., None]:
    """Keep ``optimizer`` on the supernet's parameters when slots grow or appear."""
    def follow(moved: Mapping[torch.Tensor, torch.Tensor], added: list[torch.Tensor]) -> None:
        for group in optimizer.param_groups:
            group["params"] = [moved.get(p, p) for p in group["params"]]
        for old, new in moved.items():
            state = optimizer.state.pop(old, None)
            if state:
                grown = {}
                for k, v in state.items():
                    if isinstance(v, torch.Tensor) and v.shape == old.shape:
                        w = torch.zeros_like(new)
                        w[tuple(slice(0, s) for s in v.shape)] = v
                        v = w
                    grown[k] = v
                optimizer.state[new] = grown
        if added:
            optimizer.param_groups[0]["params"].extend(p for p in added if p.requires_grad)
    return follow


def _monitor_paths(spec: Any, valid: Any, seed: int) -> list[dict[str, Any]]:
    """A fixed few valid paths, scored after each epoch for the progress line."""
    rand = RandomDecider(seed + 7919)
    out: list[dict[str, Any]] = []
    for _ in range(200):
        c = spec.elaborate(rand, build=False).choices
        if valid(c):
            out.append(c)
            if len(out) == PROGRESS_PATHS:
                break
    return out


def _monitor(net: Supernet, paths: list[dict[str, Any]], data: Dataset,
             loss_fn: Any, classify: bool, batch: int, seed: int) -> tuple[float, float | None]:
    if not paths:
        return math.nan, None
    scores = [_score(net, c, data, loss_fn, classify, batch=batch, seed=seed) for c in paths]
    acc = [s[1] for s in scores]
    return (sum(s[0] for s in scores) / len(scores),
            None if acc[0] is None else sum(acc) / len(acc))  # type: ignore[arg-type]


def _score(net: Supernet, choices: Mapping[str, Any], data: Dataset, loss_fn: Any,
           classify: bool, *, batch: int, seed: int,
           bn_batches: int = BN_BATCHES) -> tuple[float, float | None]:
    model = net.extract(choices)
    g = torch.Generator().manual_seed(seed)
    n = len(data.x_train)
    batches = (data.x_train[torch.randperm(n, generator=g)[:batch]] for _ in range(bn_batches))
    recalibrate_batchnorm(model, batches)
    return trainer.evaluate(model, data.x_val, data.y_val, loss_fn, classify)


def score_candidate(net: Supernet, choices: Mapping[str, Any], data: Dataset | None = None,
                    *, config: Mapping[str, Any] | None = None, seed: int = 0,
                    bn_batches: int = BN_BATCHES) -> dict[str, Any]:
    """Candidate ``choices`` scored with the weights it inherits from ``net``.

    Its BatchNorm statistics are first re-estimated on ``bn_batches`` training
    batches. Returns ``val_loss``, ``val_accuracy`` (classification), and the
    candidate's costs (``params``, ``flops``, ``memory``, ...) for objectives and
    constraints.
    """
    spec = net.spec
    cfg = dict(config) if config is not None else supernet_config(spec)
    data = data if data is not None else spec_data(spec, cfg)
    data.require_in_memory("one-shot search")
    classify = data.task == "classification"
    loss_fn = trainer.loss_function(cfg["loss"], data)
    val_loss, val_acc = _score(net, choices, data, loss_fn, classify, batch=int(cfg["batch"]),
                               seed=seed, bn_batches=bn_batches)
    out: dict[str, Any] = {"val_loss": val_loss}
    if classify:
        out["val_accuracy"] = val_acc
    out.update(net.path(choices).graph.costs())
    return out


# -- checkpoints


def _save_checkpoint(path: Path, net: Supernet, optimizer: torch.optim.Optimizer,
                     sampler: PathSampler, shuffle: torch.Generator, epoch: int,
                     history: list[SupernetEpoch], identity: Mapping[str, Any]) -> None:
    """Write the checkpoint atomically: a killed write leaves the previous one."""
    state = {"version": CHECKPOINT_VERSION, "epoch": epoch, "identity": dict(identity),
             "layout": net.layout(), "net": net.state_dict(),
             "optimizer": _optimizer_state(net, optimizer),
             "sampler": sampler.state(), "shuffle": shuffle.get_state(),
             "torch_rng": torch.get_rng_state(), "py_rng": random.getstate(),
             "history": [asdict(e) for e in history]}
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _load_checkpoint(path: Path, identity: Mapping[str, Any]) -> dict[str, Any]:
    try:
        state = torch.load(path, weights_only=False)  # our own file, written above
    except Exception as e:  # noqa: BLE001 - a damaged file is a user-facing message
        raise SpecError(f"cannot read the supernet checkpoint {path}: {e}",
                        hint="delete it to train the supernet again from the start") from None
    if not isinstance(state, dict) or state.get("version") != CHECKPOINT_VERSION:
        raise SpecError(f"{path} is not a supernet checkpoint of this version",
                        hint="delete it to train the supernet again from the start")
    saved = state["identity"]
    changed = [k for k in identity if saved.get(k) != identity[k]]
    if changed:
        k = changed[0]
        raise SpecError(f"the supernet checkpoint {path} was trained with {k} = {saved.get(k)}, "
                        f"this run asks {identity[k]}",
                        hint="run with the same settings to resume, or delete the checkpoint "
                             "to train again")
    return state


def _optimizer_state(net: Supernet, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimizer's state by parameter name: slots appended by growth change the
    parameters' order, so positions would not survive a resume."""
    return {name: optimizer.state[p] for name, p in net.named_parameters()
            if p in optimizer.state}


def _restore(net: Supernet, optimizer: torch.optim.Optimizer, sampler: PathSampler,
             shuffle: torch.Generator, state: Mapping[str, Any]) -> None:
    params = dict(net.named_parameters())
    for name, st in state["optimizer"].items():
        optimizer.state[params[name]] = st
    sampler.load_state(state["sampler"])
    shuffle.set_state(state["shuffle"])
    torch.set_rng_state(state["torch_rng"])
    random.setstate(state["py_rng"])

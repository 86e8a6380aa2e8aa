"""The trainer: real training, determinism, optimizers, schedules, failures and checks."""

from __future__ import annotations

import copy
import math
import re
from contextlib import contextmanager
from typing import Any

import pytest
import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_pre_hook

import autoarch
from autoarch.backends.torch.init import apply_init
from autoarch.compiler.values import Symbol, SymbolCall
from autoarch.search.data import Dataset, load_data
from autoarch.search.trainer import EpochResult, TrainingFailed
from autoarch.search.trainer import train as _train


def train(model: nn.Module, data: Dataset, cfg: dict, **kwargs: Any):
    """The trainer on the CPU unless ``cfg`` names a device: these checks compare with
    models and formulas on the CPU, and ``device = auto`` trains on a GPU where there is
    one (found on a GPU machine)."""
    return _train(model, data, {"device": Symbol("cpu"), **cfg}, **kwargs)


def opt(name: str, **settings: Any) -> SymbolCall:
    return SymbolCall(name, (), tuple(settings.items()))


def mlp(d_in: int = 64, d_out: int = 10, hidden: int = 64, seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, d_out))


@contextmanager
def optimizer_steps():
    """Every optimizer step taken inside: (optimizer, [(lr, weight_decay, params) per group])."""
    seen: list[tuple[torch.optim.Optimizer, list[tuple[float, float, list]]]] = []

    def hook(optimizer, args, kwargs):
        seen.append((optimizer, [(g["lr"], g["weight_decay"], list(g["params"]))
                                 for g in optimizer.param_groups]))

    handle = register_optimizer_step_pre_hook(hook)
    try:
        yield seen
    finally:
        handle.remove()


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_data(Symbol("digits"))


@pytest.fixture(scope="module")
def kan_fit() -> Dataset:
    return load_data(Symbol("kan_fit"))


def small(data: Dataset, n: int) -> Dataset:
    """The first n training rows of ``data`` (val and test kept), for fast exact checks."""
    return Dataset(data.name, data.task, data.x_train[:n], data.y_train[:n], data.x_val,
                   data.y_val, data.x_test, data.y_test, data.n_classes)


# ---- it learns -----------------------------------------------------------------------


def test_mlp_learns_digits(digits):
    epochs: list[EpochResult] = []
    result = train(mlp(), digits, {"epochs": 4, "optimizer": opt("adamw", lr=1e-2)},
                   on_epoch=epochs.append)
    m = result.metrics
    assert m["val_accuracy"] > 0.9 and m["test_accuracy"] > 0.85
    assert [e.epoch for e in epochs] == [1, 2, 3, 4] and epochs == result.epochs
    assert epochs[-1].train_loss < epochs[0].train_loss
    assert m["val_loss"] == epochs[-1].val_loss and m["val_accuracy"] == epochs[-1].val_accuracy
    assert set(m) == {"train_loss", "train_accuracy", "val_loss", "val_accuracy", "test_loss",
                      "test_accuracy", "train_time", "latency"}
    assert m["train_time"] > 0 and 0 < m["latency"] < 0.01
    assert not result.model.training


def test_reported_metrics_match_an_independent_evaluation(digits):
    result = train(mlp(), digits, {"epochs": 2, "optimizer": opt("adam", lr=3e-3)})
    model = result.model
    with torch.no_grad():
        out = model(digits.x_val)
    loss = nn.functional.cross_entropy(out, digits.y_val).item()
    acc = (out.argmax(1) == digits.y_val).double().mean().item()
    assert result.metrics["val_loss"] == pytest.approx(loss, rel=1e-5)
    assert result.metrics["val_accuracy"] == pytest.approx(acc)


def test_compiled_spec_trains(digits):
    spec = autoarch.loads(
        "model m(x: [64]) -> [10] {\n"
        "  h = linear(x, choice(16, 32))\n"
        "  h = h + mlp(layernorm(h), expand = 2)\n"
        "  return linear(h, 10)\n"
        "}\n"
        "train { data = digits  epochs = 2  optimizer = adamw(lr = 3e-3) }\n", "t.spec")
    choices = spec.space().sample(seed=0)
    config = spec.train_config(choices)
    model = autoarch.compile(spec, choices, seed=0)
    result = train(model, digits, config)
    assert len(result.epochs) == 2
    assert result.metrics["val_accuracy"] > 0.6  # chance is 0.1


def test_regression_metrics_have_no_accuracy(kan_fit):
    result = train(mlp(2, 1, 32), kan_fit, {"epochs": 3, "optimizer": opt("adam", lr=1e-2)})
    assert "val_accuracy" not in result.metrics and result.epochs[0].val_accuracy is None
    assert result.metrics["val_loss"] < result.epochs[0].train_loss
    with torch.no_grad():
        mse = ((result.model(kan_fit.x_test) - kan_fit.y_test) ** 2).mean().item()
    assert result.metrics["test_loss"] == pytest.approx(mse, rel=1e-5)


# ---- determinism and overrides ----------------------------------------------------------


def strip(result) -> tuple:
    epochs = [(e.epoch, e.train_loss, e.train_accuracy, e.val_loss, e.val_accuracy, e.lr)
              for e in result.epochs]
    metrics = {k: v for k, v in result.metrics.items() if k not in ("train_time", "latency")}
    return epochs, metrics


def test_same_seed_gives_identical_runs(digits):
    model = nn.Sequential(nn.Linear(64, 32), nn.Dropout(0.2), nn.ReLU(), nn.Linear(32, 10))
    config = {"epochs": 2, "batch": 50, "seed": 3}
    a = train(copy.deepcopy(model), digits, config)
    b = train(copy.deepcopy(model), digits, config)
    c = train(copy.deepcopy(model), digits, config, seed=4)  # the seed override
    assert strip(a) == strip(b)
    assert strip(a) != strip(c)
    # the data set is not touched by training: same split for every seed
    assert torch.equal(digits.x_val, load_data(Symbol("digits")).x_val)


def test_epochs_override(digits):
    result = train(mlp(), small(digits, 100), {"epochs": 7}, epochs=2)
    assert len(result.epochs) == 2


# ---- optimizers and schedules -------------------------------------------------------------


def test_cosine_schedule_per_step(digits):
    data = small(digits, 200)  # 200 / 64: 4 steps per epoch, the last of 8 rows
    lrs: list[float] = []
    with optimizer_steps() as seen:
        result = train(mlp(), data, {"epochs": 3, "batch": 64, "optimizer": opt("sgd", lr=0.05)})
    lrs = [groups[0][0] for _, groups in seen]
    total = 12
    assert lrs == pytest.approx([0.05 * 0.5 * (1 + math.cos(math.pi * t / total))
                                 for t in range(total)], rel=1e-12)
    assert [e.lr for e in result.epochs] == pytest.approx([lrs[3], lrs[7], lrs[11]])


def test_constant_schedule(digits):
    with optimizer_steps() as seen:
        train(mlp(), small(digits, 130), {"epochs": 2, "batch": 64, "schedule": Symbol("constant"),
                                          "optimizer": opt("adam", lr=0.02)})
    # 130 = 2 * 64 + 2: three steps per epoch (a last batch of one row would be dropped)
    assert [groups[0][0] for _, groups in seen] == [0.02] * 6


def test_adamw_settings_reach_torch(digits):
    with optimizer_steps() as seen:
        train(mlp(), small(digits, 64), {
            "epochs": 1, "optimizer": opt("adamw", lr=0.003, weight_decay=0.05,
                                          betas=(0.8, 0.99), eps=1e-6)})
    optimizer, _ = seen[0]
    assert type(optimizer) is torch.optim.AdamW
    (group,) = optimizer.param_groups
    assert group["lr"] == 0.003 and group["weight_decay"] == 0.05
    assert tuple(group["betas"]) == (0.8, 0.99) and group["eps"] == 1e-6


def test_bare_optimizer_symbol_uses_defaults(digits):
    model = mlp()
    with optimizer_steps() as seen:
        train(model, small(digits, 64), {"epochs": 1, "optimizer": Symbol("adamw")})
    optimizer, _ = seen[0]
    (group,) = optimizer.param_groups
    assert type(optimizer) is torch.optim.AdamW and group["lr"] == 1e-3
    assert {id(p) for p in group["params"]} == {id(p) for p in model.parameters()}


def test_sgd_momentum_and_nesterov_match_hand_written_updates(kan_fit):
    """Full-batch SGD with (Nesterov) momentum against the update rule written out."""
    lr, mu, wd = 0.05, 0.9, 0.01
    for nesterov in (False, True):
        torch.manual_seed(0)
        model = nn.Linear(2, 1)
        ref = copy.deepcopy(model)
        with optimizer_steps() as seen:
            train(model, kan_fit, {"epochs": 3, "batch": 10_000, "schedule": Symbol("constant"),
                                   "optimizer": opt("sgd", lr=lr, momentum=mu, weight_decay=wd,
                                                    nesterov=nesterov)})
        optimizer, _ = seen[0]
        assert type(optimizer) is torch.optim.SGD
        group = optimizer.param_groups[0]
        assert group["momentum"] == mu and group["nesterov"] is nesterov
        velocity = [torch.zeros_like(p) for p in ref.parameters()]
        for _ in range(3):
            loss = ((ref(kan_fit.x_train) - kan_fit.y_train) ** 2).mean()
            grads = torch.autograd.grad(loss, list(ref.parameters()))
            with torch.no_grad():
                for p, g, v in zip(ref.parameters(), grads, velocity, strict=True):
                    g = g + wd * p
                    v.mul_(mu).add_(g)
                    p.sub_(lr * (g + mu * v if nesterov else v))
        for p, q in zip(model.parameters(), ref.parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6)


def test_grad_clip_bounds_the_gradient_norm(kan_fit):
    norms = []

    def hook(optimizer, args, kwargs):
        grads = [p.grad for g in optimizer.param_groups for p in g["params"]]
        norms.append(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])).item())

    handle = register_optimizer_step_pre_hook(hook)
    try:
        train(mlp(2, 1, 16), small(kan_fit, 256), {"epochs": 1, "grad_clip": 0.01})
    finally:
        handle.remove()
    assert norms and max(norms) <= 0.01 * (1 + 1e-5)


def test_mup_parameter_groups(digits):
    """Per-parameter learning rates are lr times the muP multipliers of the init's table."""
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(),
                          nn.Linear(128, 10))
    torch.manual_seed(0)
    apply_init(model, SymbolCall("mup", (), (("base", 100),)))
    with optimizer_steps() as seen:
        train(model, small(digits, 64), {"epochs": 1, "schedule": Symbol("constant"),
                                         "optimizer": opt("adamw", lr=1e-3, weight_decay=0.1)})
    _, groups = seen[0]
    lr_of = {id(p): (lr, wd) for lr, wd, ps in groups for p in ps}
    # input layer (64 < base): 1; hidden and readout (fan_in 128 >= base): base / 128
    scale = {id(model[0].weight): 1.0, id(model[2].weight): 100 / 128,
             id(model[4].weight): 100 / 128}
    for p in model.parameters():
        s = scale.get(id(p), 1.0)  # biases: 1
        assert lr_of[id(p)][0] == pytest.approx(1e-3 * s)
        assert lr_of[id(p)][1] == pytest.approx(0.1 / s)
    assert len(groups) == 2


# ---- MoE auxiliary loss ------------------------------------------------------------------


class AuxOnly(nn.Module):
    """A frozen readout plus a parameter that only the auxiliary loss reaches."""

    def __init__(self) -> None:
        super().__init__()
        self.readout = nn.Linear(64, 10).requires_grad_(False)
        self.w = nn.Parameter(torch.tensor([1.0, -2.0, 3.0]))
        self.aux_loss = torch.zeros(())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.aux_loss = (self.w ** 2).sum()
        return self.readout(x)


def test_aux_loss_is_added_with_coefficient(digits):
    model = nn.Sequential(AuxOnly())
    w0 = model[0].w.detach().clone()
    train(model, small(digits, 64), {"epochs": 1, "schedule": Symbol("constant"),
                                     "optimizer": opt("sgd", lr=0.5)})
    # one step: d(0.01 * |w|^2)/dw = 0.02 w
    torch.testing.assert_close(model[0].w.detach(), w0 - 0.5 * 0.02 * w0)


def test_moe_block_gradient_includes_its_aux_loss(digits):
    from autoarch.backends.torch.mlp import MixtureOfExperts

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 16), MixtureOfExperts(16, 4, 1, 32, True),
                          nn.Linear(16, 10))
    ref = copy.deepcopy(model)
    data = small(digits, 128)
    train(model, data, {"epochs": 1, "batch": 128, "schedule": Symbol("constant"),
                        "optimizer": opt("sgd", lr=0.1)})
    loss = nn.functional.cross_entropy(ref(data.x_train), data.y_train) + 0.01 * ref[1].aux_loss
    grads = torch.autograd.grad(loss, list(ref.parameters()), allow_unused=True)
    with torch.no_grad():
        for p, g in zip(ref.parameters(), grads, strict=True):
            if g is not None:
                p -= 0.1 * g
    for p, q in zip(model.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6)
    assert grads[2] is not None and grads[2].abs().sum() > 0  # the router learns


# ---- failures --------------------------------------------------------------------------


def test_diverging_training_fails_with_the_step(kan_fit):
    with pytest.raises(TrainingFailed) as e:
        train(mlp(2, 1, 16), kan_fit, {"epochs": 2, "optimizer": opt("sgd", lr=1e6)})
    assert re.search(r"loss is (nan|inf) at epoch \d+, step \d+", e.value.reason)


class Infinite(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x) * float("inf")


def test_infinite_output_fails_at_the_first_step(kan_fit):
    with pytest.raises(TrainingFailed, match="loss is (nan|inf) at epoch 1, step 1"):
        train(Infinite(), kan_fit, {"epochs": 1})


class Prune(Exception):
    pass


def test_on_epoch_exceptions_propagate_unchanged(digits):
    calls = []
    error = Prune("stop")

    def on_epoch(e: EpochResult) -> None:
        calls.append(e.epoch)
        if e.epoch == 2:
            raise error

    with pytest.raises(Prune) as caught:
        train(mlp(), small(digits, 100), {"epochs": 5}, on_epoch=on_epoch)
    assert caught.value is error and calls == [1, 2]


# ---- user mistakes -------------------------------------------------------------------------


def test_wrong_input_shape_is_a_spec_error(digits):
    with pytest.raises(autoarch.SpecError, match=r"the model takes \[2\] but data set digits "
                                                 r"has inputs \[64\]"):
        train(mlp(2, 10), digits, {"epochs": 1})
    spec = autoarch.loads("model m(x: [2]) -> [10] {\n  return linear(x, 10)\n}\n", "t.spec")
    with pytest.raises(autoarch.SpecError, match=r"the model takes \[2\] but data set digits "
                                                 r"has inputs \[64\]") as e:
        train(autoarch.compile(spec, {}, seed=0), digits, {"epochs": 1})
    assert "x: [64]" in str(e.value)  # the hint


def test_declared_input_shape_is_checked_even_when_the_forward_would_run(digits):
    """flatten() of [8, 8] also accepts [64]: the declared shape catches the mismatch."""
    spec = autoarch.loads("model m(x: [8, 8]) -> [10] {\n  return linear(flatten(x), 10)\n}\n",
                          "t.spec")
    model = autoarch.compile(spec, {}, seed=0)
    assert model.autoarch_input_shape == (8, 8)  # what a compiled model declares
    with pytest.raises(autoarch.SpecError, match=r"the model takes \[8, 8\] but data set "
                                                 r"digits has inputs \[64\]"):
        train(model, digits, {"epochs": 1})


def test_wrong_output_shape_is_a_spec_error(digits):
    with pytest.raises(autoarch.SpecError, match=r"outputs \[5\] but data set digits needs "
                                                 r"\[10\] \(10 classes\)"):
        train(mlp(64, 5), digits, {"epochs": 1})


def test_loss_that_does_not_fit_the_task_is_a_spec_error(digits, kan_fit):
    with pytest.raises(autoarch.SpecError, match="cross_entropy needs classes"):
        train(mlp(2, 1), kan_fit, {"loss": Symbol("cross_entropy")})
    with pytest.raises(autoarch.SpecError, match="mse needs regression targets"):
        train(mlp(), digits, {"loss": Symbol("mse")})


def test_cuda_without_a_gpu_is_a_spec_error(digits):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(autoarch.SpecError, match="no CUDA GPU"):
        train(mlp(), digits, {"device": Symbol("cuda")})

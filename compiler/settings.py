"""The `train` and `search` blocks: their keys, defaults and allowed values.

Values are validated as they are evaluated; a value still unknown during space
analysis (a decision) is checked when a candidate is built. Each check receives
the value, its span, and what it is called in messages (``epochs``,
``adamw() setting 'lr'``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..dsl.errors import Span, SpecNameError, SpecTypeError, SpecValueError, suggest
from . import limits
from .arith import is_number, unknown_name
from .values import Abstract, Symbol, SymbolCall, type_name

#: the decision builtins: every one makes a decision where it is evaluated
DECISION_CALLS = ("choice", "int", "float", "optional")
#: calls that build a structured symbol, validated where they are used
SYMBOL_CALLS = (
    "normal", "mup", "nm",  # init and sparsity
    "adamw", "adam", "sgd",  # optimizers
    "csv", "npz", "synthetic",  # data
    "maximize", "minimize",  # objectives
)

#: bundled data sets (no download): digits, KAN-style function fitting, associative
#: recall, and small synthetic classification tasks; see docs/data.md
DATASETS = ("digits", "kan_fit", "recall", "spirals", "moons", "blobs", "xor", "parity")
OPTIMIZERS = {"adamw": ("lr", "weight_decay", "betas", "eps"),
              "adam": ("lr", "weight_decay", "betas", "eps"),
              "sgd": ("lr", "weight_decay", "momentum", "nesterov")}
LOSSES = ("auto", "cross_entropy", "mse")
SCHEDULES = ("cosine", "constant")
PRUNERS = ("none", "asha", "median", "hyperband")
#: how a one-shot supernet picks the paths of a step (``search/path_samplers.py``)
PATH_SAMPLERS = ("uniform", "fair", "pada")
#: costs known from the IR before training (``Graph.costs()``): what a `constraint` may name
COST_METRICS = ("params", "trainable_params", "flops", "memory")
CONSTRAINT_NAMES = COST_METRICS
#: measured after every epoch: what a pruner may watch
EPOCH_METRICS = ("val_accuracy", "val_loss", "train_loss", "train_accuracy")
#: everything an objective may name
METRICS = (*EPOCH_METRICS, *COST_METRICS, "train_time", "latency")

Check = Callable[[Any, Span, str], Any]


class _StrategyNames(Sequence[str]):
    """The names ``strategy = ...`` accepts: :data:`autoarch.search.strategies.NAMES`,
    one per module of ``search/strategies/`` (so a new strategy is one new module).

    Read on first use, not at import: parsing a spec loads no search code until a
    `strategy` is checked, and then only that package's ``__init__`` (no strategy
    module, no Optuna).
    """

    def _names(self) -> tuple[str, ...]:
        from ..search.strategies import NAMES

        return NAMES

    def __getitem__(self, index: Any) -> Any:
        return self._names()[index]

    def __len__(self) -> int:
        return len(self._names())

    def __repr__(self) -> str:
        return repr(self._names())


STRATEGIES: Sequence[str] = _StrategyNames()


@dataclass(frozen=True)
class Key:
    check: Check
    default: Any
    doc: str


def _show(v: Any) -> str:
    """A value as the spec would write it, for messages."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return f'"{v}"'
    return type_name(v)


def _not_symbol(v: Any, span: Span) -> None:
    """A bare name where a number or list is wanted is an unbound name, not a symbol."""
    if isinstance(v, Symbol):
        raise unknown_name(v, span)


def _int(lo: int, hi: int | None = None) -> Check:
    def check(v: Any, span: Span, what: str) -> Any:
        if isinstance(v, Abstract):
            return v
        _not_symbol(v, span)
        if isinstance(v, float) and v.is_integer() and abs(v) < 2**63:
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, int) or v < lo or (hi is not None
                                                                          and v > hi):
            bound = f">= {lo}" if hi is None else f"from {lo} to {hi:,}"
            shown = _show(v) if not isinstance(v, int) or abs(v) < 10**15 else "a huge number"
            raise SpecValueError(f"{what} must be an integer {bound}, got {shown}", span)
        return v

    return check


def _number(lo: float, hi: float | None = None, *, open_lo: bool = False) -> Check:
    def check(v: Any, span: Span, what: str) -> Any:
        if isinstance(v, Abstract):
            return v
        _not_symbol(v, span)
        if (not is_number(v) or (isinstance(v, float) and not math.isfinite(v)) or v < lo
                or (open_lo and v == lo)
                or (hi is not None and v >= hi)):
            rng = f"{'>' if open_lo else '>='} {lo:g}" + (f" and < {hi:g}" if hi is not None else "")
            raise SpecValueError(f"{what} must be a number {rng}, got {_show(v)}", span)
        return v

    return check


def _bool(v: Any, span: Span, what: str) -> Any:
    if isinstance(v, Abstract):
        return v
    _not_symbol(v, span)
    if not isinstance(v, bool):
        raise SpecTypeError(f"{what} must be true or false, got {_show(v)}", span)
    return v


def _betas(v: Any, span: Span, what: str) -> Any:
    if isinstance(v, Abstract):
        return v
    _not_symbol(v, span)
    if not (isinstance(v, tuple) and len(v) == 2 and all(
            isinstance(b, Abstract) or (is_number(b) and 0 <= b < 1) for b in v)):
        raise SpecValueError(f"{what} must be two numbers 0 <= b < 1, like [0.9, 0.999], "
                             f"got {_show(v)}", span)
    return v


def _symbol(options: Sequence[str], kind: str) -> Check:
    def check(v: Any, span: Span, what: str) -> Any:
        if isinstance(v, Abstract):
            return v
        if not isinstance(v, Symbol):
            raise SpecTypeError(f"{what} must be the name of a {kind}, got {_show(v)}", span,
                                hint="one of " + ", ".join(options))
        if v.name not in options:
            raise SpecNameError(f"unknown {kind} '{v.name}'", span,
                                hint=suggest(v.name, options, listing="expected one of"))
        return v

    return check


def _data(v: Any, span: Span, what: str) -> Any:
    """A bundled name, `csv(...)`, `npz(...)` or `synthetic(...)`.

    `synthetic` comes back with integral numbers as ints. Its limits keep a set
    below about 160 MB of float32 and give each class at least 10 rows, so that
    the stratified split puts every class in every split; docs/data.md lists them.
    """
    if not isinstance(v, SymbolCall):
        return _symbol(DATASETS, "data set")(v, span, what)
    if v.name not in ("csv", "npz", "synthetic"):
        raise SpecNameError(f"unknown data source '{v.name}(...)'", span,
                            hint='use digits, csv("file.csv", target = "label"), '
                                 'npz("file.npz"), synthetic(shape = [3, 32, 32], classes = 10) '
                                 "or another bundled set")
    if v.name != "synthetic":
        if not isinstance(v.get("path", 0), str):
            raise SpecTypeError(f"{v.name}() needs a file name string first", span)
        if v.name == "csv" and not isinstance(v.get("target", 1), str):
            raise SpecTypeError('csv() needs target = "column"', span)
        return v
    max_rows, max_classes, max_values, rows_per_class = 100_000, 1000, 40_000_000, 10
    like = "like synthetic(shape = [3, 32, 32], classes = 10)"
    if v.args:
        raise SpecTypeError(f"synthetic() takes keyword arguments, {like}", span)
    allowed = ("shape", "classes", "rows")
    for k, _ in v.kwargs:
        if k not in allowed:
            raise SpecNameError(f"synthetic() has no argument '{k}'", span,
                                hint=suggest(k, allowed, listing="it takes"))
    for k in ("shape", "classes"):
        if v.get(k) is None:
            raise SpecTypeError(f"synthetic() needs {k} = ..., {like}", span)
    shape, classes, rows = v.get("shape"), v.get("classes"), v.get("rows", default=1000)

    def whole(x: Any, lo: int, hi: int, name: str) -> Any:
        if isinstance(x, Abstract):
            return x
        _not_symbol(x, span)
        n = int(x) if isinstance(x, float) and x.is_integer() else x
        if isinstance(n, bool) or not isinstance(n, int) or not lo <= n <= hi:
            raise SpecValueError(f"synthetic() {name} must be an integer from {lo:,} to "
                                 f"{hi:,}, got {_show(x)}", span)
        return n

    if isinstance(shape, Abstract):
        return v
    _not_symbol(shape, span)
    if not isinstance(shape, tuple) or not 1 <= len(shape) <= 8:
        raise SpecTypeError(f"synthetic() shape must be a list of 1 to 8 sizes, like "
                            f"shape = [3, 32, 32], got {_show(shape)}", span)
    shape = tuple(whole(d, 1, max_values, "shape sizes") for d in shape)
    classes = whole(classes, 2, max_classes, "classes")
    rows = whole(rows, 10, max_rows, "rows")
    if any(isinstance(x, Abstract) for x in (*shape, classes, rows)):
        return v
    if rows < rows_per_class * classes:
        raise SpecValueError(f"synthetic() has {rows:,} rows for {classes} classes; each class "
                             f"needs at least {rows_per_class} rows for the three-way split",
                             span, hint=f"use rows = {rows_per_class * classes} or more, or "
                                        "fewer classes")
    size = 1
    for d in shape:
        size *= d
    if rows * size > max_values:
        raise SpecValueError(f"synthetic() would hold {rows:,} rows of {size:,} values "
                             f"({rows * size * 4 / 1e6:,.0f} MB of float32); at most "
                             f"{max_values:,} values are allowed", span,
                             hint="use fewer rows or a smaller shape")
    return SymbolCall("synthetic", (), (("shape", shape), ("classes", classes), ("rows", rows)))


#: how each optimizer setting is checked
_OPTIMIZER_SETTINGS: dict[str, Check] = {
    "lr": _number(0.0, open_lo=True),
    "weight_decay": _number(0.0),
    "eps": _number(0.0, open_lo=True),
    "momentum": _number(0.0, 1.0),
    "betas": _betas,
    "nesterov": _bool,
}


def _optimizer(v: Any, span: Span, what: str) -> Any:
    """`adamw`, or `adamw(lr = 1e-3, ...)`: a known optimizer with known, valid settings."""
    if isinstance(v, Abstract):
        return v
    if not isinstance(v, Symbol | SymbolCall):
        raise SpecTypeError(f"{what} must be an optimizer, like adamw(lr = 1e-3), "
                            f"got {_show(v)}", span, hint="one of " + ", ".join(OPTIMIZERS))
    if v.name not in OPTIMIZERS:
        raise SpecNameError(f"unknown optimizer '{v.name}'", span,
                            hint=suggest(v.name, OPTIMIZERS, listing="expected one of"))
    if isinstance(v, Symbol):
        return v
    allowed = OPTIMIZERS[v.name]
    if v.args:
        raise SpecTypeError(f"{v.name}() takes keyword arguments, like {v.name}(lr = 1e-3)",
                            span)
    for k, val in v.kwargs:
        if k not in allowed:
            raise SpecNameError(f"{v.name}() has no setting '{k}'", span,
                                hint=suggest(k, allowed, listing="it takes"))
        _OPTIMIZER_SETTINGS[k](val, span, f"{v.name}() setting '{k}'")
    return v


def _objective(v: Any, span: Span, what: str) -> Any:
    items = v if isinstance(v, tuple) else (v,)
    if not items:
        raise SpecValueError("objective needs at least one maximize(...) or minimize(...)", span)
    for it in items:
        if not (isinstance(it, SymbolCall) and it.name in ("maximize", "minimize")
                and len(it.args) == 1 and not it.kwargs):
            raise SpecTypeError("objective must be maximize(metric), minimize(metric), or a "
                                "list of them", span)
        metric = it.args[0]
        if not isinstance(metric, Symbol) or metric.name not in METRICS:
            name = metric.name if isinstance(metric, Symbol) else _show(metric)
            raise SpecNameError(f"unknown metric '{name}'", span,
                                hint=suggest(name, METRICS, listing="expected one of"))
    return v


TRAIN_KEYS: dict[str, Key] = {
    "data": Key(_data, Symbol("digits"), "data set"),
    "epochs": Key(_int(1, limits.MAX_EPOCHS), 10, "passes over the training data"),
    "batch": Key(_int(1, limits.MAX_BATCH), 64, "batch size"),
    "optimizer": Key(_optimizer, SymbolCall("adamw", (), (("lr", 1e-3),)), "optimizer"),
    "loss": Key(_symbol(LOSSES, "loss"), Symbol("auto"),
                "loss (auto: cross_entropy for classes, mse for regression)"),
    "schedule": Key(_symbol(SCHEDULES, "schedule"), Symbol("cosine"), "learning-rate schedule"),
    "seed": Key(_int(0, limits.MAX_SEED), 0, "random seed of training"),
    "val_split": Key(_number(0.0, 1.0, open_lo=True), 0.2, "fraction held out"),
    "grad_clip": Key(_number(0.0, open_lo=True), None, "gradient norm clip"),
    "device": Key(_symbol(("auto", "cpu", "cuda"), "device"), Symbol("auto"), "device"),
}

SEARCH_KEYS: dict[str, Key] = {
    "strategy": Key(_symbol(STRATEGIES, "strategy"), Symbol("random"), "search strategy"),
    "trials": Key(_int(1, limits.MAX_TRIALS), 20, "candidates to try"),
    "objective": Key(_objective, SymbolCall("maximize", (Symbol("val_accuracy"),)),
                     "what to optimise"),
    "seed": Key(_int(0, limits.MAX_SEED), 0, "random seed of the search"),
    "timeout": Key(_number(0.0, limits.MAX_TIMEOUT, open_lo=True), None, "seconds for the whole search"),
    "backend": Key(_symbol(("local", "ray"), "backend"), Symbol("local"), "executor"),
    "workers": Key(_int(1, limits.MAX_WORKERS), 1, "trials run at once"),
    "pruner": Key(_symbol(PRUNERS, "pruner"), Symbol("none"), "early stopping of trials"),
    # resources of one trial on Ray (fractions share a CPU or GPU between trials)
    "cpus_per_trial": Key(_number(0.0, limits.MAX_WORKERS, open_lo=True), 1.0,
                          "CPUs Ray reserves for a trial"),
    "gpus_per_trial": Key(_number(0.0, limits.MAX_WORKERS), 0.0, "GPUs Ray reserves for a trial"),
    # one-shot search (strategy = oneshot, docs/oneshot.md)
    "supernet_epochs": Key(_int(1, limits.MAX_EPOCHS), 10, "epochs of supernet training"),
    "path_sampler": Key(_symbol(PATH_SAMPLERS, "path sampler"), Symbol("uniform"),
                        "paths a supernet step trains"),
    "evaluate": Key(_int(1, limits.MAX_EVALUATE), 200, "candidates scored on the supernet"),
    "retrain": Key(_int(1, limits.MAX_TRIALS), 3, "best scored candidates trained alone"),
    "then": Key(_symbol(STRATEGIES, "strategy"), Symbol("evolution"),
                "strategy that proposes candidates to score on the supernet"),
    # regularized evolution (strategy = evolution, or then = evolution); other
    # strategies ignore them. None: sized to the trial budget (docs/strategies.md)
    "population": Key(_int(1, limits.MAX_TRIALS), None,
                      "evolution: recent finished trials that form the population"),
    "tournament": Key(_int(1, limits.MAX_TRIALS), None,
                      "evolution: population members drawn for each tournament"),
}


def check_setting(block: str, name: str, value: Any, span: Span, name_span: Span) -> Any:
    keys = TRAIN_KEYS if block == "train" else SEARCH_KEYS
    key = keys.get(name)
    if key is None:
        raise SpecNameError(f"unknown {block} setting '{name}'", name_span,
                            hint=suggest(name, keys, listing="expected one of"))
    return key.check(value, span, name)


def defaults(block: str) -> dict[str, Any]:
    keys = TRAIN_KEYS if block == "train" else SEARCH_KEYS
    return {k: key.default for k, key in keys.items()}

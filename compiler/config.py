"""The `train` and `search` blocks: their keys, defaults and allowed values.

Values are validated as they are evaluated; a value still unknown during space
analysis (a decision) is checked when a candidate is built.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..dsl.errors import Span, SpecNameError, SpecTypeError, SpecValueError, suggest
from .arith import is_number
from .values import Abstract, Symbol, SymbolCall, type_name

#: calls that build a structured symbol, validated where they are used
SYMBOL_CALLS = (
    "normal", "mup", "nm",  # init and sparsity
    "adamw", "adam", "sgd",  # optimizers
    "csv", "npz",  # data
    "maximize", "minimize",  # objectives
)

DATASETS = ("digits", "spirals", "moons", "blobs", "xor", "parity")
OPTIMIZERS = {"adamw": ("lr", "weight_decay", "betas", "eps"),
              "adam": ("lr", "weight_decay", "betas", "eps"),
              "sgd": ("lr", "weight_decay", "momentum", "nesterov")}
LOSSES = ("cross_entropy", "mse")
STRATEGIES = ("random", "grid", "tpe", "mcts", "evolution", "nsga2", "oneshot")
METRICS = ("val_accuracy", "val_loss", "train_loss", "train_accuracy", "params",
           "trainable_params", "flops", "memory", "train_time", "latency")
#: names a `constraint` may use: costs known from the IR before training
CONSTRAINT_NAMES = ("params", "trainable_params", "flops", "memory")


@dataclass(frozen=True)
class Key:
    check: Callable[[Any, Span], Any]
    default: Any
    doc: str


def _unknown(v: Any) -> bool:
    return isinstance(v, Abstract)


def _int(lo: int) -> Callable[[Any, Span], Any]:
    def check(v: Any, span: Span) -> Any:
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if _unknown(v):
            return v
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise SpecValueError(f"expected an integer >= {lo}, got {type_name(v)} {v!r}", span)
        return v

    return check


def _number(lo: float, hi: float | None = None, *, open_lo: bool = False) -> Callable:
    def check(v: Any, span: Span) -> Any:
        if _unknown(v):
            return v
        bad = not is_number(v) or v < lo or (open_lo and v == lo) or (hi is not None and v >= hi)
        if bad:
            rng = f"{'>' if open_lo else '>='} {lo}" + (f" and < {hi}" if hi is not None else "")
            raise SpecValueError(f"expected a number {rng}, got {v!r}", span)
        return v

    return check


def _symbol(options: tuple[str, ...], what: str) -> Callable[[Any, Span], Any]:
    def check(v: Any, span: Span) -> Any:
        if _unknown(v):
            return v
        if not isinstance(v, Symbol):
            raise SpecTypeError(f"expected a {what} name, got {type_name(v)}", span,
                                hint="one of " + ", ".join(options))
        if v.name not in options:
            raise SpecNameError(f"unknown {what} '{v.name}'", span,
                                hint=suggest(v.name, options, listing="expected one of"))
        return v

    return check


def _data(v: Any, span: Span) -> Any:
    if isinstance(v, SymbolCall):
        if v.name not in ("csv", "npz"):
            raise SpecNameError(f"unknown data source '{v.name}(...)'", span,
                                hint="use digits, csv(\"file.csv\", target = \"label\"), "
                                     "npz(\"file.npz\") or a synthetic task")
        path = v.get("path", 0)
        if not isinstance(path, str):
            raise SpecTypeError(f"{v.name}() needs a file name string first", span)
        if v.name == "csv" and not isinstance(v.get("target", 1), str):
            raise SpecTypeError('csv() needs target = "column"', span)
        return v
    return _symbol(DATASETS, "data set")(v, span)


def _optimizer(v: Any, span: Span) -> Any:
    if _unknown(v):
        return v
    name = v.name if isinstance(v, Symbol | SymbolCall) else None
    if name not in OPTIMIZERS:
        _symbol(tuple(OPTIMIZERS), "optimizer")(v if isinstance(v, Symbol) else Symbol(
            str(name)) if name else v, span)
    if isinstance(v, SymbolCall):
        if v.args:
            raise SpecTypeError(f"{name}() takes keyword arguments, like {name}(lr = 1e-3)",
                                span)
        for k, val in v.kwargs:
            if k not in OPTIMIZERS[name]:  # type: ignore[index]
                raise SpecNameError(f"{name}() has no setting '{k}'", span,
                                    hint=suggest(k, OPTIMIZERS[name]))  # type: ignore[index]
            if k in ("lr", "weight_decay", "eps", "momentum"):
                _number(0.0, open_lo=(k == "lr"))(val, span)
    return v


def _objective(v: Any, span: Span) -> Any:
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
            name = metric.name if isinstance(metric, Symbol) else str(metric)
            raise SpecNameError(f"unknown metric '{name}'", span,
                                hint=suggest(name, METRICS, listing="expected one of"))
    return v


TRAIN_KEYS: dict[str, Key] = {
    "data": Key(_data, Symbol("digits"), "data set"),
    "epochs": Key(_int(1), 10, "passes over the training data"),
    "batch": Key(_int(1), 64, "batch size"),
    "optimizer": Key(_optimizer, SymbolCall("adamw", (), (("lr", 1e-3),)), "optimizer"),
    "loss": Key(_symbol(LOSSES, "loss"), Symbol("cross_entropy"), "loss"),
    "seed": Key(_int(0), 0, "random seed of training"),
    "val_split": Key(_number(0.0, 1.0, open_lo=True), 0.2, "fraction held out"),
    "grad_clip": Key(_number(0.0, open_lo=True), None, "gradient norm clip"),
    "device": Key(_symbol(("auto", "cpu", "cuda"), "device"), Symbol("auto"), "device"),
}

SEARCH_KEYS: dict[str, Key] = {
    "strategy": Key(_symbol(STRATEGIES, "strategy"), Symbol("random"), "search strategy"),
    "trials": Key(_int(1), 20, "candidates to try"),
    "objective": Key(_objective, SymbolCall("maximize", (Symbol("val_accuracy"),)),
                     "what to optimise"),
    "seed": Key(_int(0), 0, "random seed of the search"),
    "timeout": Key(_number(0.0, open_lo=True), None, "seconds for the whole search"),
    "backend": Key(_symbol(("local", "ray"), "backend"), Symbol("local"), "executor"),
    "workers": Key(_int(1), 1, "trials run at once"),
}


def check_setting(block: str, name: str, value: Any, span: Span, name_span: Span) -> Any:
    keys = TRAIN_KEYS if block == "train" else SEARCH_KEYS
    key = keys.get(name)
    if key is None:
        raise SpecNameError(f"unknown {block} setting '{name}'", name_span,
                            hint=suggest(name, keys, listing="expected one of"))
    return key.check(value, span)


def defaults(block: str) -> dict[str, Any]:
    keys = TRAIN_KEYS if block == "train" else SEARCH_KEYS
    return {k: key.default for k, key in keys.items()}

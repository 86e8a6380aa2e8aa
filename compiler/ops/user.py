"""Ops users register from Python: ``@autoarch.op(shape=...)`` on an ``nn.Module`` class.

A user op is an :class:`OpSpec` like any other: a spec calls it by name, its
arguments are bound and checked as a built-in's are, and its rules give the node
its shape, parameters, FLOPs and ``sparse_weights``. The arguments come from the
class's ``__init__`` signature (an argument annotated :class:`Shape` is a tensor
input); the shape rule is the user's; parameters and FLOPs are the user's
formulas when given, else counted once per set of arguments on an instance built
on torch's ``meta`` device (docs/ops.md, "Your own ops"). Its lowering
(``backends/torch/user.py``) builds the class with the node's arguments.

Example:
    >>> @autoarch.op(shape=lambda x, out, **_: (*x[:-1], out))
    ... class GatedLinear(nn.Module):
    ...     def __init__(self, x: autoarch.Shape, out: int): ...

Torch is imported only when an op's costs are counted, so ``import autoarch`` stays light.
"""

from __future__ import annotations

import inspect
import math
import numbers
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ...dsl.parser import KEYWORDS
from ..plugins import PATH_MODULES, load_plugins
from ..settings import DECISION_CALLS, SYMBOL_CALLS
from .registry import PARAMETRIC_ARGS, REQUIRED, ArgSpec, OpCall, OpError, OpSpec, get, register

Rule = Callable[..., Any]


class Shape(tuple):  # type: ignore[type-arg]
    """The annotation of a user op's tensor input (``x: autoarch.Shape``).

    The constructor receives that input's shape, batch excluded, as a tuple of ints;
    ``forward`` receives the tensors in the order of these arguments.
    """

    __slots__ = ()


#: the lowering of every user op, set by ``backends/torch/user.py`` when torch loads
_lowering: Callable[..., Any] | None = None
#: op name -> its definition, for the user ops in the registry
_DEFINITIONS: dict[str, UserOp] = {}
#: most sets of arguments whose costs one op remembers
_COST_CACHE_SIZE = 16_384


def op(*, shape: Rule, params: Rule | None = None, flops: Rule | None = None,
       name: str | None = None, checks: Mapping[str, Callable[[Any], str | None]] | None = None,
       doc: str | None = None) -> Callable[[type], type]:
    """A class decorator registering an ``nn.Module`` class as an op specs can call.

    Args:
        shape: ``shape(**args) -> tuple``: the output shape (batch excluded), called
            with the op's own arguments by keyword, tensor inputs as shape tuples.
            Raising ``autoarch.OpError`` or ``ValueError`` makes the candidate invalid.
        params: ``params(**args) -> int``; absent: counted on a meta-device instance.
        flops: ``flops(**args) -> int`` for one example; absent: counted by
            ``FlopCounterMode`` running a meta-device instance on one example.
        name: the name a spec calls; default: the class name in snake_case.
        checks: ``{argument: fn}``, ``fn(value)`` returning an error message or None.
        doc: one line for ``autoarch ops``; default: the docstring's first line.

    The class is returned unchanged. Registering the same class again is a no-op.

    Example:
        >>> @autoarch.op(shape=lambda x, out, **_: (*x[:-1], out))
        ... class GatedLinear(nn.Module):
        ...     def __init__(self, x: autoarch.Shape, out: int, bias: bool = True): ...
    """
    if not callable(shape):
        raise TypeError("autoarch.op needs shape=, a function of the op's arguments that "
                        "returns its output shape, like shape=lambda x, out, **_: "
                        "(*x[:-1], out)")

    def register_class(cls: type) -> type:
        define(UserOp(cls, shape, params, flops, name, checks, doc))
        return cls

    return register_class


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


@dataclass(frozen=True)
class _Counts:
    params: int
    sparse: int
    flops: int | None


class UserOp:
    """A user op's definition: the class and its rules, with the signature read from
    ``__init__``. Picklable with cloudpickle (a Ray worker registers it again with
    :func:`ensure_registered`)."""

    def __init__(self, cls: type, shape: Rule, params: Rule | None = None,
                 flops: Rule | None = None, name: str | None = None,
                 checks: Mapping[str, Callable[[Any], str | None]] | None = None,
                 doc: str | None = None):
        if not isinstance(cls, type) or not callable(getattr(cls, "forward", None)):
            raise TypeError(f"autoarch.op decorates an nn.Module class, not {cls!r}")
        for what, rule in (("params", params), ("flops", flops)):
            if rule is not None and not callable(rule):
                raise TypeError(f"autoarch.op on {cls.__qualname__}: {what}= must be a "
                                f"function of the op's arguments, got {rule!r}")
        self.cls, self.shape_rule, self.params_rule, self.flops_rule = cls, shape, params, flops
        self.checks = dict(checks or {})
        self.name = name if name is not None else _snake(cls.__name__)
        self.doc = doc if doc is not None else _first_line(cls.__dict__.get("__doc__"))
        self.module: str = cls.__module__
        self.path = PATH_MODULES.get(self.module)
        self._check_name()
        self.args, self.tensors, self.lists = _signature(cls, self.checks)
        self.declared = tuple(a.name for a in self.args)
        self.common = tuple(a for a in PARAMETRIC_ARGS
                            if a.name != "bias" and a.name not in self.declared)
        self._costs: dict[tuple[Any, ...], _Counts] = {}
        self.spec = OpSpec(
            self.name, self.args, self._shape, params=self._params, flops=self._flops,
            sparse_weights=self._sparse, parametric=True, doc=self.doc, plugin=self.module,
            common_args=self.common, lower=_lowering)

    def __reduce__(self) -> tuple[Any, ...]:
        if self.path is not None:  # a worker cannot import it by name: load the file again
            return (_from_path, (self.path, self.name))
        return (UserOp, (self.cls, self.shape_rule, self.params_rule, self.flops_rule,
                         self.name, self.checks, self.doc))

    def __repr__(self) -> str:
        return f"<user op {self.name!r}: {self.module}.{self.cls.__qualname__}>"

    @property
    def where(self) -> str:
        """Where the op comes from: its module, and the file of a plugin given by path."""
        return f"{self.module} ({self.path})" if self.path else self.module

    def _check_name(self) -> None:
        what = f"autoarch.op on {self.cls.__qualname__}: the op name {self.name!r}"
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.name):
            raise ValueError(f"{what} is not a name a spec can call (letters, digits, _)")
        if self.name in KEYWORDS or self.name in DECISION_CALLS or self.name in SYMBOL_CALLS:
            raise ValueError(f"{what} is a word of the spec language; give name=")
        existing = get(self.name)
        if existing is not None and existing.plugin is None:
            raise ValueError(f"{what} is a built-in op; give another name=")

    # ---- arguments -------------------------------------------------------

    def kwargs(self, c: OpCall) -> dict[str, Any]:
        """The op's own arguments as its rules and constructor take them."""
        out = {}
        for n in self.declared:
            v = c.args[n]
            out[n] = list(v) if n in self.lists and v is not None else v
        return out

    def build(self, c: OpCall) -> Any:
        """An instance of the class for the call (on torch's current default device)."""
        return self.cls(**self.kwargs(c))

    # ---- rules -----------------------------------------------------------

    def _run(self, rule: str, fn: Rule, c: OpCall) -> Any:
        try:
            return fn(**self.kwargs(c))
        except OpError:
            raise
        except ValueError as e:  # the arguments do not fit: the candidate is invalid
            raise OpError(f"{self.name}: {e}") from None
        except Exception as e:  # a bug in the rule: say which, never a traceback
            raise self._failed(f"the {rule} rule", e) from None

    def _failed(self, what: str, e: BaseException) -> OpError:
        return OpError(f"{what} of op '{self.name}' ({self.module}.{self.cls.__qualname__}) "
                       f"failed: {type(e).__name__}: {e}", kind="error",
                       hint="a bug in the op's Python code, not in the spec")

    def _shape(self, c: OpCall) -> tuple[int, ...]:
        out = self._run("shape", self.shape_rule, c)
        try:
            shape = tuple(out)
        except TypeError:
            shape = None
        if shape is None or not all(_is_int(d) for d in shape):
            raise OpError(f"the shape rule of op '{self.name}' returned {out!r}, not a tuple "
                          "of ints (the output shape, batch excluded)", kind="error")
        return tuple(int(d) for d in shape)

    def _number(self, rule: str, fn: Rule, c: OpCall) -> int:
        v = self._run(rule, fn, c)
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if not _is_int(v) or v < 0:
            raise OpError(f"the {rule} rule of op '{self.name}' returned {v!r}, not a whole "
                          "number >= 0", kind="error")
        return int(v)

    def _params(self, c: OpCall) -> int:
        if self.params_rule is not None:
            return self._number("params", self.params_rule, c)
        return self.counts(c).params

    def _flops(self, c: OpCall) -> int:
        if self.flops_rule is not None:
            return self._number("flops", self.flops_rule, c)
        flops = self.counts(c, run=True).flops
        assert flops is not None
        return flops

    def _sparse(self, c: OpCall) -> int:
        if "sparsity" in self.declared:  # the op's own argument: no autoarch mask
            return 0
        return self.counts(c).sparse

    # ---- counting on an instance ----------------------------------------

    def counts(self, c: OpCall, *, run: bool = False) -> _Counts:
        """Parameters, masked weights and (with ``run``) FLOPs of the call's module,
        counted on an instance and remembered per set of arguments."""
        key = tuple(_hashable(c.args[n]) for n in self.declared)
        hit = self._costs.get(key)
        if hit is None or (run and hit.flops is None):
            if len(self._costs) >= _COST_CACHE_SIZE:
                self._costs.clear()
            hit = self._costs[key] = self._measure(c, run)
        return hit

    def _measure(self, c: OpCall, run: bool) -> _Counts:
        import torch

        kwargs = self.kwargs(c)
        shapes = [tuple(c.args[t]) for t in self.tensors]
        try:
            # meta: no memory, no init; a module or forward meta cannot run goes on CPU
            with torch.device("meta"):
                mod = self.cls(**kwargs)
            flops = self._count_flops(mod, shapes, c, "meta") if run else None
        except OpError:
            raise
        except ValueError as e:
            raise OpError(f"{self.name}: {e}") from None
        except Exception:
            with torch.random.fork_rng(devices=[]):  # the caller's random stream stays as is
                torch.manual_seed(0)
                mod = self._on_cpu(lambda: self.cls(**kwargs), "building the module")
                flops = self._count_flops(mod, shapes, c, "cpu") if run else None
        params = sum(p.numel() for p in mod.parameters())
        return _Counts(params, _masked_weights(mod), flops)

    def _on_cpu(self, fn: Callable[[], Any], what: str) -> Any:
        try:
            return fn()
        except OpError:
            raise
        except ValueError as e:
            raise OpError(f"{self.name}: {e}") from None
        except Exception as e:
            raise self._failed(what, e) from None

    def _count_flops(self, mod: Any, shapes: list[tuple[int, ...]], c: OpCall,
                     device: str) -> int:
        import torch
        from torch.utils.flop_counter import FlopCounterMode

        def forward() -> Any:
            xs = [torch.randn((1, *s), device=device) for s in shapes]
            with torch.no_grad(), FlopCounterMode(display=False) as counter:
                y = mod(*xs)
            return y, counter.get_total_flops()

        mod.eval()  # one example: a BatchNorm in training mode would refuse it
        y, flops = forward() if device == "meta" else self._on_cpu(forward, "running the module")
        want = c.out_shape
        if not isinstance(y, torch.Tensor):
            raise OpError(f"op '{self.name}': {self.cls.__qualname__}.forward returned "
                          f"{type(y).__name__}, not one tensor", kind="error")
        if want is not None and tuple(y.shape[1:]) != tuple(want):
            raise OpError(f"op '{self.name}': the module returns shape {list(y.shape[1:])} "
                          f"but the shape rule gives {list(want)}", kind="error",
                          hint="the shape rule and the module's forward disagree")
        return int(flops)


def _first_line(doc: str | None) -> str:
    lines = inspect.cleandoc(doc).splitlines() if doc else []
    return lines[0] if lines else ""


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _hashable(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


def _masked_weights(mod: Any) -> int:
    """Entries of the weight matrices ``apply_sparsity`` masks: as
    ``backends/torch/sparsity.weight_matrices`` finds them (linear and 2-d conv
    weights, and any parameter a module names in ``sparse_weight_names``)."""
    from torch import nn

    total = 0
    for m in mod.modules():
        if isinstance(m, nn.Linear | nn.Conv2d):
            total += m.weight.numel()
        total += sum(getattr(m, n).numel() for n in getattr(m, "sparse_weight_names", ()))
    return total


# ---- the signature ------------------------------------------------------

_TYPES = "autoarch.Shape (a tensor input), int, float, bool, Literal[...] or list[int]"


def _signature(cls: type, checks: Mapping[str, Callable[[Any], str | None]]
               ) -> tuple[tuple[ArgSpec, ...], tuple[str, ...], frozenset[str]]:
    """The op's arguments from ``cls.__init__``: (ArgSpecs, tensor inputs, list[int] ones)."""
    where = f"autoarch.op on {cls.__qualname__}"
    init = cls.__init__  # type: ignore[misc]
    try:
        params = list(inspect.signature(init).parameters.values())[1:]  # self
        hints = typing.get_type_hints(init)
    except Exception as e:
        raise TypeError(f"{where}: cannot read the annotations of __init__: "
                        f"{type(e).__name__}: {e}") from None
    args: list[ArgSpec] = []
    tensors: list[str] = []
    lists: set[str] = set()
    for p in params:
        said = f"{where}: parameter '{p.name}' of __init__"
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise TypeError(f"{said} is {'*' if p.kind is p.VAR_POSITIONAL else '**'}"
                            f"{p.name}; a user op's arguments are named, one by one")
        if p.kind is p.POSITIONAL_ONLY:
            raise TypeError(f"{said} is positional-only; autoarch passes arguments by name")
        if p.name in KEYWORDS:
            raise TypeError(f"{said} is a word of the spec language; rename it")
        if p.name not in hints:
            raise TypeError(f"{said} has no annotation; annotate it {_TYPES}")
        default = REQUIRED if p.default is p.empty else p.default
        a, is_list = _arg(said, p.name, hints[p.name], default, checks.get(p.name))
        if a.type == "tensor":
            tensors.append(a.name)
        if is_list:
            lists.add(a.name)
        args.append(a)
    if not tensors:
        raise TypeError(f"{where}: __init__ has no tensor input; annotate the input's "
                        "shape argument autoarch.Shape, as in (self, x: autoarch.Shape, ...)")
    unknown = set(checks) - {a.name for a in args if a.type != "tensor"}
    if unknown:
        raise ValueError(f"{where}: checks= names {sorted(unknown)[0]!r}, which is not an "
                         "argument of __init__ (other than a tensor input)")
    return tuple(args), tuple(tensors), frozenset(lists)


def _arg(said: str, name: str, ann: Any, default: Any,
         check: Callable[[Any], str | None] | None) -> tuple[ArgSpec, bool]:
    """The ArgSpec of one parameter, and whether the constructor takes it as a list."""
    origin, members = typing.get_origin(ann), typing.get_args(ann)
    optional = False
    if origin in (typing.Union, types.UnionType) and type(None) in members:
        rest = [m for m in members if m is not type(None)]
        if len(rest) != 1 or default is not None:
            raise TypeError(f"{said} is {_show(ann)}: an optional argument is `T | None = None`")
        ann, optional = rest[0], True
        origin, members = typing.get_origin(ann), typing.get_args(ann)
    is_list, symbols, allowed = False, (), None
    if ann is Shape:
        if default is not REQUIRED:
            raise TypeError(f"{said} is a tensor input; it cannot have a default")
        return ArgSpec(name, "tensor"), False
    if ann is bool:
        kind = "bool"
    elif ann is int:
        kind = "int"
    elif ann is float:
        kind = "float"
    elif origin is Literal and members and all(type(m) is str for m in members):
        kind, symbols = "symbol", tuple(members)
    elif origin is Literal and members and all(type(m) is int for m in members):
        kind, allowed = "int", tuple(members)
    elif (origin is list and members == (int,)) or (origin is tuple and members == (int, ...)):
        kind, is_list = "ints", origin is list
    else:
        raise TypeError(f"{said} is annotated {_show(ann)}, which autoarch cannot pass from "
                        f"a spec; annotate it {_TYPES}")
    if default is not REQUIRED and not (optional and default is None):
        default = _check_default(said, kind, default, symbols, allowed)
    return ArgSpec(name, kind, default, symbols=symbols, check=_checker(check, allowed),
                   doc="one of " + ", ".join(map(str, allowed)) if allowed else ""), is_list


def _check_default(said: str, kind: str, default: Any, symbols: tuple[str, ...],
                   allowed: tuple[int, ...] | None) -> Any:
    ok = {"bool": lambda v: isinstance(v, bool),
          "int": lambda v: _is_int(v) and (allowed is None or v in allowed),
          "float": lambda v: _is_int(v) or isinstance(v, float) and math.isfinite(v),
          "symbol": lambda v: v in symbols,
          "ints": lambda v: isinstance(v, list | tuple) and all(_is_int(x) for x in v)}[kind]
    if not ok(default):
        raise TypeError(f"{said} has the default {default!r}, which its annotation does "
                        "not allow")
    return tuple(default) if kind == "ints" else default


def _checker(check: Callable[[Any], str | None] | None,
             allowed: tuple[int, ...] | None) -> Callable[[Any], str | None] | None:
    if check is None and allowed is None:
        return None

    def checked(v: Any) -> str | None:
        if allowed is not None and v not in allowed:
            return f"must be one of {', '.join(map(str, allowed))}, got {v!r}"
        if check is None:
            return None
        try:
            msg = check(v)
        except Exception as e:  # a bug in the check: say so, at the argument
            return f"could not be checked: its check raised {type(e).__name__}: {e}"
        return None if msg is None else str(msg)

    return checked


def _show(ann: Any) -> str:
    return ann.__name__ if isinstance(ann, type) else repr(ann)


# ---- the registry of user ops --------------------------------------------


def define(d: UserOp) -> OpSpec:
    """Register ``d`` (what ``@autoarch.op`` does). The class registered under its name
    already is a no-op; the same class defined again (its module run again) replaces
    it; another class of the same name is an error."""
    from .registry import unregister

    existing = get(d.name)
    if existing is not None:
        old = _DEFINITIONS.get(d.name)
        if old is None or old.spec is not existing:
            raise ValueError(f"op {d.name!r} is already registered")
        if old.cls is d.cls:
            return existing
        if (old.cls.__module__, old.cls.__qualname__) != (d.cls.__module__, d.cls.__qualname__):
            raise ValueError(f"autoarch.op on {d.cls.__qualname__} ({d.module}): op "
                             f"{d.name!r} is already {old.cls.__qualname__} from {old.where}; "
                             "give one of them another name=")
        unregister(d.name)
    register(d.spec)
    _DEFINITIONS[d.name] = d
    return d.spec


def definition(name: str) -> UserOp:
    """The definition of the registered user op ``name``."""
    d = _DEFINITIONS.get(name)
    if d is None or get(name) is not d.spec:
        raise KeyError(f"{name!r} is not a registered user op")
    return d


def user_ops() -> list[UserOp]:
    """The user ops registered in this process, to hand to another (a Ray worker) and
    register there with :func:`ensure_registered`. Picklable with cloudpickle."""
    return [d for name, d in sorted(_DEFINITIONS.items()) if get(name) is d.spec]


def ensure_registered(defs: list[UserOp]) -> None:
    """Register those of ``defs`` not registered yet (the same class again is a no-op)."""
    for d in defs:
        define(d)


def set_lowering(fn: Callable[..., Any]) -> None:
    """The lowering of every user op, registered and to come (``backends/torch/user.py``)."""
    global _lowering
    _lowering = fn
    for d in _DEFINITIONS.values():
        d.spec.lower = fn


def _from_path(path: str, name: str) -> UserOp:
    """Unpickling a user op of a plugin file: load the file (once), then its op."""
    load_plugins(path)
    return definition(name)

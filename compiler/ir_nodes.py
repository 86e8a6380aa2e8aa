"""Op call sites: how a call binds its arguments, how each argument is checked, and
what a node of the candidate graph records.

A call site's binding is worked out once (a :class:`Plan`); an op application's
rules run once per distinct set of arguments and input shapes (a :class:`Template`,
cached by the elaborator); every node then records its template and where it
was made (a :class:`NodeRecord`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..dsl import ast
from ..dsl.errors import (
    Span,
    SpecError,
    SpecLimitError,
    SpecNameError,
    SpecTypeError,
    SpecValueError,
    suggest,
)
from . import arith, limits
from .ops.registry import INIT_CALLS, INITS, ArgSpec, OpSpec
from .values import Abstract, Symbol, SymbolCall, Tensor, type_name


@dataclass(slots=True, eq=False)
class Template:
    """An op application with its rules already run: what every node of it shares.

    Treat it as immutable; ``label`` only caches the hash's starting label of it.
    """

    op: str
    attrs: dict[str, Any]
    shape: tuple[int, ...]
    in_shapes: tuple[tuple[int, ...], ...]
    params: int
    trainable: int
    flops: int
    sparse: int
    label: bytes | None = None


class NodeRecord:
    """One node as elaboration records it: the shared template and where it was made.

    ``Graph`` turns records into networkx node attributes only when they are asked for.
    """

    __slots__ = ("t", "span", "scope", "name")

    def __init__(self, t: Template, span: Span, scope: str, name: str | None):
        self.t, self.span, self.scope, self.name = t, span, scope, name

    def attrs(self) -> dict[str, Any]:
        t = self.t
        return {"op": t.op, "attrs": t.attrs, "shape": t.shape, "in_shapes": t.in_shapes,
                "params": t.params, "trainable_params": t.trainable, "flops": t.flops,
                "sparse_weights": t.sparse, "span": self.span, "scope": self.scope,
                "name": self.name}


#: cache entry for an op application checked without building (light mode)
CHECKED: Any = object()


@dataclass(frozen=True, slots=True)
class Plan:
    """How one call site binds its arguments: worked out once, with its static checks."""

    exprs: tuple[ast.Expr, ...]
    names: tuple[str, ...]
    spans: tuple[Span, ...]
    rest: tuple[str, ...]  # arguments not given: from `with`, else their defaults

    @staticmethod
    def make(e: ast.Call, spec: OpSpec) -> Plan:
        pos = [a for a in e.args if a.kind == "pos"]
        if len(pos) > len(spec.args):
            raise SpecTypeError(f"{spec.name}() takes at most {len(spec.args)} positional "
                                f"argument(s), got {len(pos)}", pos[len(spec.args)].span)
        names = [a_spec.name for a_spec in spec.args[: len(pos)]]
        given = list(pos)
        for a in e.args:
            if a.kind == "kw":
                if a.name not in spec.by_name:
                    raise SpecNameError(f"{spec.name}() has no argument '{a.name}'", a.span,
                                        hint=suggest(a.name or "", spec.by_name,
                                                     listing="it takes"))
                if a.name in names:
                    raise SpecTypeError(f"argument '{a.name}' of {spec.name}() given twice",
                                        a.span)
                names.append(a.name)  # type: ignore[arg-type]
                given.append(a)
        rest = tuple(a.name for a in spec.args if a.name not in names)
        return Plan(tuple(a.value for a in given), tuple(names),
                     tuple(a.value.span for a in given), rest)


def dim(v: Any, span: Span) -> int:
    """A tensor dimension: a positive integer within ``limits.MAX_DIM``."""
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise SpecValueError(f"a dimension must be a positive integer, got {v!r}", span)
    if v > limits.MAX_DIM:
        raise SpecLimitError(f"dimension {v:,} exceeds the limit {limits.MAX_DIM:,}", span)
    return v


def convert(spec: OpSpec, a: ArgSpec, v: Any, span: Span,
            unknown: Callable[[Symbol, Span], SpecError]) -> Any:
    """Check an argument against its ArgSpec and bring it to the form the rules take.

    ``unknown`` makes the error for an unbound name (it knows the names in scope).
    """
    t = a.type
    if type(v) is Abstract:
        if t == "tensor" and v.tensor is False:
            raise SpecTypeError(f"argument '{a.name}' of {spec.name}() must be a tensor",
                                span)
        return v
    if v is None and a.default is None:
        return None
    if t == "tensor":
        if type(v) is Symbol:
            raise unknown(v, span)
        if type(v) is not Tensor:
            _wrong(spec, a, v, span, "a tensor")
        return v
    if type(v) is Symbol and t == "sparsity":
        raise SpecNameError(f"unknown sparsity '{v.name}'", span,
                            hint="sparsity is a fraction 0 <= s < 1, or nm(n, m) like "
                                 "nm(2, 4)")
    if type(v) is Symbol and t not in ("symbol", "init"):
        raise unknown(v, span)
    if t == "int":
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, int):
            _wrong(spec, a, v, span, "an integer")
    elif t == "float":
        if not arith.is_number(v):
            _wrong(spec, a, v, span, "a number")
    elif t == "bool":
        if not isinstance(v, bool):
            _wrong(spec, a, v, span, "true or false")
    elif t == "symbol":
        if type(v) is str and v in a.symbols:  # a default, or a string literal
            return v
        if type(v) is not Symbol or v.name not in a.symbols:
            name = v.name if type(v) is Symbol else None
            raise SpecNameError(
                f"unknown {a.name} '{name}' for {spec.name}()" if name else
                f"argument '{a.name}' of {spec.name}() must be one of "
                f"{', '.join(a.symbols)}, got {type_name(v)}", span,
                hint=suggest(name or "", a.symbols, listing="expected one of"))
        v = v.name
    elif t == "ints":
        if not isinstance(v, tuple):
            _wrong(spec, a, v, span, "a list of integers like [8, 8]")
        v = tuple(_dim_or_minus(x, span) for x in v)
    elif t == "init":
        v = init_value(v, span)
    elif t == "sparsity":
        v = sparsity_value(v, span)
    if a.check is not None:
        msg = a.check(v)
        if msg is not None:
            raise SpecValueError(f"argument '{a.name}' of {spec.name}() {msg}", span)
    return v

def _dim_or_minus(x: Any, span: Span) -> Any:
    if type(x) is Abstract or x == -1:
        return x
    return dim(x, span)

def _wrong(spec: OpSpec, a: ArgSpec, v: Any, span: Span, want: str) -> None:
    raise SpecTypeError(f"argument '{a.name}' of {spec.name}() must be {want}, "
                        f"got {type_name(v)}", span)

def init_value(v: Any, span: Span) -> Any:
    if type(v) is Symbol and v.name in INITS:
        return v.name
    if type(v) is SymbolCall and v.name in INIT_CALLS:
        if v.name == "normal":
            std = v.get("std", 0)
            if len(v.args) + len(v.kwargs) != 1 or not (
                    type(std) is Abstract or (arith.is_number(std) and std > 0)):
                raise SpecValueError("normal(std) needs one positive std", span)
        else:
            base = v.get("base", 0)
            if len(v.args) + len(v.kwargs) != 1 or not (
                    type(base) is Abstract or (isinstance(base, int)
                                               and not isinstance(base, bool) and base > 0)):
                raise SpecValueError("mup(base = w) needs one positive integer base width",
                                     span)
        return v
    name = v.name if isinstance(v, Symbol | SymbolCall) else str(v)
    raise SpecNameError(f"unknown init '{name}'", span,
                        hint=suggest(name, INITS + tuple(f"{c}(...)" for c in INIT_CALLS),
                                     listing="expected one of"))

def sparsity_value(v: Any, span: Span) -> Any:
    if type(v) is SymbolCall and v.name == "nm":
        n, m = v.get("n", 0), v.get("m", 1)
        ok = (len(v.args) + len(v.kwargs) == 2 and all(
            isinstance(x, int) and not isinstance(x, bool) for x in (n, m))
            and 1 <= n <= m)
        if not ok:
            raise SpecValueError("nm(n, m) keeps n of every m weights: needs integers "
                                 "1 <= n <= m", span)
        return v
    if not arith.is_number(v) or not 0 <= v < 1:
        got = repr(v) if arith.is_number(v) else type_name(v)
        raise SpecValueError(f"sparsity must be a fraction 0 <= s < 1 or nm(n, m), "
                             f"got {got}", span)
    return v

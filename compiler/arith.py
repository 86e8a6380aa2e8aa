"""Arithmetic, comparison and truth on concrete values, with located errors.

The elaborator handles tensors and unknown values itself and hands everything
else to these functions, so constant folding and evaluation agree exactly.
"""

from __future__ import annotations

import math
import operator
from typing import Any

from ..dsl.errors import Span, SpecNameError, SpecTypeError, SpecValueError
from .limits import MAX_INT_BITS
from .values import Symbol, type_name

_NUMERIC = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
    "//": operator.floordiv, "%": operator.mod, "**": operator.pow,
}
_COMPARE = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
    ">": operator.gt, ">=": operator.ge,
}


def is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def unknown_name(sym: Symbol | str, span: Span,
                 known: list[str] | None = None) -> SpecNameError:
    """The one "unknown name" error: a bare name that is bound nowhere it is used.

    With ``known`` (the names bound there), the hint names the closest ones, or
    lists what is bound.
    """
    from ..dsl.errors import closest

    name = sym if isinstance(sym, str) else sym.name
    hint = None
    if known is not None:
        near = closest(name, known)
        if near:
            hint = "did you mean " + " or ".join(f"'{n}'" for n in near) + "?"
        elif known:
            shown = sorted(known)
            hint = "names bound here: " + ", ".join(shown[:12]) + (", ..." if len(shown) > 12
                                                                  else "")
        else:
            hint = "no names are bound here"
    return SpecNameError(f"unknown name '{name}'", span, hint=hint)


def binop(op: str, a: Any, b: Any, span: Span) -> Any:
    if is_number(a) and is_number(b):
        if op in ("/", "//", "%") and b == 0:
            raise SpecValueError("division by zero", span)
        if op == "**":
            if a == 0 and b < 0:
                raise SpecValueError("zero to a negative power", span)
            if isinstance(a, int) and isinstance(b, int) and b > 0 and a not in (0, 1, -1):
                if b * max(abs(a), 2).bit_length() > MAX_INT_BITS:
                    raise SpecValueError(f"{a} ** {b} is too large", span)
        try:
            out = _NUMERIC[op](a, b)
        except OverflowError:
            raise SpecValueError("number too large", span) from None
        if isinstance(out, complex):
            raise SpecValueError("a negative number to a fractional power", span)
        if isinstance(out, float) and not math.isfinite(out):
            raise SpecValueError("number too large", span)
        if isinstance(out, int) and out.bit_length() > MAX_INT_BITS:
            raise SpecValueError("number too large", span)
        return out
    if op == "+" and isinstance(a, str) and isinstance(b, str):
        return a + b
    if op == "+" and isinstance(a, tuple) and isinstance(b, tuple):
        return a + b
    for v in (a, b):
        if isinstance(v, Symbol):
            raise unknown_name(v, span)
    raise SpecTypeError(f"cannot apply '{op}' to {type_name(a)} and {type_name(b)}", span)


def unary(op: str, v: Any, span: Span) -> Any:
    if op == "not":
        return not truth(v, span)
    if is_number(v):
        return -v if op == "-" else v
    if isinstance(v, Symbol):
        raise unknown_name(v, span)
    raise SpecTypeError(f"cannot apply unary '{op}' to {type_name(v)}", span)


def compare(op: str, a: Any, b: Any, span: Span) -> bool:
    if op in ("==", "!="):
        same = type(a) is type(b) or (is_number(a) and is_number(b))
        return (a == b if same else False) if op == "==" else (a != b if same else True)
    if (is_number(a) and is_number(b)) or (isinstance(a, str) and isinstance(b, str)):
        return _COMPARE[op](a, b)
    for v in (a, b):
        if isinstance(v, Symbol):
            raise unknown_name(v, span)
    raise SpecTypeError(f"cannot compare {type_name(a)} {op} {type_name(b)}", span)


def truth(v: Any, span: Span) -> bool:
    if isinstance(v, bool):
        return v
    if is_number(v):
        return v != 0
    if isinstance(v, Symbol):
        raise unknown_name(v, span)
    raise SpecTypeError(f"expected a condition (bool), got {type_name(v)}", span)

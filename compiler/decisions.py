"""Decisions: the only source of search. One :class:`Decision` per place a choice is made."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from ..dsl import ast
from ..dsl.errors import (
    AssignmentError,
    Span,
    SpecLimitError,
    SpecTypeError,
    SpecValueError,
    suggest,
)
from . import arith, limits
from .checks import NotConstant, Program, const_value

Kind = Literal["categorical", "int", "float"]


@dataclass(frozen=True)
class Condition:
    """One atom of a decision's existence condition: ``name == value`` or ``name >= value``."""

    name: str
    op: Literal["==", ">="]
    value: Any

    def __str__(self) -> str:
        return f"{self.name} {self.op} {self.value!r}"

    def holds(self, assignment: dict[str, Any]) -> bool:
        if self.name not in assignment:
            return False
        v = assignment[self.name]
        return v == self.value if self.op == "==" else v >= self.value


@dataclass(frozen=True)
class Decision:
    """A named decision with its domain.

    ``choices`` are the labels of a categorical decision's alternatives; ``low``,
    ``high``, ``step`` and ``log`` describe an int or float range (``high``
    included). ``conditions`` is filled in by space analysis: the decision exists
    when any one of its clauses holds (each a conjunction of :class:`Condition`);
    ``((),)`` means always.
    """

    name: str
    kind: Kind
    choices: tuple[Any, ...] = ()
    low: int | float | None = None
    high: int | float | None = None
    step: int | float | None = None
    log: bool = False
    span: Span | None = field(default=None, compare=False)
    conditions: tuple[tuple[Condition, ...], ...] = ((),)
    #: (type, label) -> position of a categorical decision's alternative
    index: dict[tuple[type, Any], int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # keyed by type too: `true` and `1` are different alternatives
        object.__setattr__(self, "index", {(type(c), c): i for i, c in enumerate(self.choices)})

    @property
    def continuous(self) -> bool:
        return self.kind == "float" and self.step is None

    def size(self) -> int | None:
        """Number of values; None for a continuous range."""
        if self.kind == "categorical":
            return len(self.choices)
        if self.continuous:
            return None
        return int(math.floor((self.high - self.low) / self.step + 1e-9)) + 1  # type: ignore[operator]

    def values(self) -> list[Any]:
        """Every value, in order (not for continuous ranges)."""
        if self.kind == "categorical":
            return list(self.choices)
        n = self.size()
        if n is None:
            raise ValueError(f"decision {self.name} is continuous")
        if self.kind == "int":
            return [self.low + i * self.step for i in range(n)]  # type: ignore[operator]
        return [_clean(self.low + i * self.step) for i in range(n)]  # type: ignore[operator]

    def contains(self, v: Any) -> bool:
        if self.kind == "categorical":
            try:
                return (type(v), v) in self.index
            except TypeError:  # unhashable
                return False
        if isinstance(v, bool) or not isinstance(v, int | float):
            return False
        if self.kind == "int" and not isinstance(v, int):
            return False
        if not self.low <= v <= self.high:  # type: ignore[operator]
            return False
        if self.step is not None and self.kind == "int":
            return (v - self.low) % self.step == 0  # type: ignore[operator]
        return True

    def coerce(self, v: Any) -> Any:
        """Accept a value for this decision, also from its text (command-line flags)."""
        if self.contains(v):
            return v
        if isinstance(v, str):
            if self.kind == "categorical":
                for c in self.choices:
                    if _text(c) == v:
                        return c
            else:
                try:
                    num = int(v) if self.kind == "int" else float(v)
                except ValueError:
                    num = None
                if num is not None and self.contains(num):
                    return num
        if self.kind == "categorical" and isinstance(v, int | float) and not isinstance(v, bool):
            for c in self.choices:  # 1 for 1.0 and the like
                if isinstance(c, int | float) and not isinstance(c, bool) and c == v:
                    return c
        raise AssignmentError(f"{v!r} is not a value of decision {self.name} "
                              f"({self.describe_domain()})", self.span,
                              hint=suggest(str(v), [_text(c) for c in self.choices])
                              if self.kind == "categorical" else None)

    def describe_domain(self) -> str:
        if self.kind == "categorical":
            return "one of " + ", ".join(_text(c) for c in self.choices)
        rng = f"{self.kind} in [{self.low}, {self.high}]"
        if self.step not in (None, 1):
            rng += f" step {self.step}"
        return rng + (" log" if self.log else "")

    def domain_json(self) -> Any:
        if self.kind == "categorical":
            return list(self.choices)
        return {"low": self.low, "high": self.high, "step": self.step, "log": self.log}

    def describe_condition(self) -> str:
        if self.conditions == ((),):
            return "always"
        clauses = [" and ".join(str(a) for a in c) for c in self.conditions]
        if len(clauses) == 1:
            return clauses[0]
        return " or ".join(f"({c})" for c in clauses)

    def exists_under(self, assignment: dict[str, Any]) -> bool:
        return any(all(a.holds(assignment) for a in clause) for clause in self.conditions)


def _text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _clean(x: float) -> float:
    return float(f"{x:.12g}")


def make_decision(prog: Program, e: ast.Call, name: str) -> Decision:
    """The decision a `choice`/`optional`/`int`/`float` call makes, named ``name``."""
    f = e.func
    if f == "choice":
        return Decision(name, "categorical", tuple(prog.labels[id(e)]), span=e.span)
    if f == "optional":
        return Decision(name, "categorical", (True, False), span=e.span)
    pos = [a.value for a in e.args if a.kind == "pos"]
    kw = {a.name: a.value for a in e.args if a.kind == "kw"}

    def const(x: ast.Expr) -> Any:
        try:
            return const_value(x, prog.constants)
        except NotConstant:
            raise SpecValueError(f"the arguments of {f}() must be constants (numbers or "
                                 "top-level `let` constants)", x.span) from None

    lo, hi = const(pos[0]), const(pos[1])
    log = const(kw["log"]) if "log" in kw else False
    step = const(kw["step"]) if "step" in kw else None
    if not isinstance(log, bool):
        raise SpecTypeError(f"log must be true or false, got {log!r}", kw["log"].span)
    if f == "int":
        for v, x in ((lo, pos[0]), (hi, pos[1])):
            if isinstance(v, bool) or not isinstance(v, int):
                raise SpecTypeError(f"int() bounds must be integers, got {v!r}", x.span)
        step = 1 if step is None else step
        if isinstance(step, bool) or not isinstance(step, int) or step < 1:
            raise SpecValueError(f"int() step must be a positive integer, got {step!r}",
                                 kw["step"].span)
        if log and (lo < 1 or step != 1):
            raise SpecValueError("int(..., log = true) needs low >= 1 and no step", e.span)
        hi = lo + (hi - lo) // step * step if hi >= lo else hi
    else:
        for v, x in ((lo, pos[0]), (hi, pos[1])):
            if not arith.is_number(v):
                raise SpecTypeError(f"float() bounds must be numbers, got {v!r}", x.span)
        lo, hi = float(lo), float(hi)
        if step is not None and (not arith.is_number(step) or step <= 0 or log):
            raise SpecValueError("float() step must be a positive number (and not with log)",
                                 kw["step"].span)
        if step is not None and hi >= lo:
            n = (hi - lo) / step + 1  # inf when the range is wide and the step fine
            if not n <= limits.MAX_STEPPED_VALUES:
                shown = f"{n:,.0f}" if math.isfinite(n) else "too many"
                raise SpecLimitError(f"float({lo:g}, {hi:g}, step = {step:g}) has {shown} "
                                     f"values; the limit is {limits.MAX_STEPPED_VALUES:,}",
                                     e.span, hint="use a coarser step, or no step")
        if log and lo <= 0:
            raise SpecValueError(f"float(..., log = true) needs low > 0, got {lo}", pos[0].span)
    if hi < lo:
        raise SpecValueError(f"{f}({lo}, {hi}) is an empty range: low is above high", e.span,
                             hint=f"did you mean {f}({hi}, {lo})?")
    return Decision(name, f, low=lo, high=hi, step=step, log=log, span=e.span)  # type: ignore[arg-type]

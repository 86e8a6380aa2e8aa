"""The typed AST: frozen dataclasses, one per grammar rule, each with its source span.

Nodes compare by identity (``eq=False``) so that analyses can key tables by node.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .errors import Span


@dataclass(frozen=True, slots=True, eq=False)
class Node:
    span: Span


# ---- expressions ----------------------------------------------------------


class Expr(Node):
    __slots__ = ()


@dataclass(frozen=True, slots=True, eq=False)
class Number(Expr):
    value: int | float


@dataclass(frozen=True, slots=True, eq=False)
class String(Expr):
    value: str


@dataclass(frozen=True, slots=True, eq=False)
class Bool(Expr):
    value: bool


@dataclass(frozen=True, slots=True, eq=False)
class Name(Expr):
    id: str


@dataclass(frozen=True, slots=True, eq=False)
class ListExpr(Expr):
    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True, eq=False)
class Arg(Node):
    kind: Literal["pos", "kw", "label"]
    name: str | None
    value: Expr


@dataclass(frozen=True, slots=True, eq=False)
class Call(Expr):
    func: str
    func_span: Span
    args: tuple[Arg, ...]

    @property
    def positional(self) -> tuple[Arg, ...]:
        return tuple(a for a in self.args if a.kind == "pos")

    @property
    def keywords(self) -> tuple[Arg, ...]:
        return tuple(a for a in self.args if a.kind == "kw")


@dataclass(frozen=True, slots=True, eq=False)
class BinOp(Expr):
    op: str  # + - * / // % ** and or
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True, eq=False)
class UnaryOp(Expr):
    op: str  # - + not
    operand: Expr


@dataclass(frozen=True, slots=True, eq=False)
class Compare(Expr):
    ops: tuple[str, ...]
    operands: tuple[Expr, ...]


@dataclass(frozen=True, slots=True, eq=False)
class IfExp(Expr):
    body: Expr
    test: Expr
    orelse: Expr


# ---- statements -----------------------------------------------------------


class Stmt(Node):
    __slots__ = ()


@dataclass(frozen=True, slots=True, eq=False)
class Let(Stmt):
    name: str
    name_span: Span
    value: Expr


@dataclass(frozen=True, slots=True, eq=False)
class Assign(Stmt):
    name: str
    name_span: Span
    value: Expr


@dataclass(frozen=True, slots=True, eq=False)
class Repeat(Stmt):
    count: Expr
    var: str | None
    body: tuple[Stmt, ...]


@dataclass(frozen=True, slots=True, eq=False)
class Binding(Node):
    name: str
    value: Expr


@dataclass(frozen=True, slots=True, eq=False)
class With(Stmt):
    bindings: tuple[Binding, ...]
    body: tuple[Stmt, ...]


@dataclass(frozen=True, slots=True, eq=False)
class Require(Stmt):
    cond: Expr
    message: str | None


@dataclass(frozen=True, slots=True, eq=False)
class Return(Stmt):
    value: Expr


# ---- top level ------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class Param(Node):
    name: str
    default: Expr | None


@dataclass(frozen=True, slots=True, eq=False)
class Def(Node):
    name: str
    params: tuple[Param, ...]
    body: tuple[Stmt, ...] | None  # a block body ...
    expr: Expr | None  # ... or `= expr`


@dataclass(frozen=True, slots=True, eq=False)
class Model(Node):
    name: str
    input_name: str
    input_shape: tuple[Expr, ...]
    output_shape: tuple[Expr, ...]
    body: tuple[Stmt, ...]


@dataclass(frozen=True, slots=True, eq=False)
class Setting(Node):
    name: str
    value: Expr


@dataclass(frozen=True, slots=True, eq=False)
class Train(Node):
    settings: tuple[Setting, ...]


@dataclass(frozen=True, slots=True, eq=False)
class Constraint(Node):
    expr: Expr


@dataclass(frozen=True, slots=True, eq=False)
class Search(Node):
    settings: tuple[Setting, ...]
    constraints: tuple[Constraint, ...]


@dataclass(frozen=True, slots=True, eq=False)
class Module(Node):
    """A whole parsed file."""

    items: tuple[Let | Def | Model | Train | Search, ...]
    source: str
    filename: str


def children(e: Expr) -> tuple[Expr, ...]:
    """The subexpressions of ``e``."""
    if isinstance(e, BinOp):
        return (e.left, e.right)
    if isinstance(e, UnaryOp):
        return (e.operand,)
    if isinstance(e, Compare):
        return e.operands
    if isinstance(e, IfExp):
        return (e.test, e.body, e.orelse)
    if isinstance(e, ListExpr):
        return e.items
    if isinstance(e, Call):
        return tuple(a.value for a in e.args)
    return ()

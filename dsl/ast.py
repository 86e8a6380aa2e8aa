"""The typed AST: frozen dataclasses, one per grammar rule, each with its source span.

Nodes compare by identity (``eq=False``) so that analyses can key tables by node.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, get_args, get_origin, get_type_hints

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


# ---- walking ----------------------------------------------------------------
#
# Children come from the dataclass fields, so a new node class needs no change
# here: a field holds children if its annotation names a Node class (alone, in a
# union or in a tuple). Fields are declared in source order, so children are too.
# That is not evaluation order: ``a if c else b`` is IfExp(body=a, test=c,
# orelse=b), and elaboration evaluates the test first. A pass whose result depends
# on the order of an IfExp's parts overrides ``visit_IfExp``.

#: per node class: (field name, whether it holds a tuple) for the fields that hold nodes
_CHILD_FIELDS: dict[type, tuple[tuple[str, bool], ...]] = {}


def _holds_node(tp: Any) -> bool:
    if isinstance(tp, type):
        return issubclass(tp, Node)
    return any(_holds_node(a) for a in get_args(tp))


def _holds_tuple(tp: Any) -> bool:
    return tp is tuple or get_origin(tp) is tuple or any(_holds_tuple(a) for a in get_args(tp))


def _child_fields(cls: type) -> tuple[tuple[str, bool], ...]:
    try:
        hints = get_type_hints(cls)
    except (NameError, TypeError):  # annotations that do not resolve: look at the values
        hints = {}
    fields = []
    for f in dataclasses.fields(cls):
        if f.name == "span":
            continue
        if f.name not in hints:
            fields.append((f.name, True))  # a tuple or a node: children() tells them apart
        elif _holds_node(hints[f.name]):
            fields.append((f.name, _holds_tuple(hints[f.name])))
    _CHILD_FIELDS[cls] = out = tuple(fields)
    return out


def children(node: Node) -> tuple[Node, ...]:
    """The direct children of ``node``, statements and expressions, in source order.

    For ``h + f(h, k = 2)``: ``children(plus) == (name_h, call)`` and
    ``children(call) == (arg_h, arg_k)``, each Arg holding its value.
    """
    fields = _CHILD_FIELDS.get(type(node))
    if fields is None:
        fields = _child_fields(type(node))
    if not fields:
        return ()
    out: list[Node] = []
    for name, many in fields:
        v = getattr(node, name)
        if many and type(v) is tuple:
            out.extend(x for x in v if isinstance(x, Node))
        elif v is not None:
            out.append(v)
    return tuple(out)


def walk(node: Node) -> Iterator[Node]:
    """``node`` and every node under it, depth first, each parent before its children,
    in source order. Iterative: any depth of nesting is fine."""
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(reversed(children(n)))


class Visitor:
    """Calls ``visit_<ClassName>`` for each node visited; ``generic_visit`` otherwise.

    The method is looked up along the node class's bases, so ``visit_Stmt`` or
    ``visit_Expr`` catches the statements or expressions with no method of their
    own. Extra arguments to ``visit`` are passed to the method (and by
    ``generic_visit`` to the children); ``visit`` returns what the method returns.
    The method for each node class is found once per Visitor class, so a dispatch
    costs one dict lookup. Nothing is visited unless a method asks for it:
    ``generic_visit`` visits the children, a ``visit_X`` that does not call it
    stops there.

        class CountCalls(Visitor):
            def __init__(self):
                self.n = 0

            def visit_Call(self, node: Call) -> None:
                self.n += 1
                self.generic_visit(node)
    """

    _methods: ClassVar[dict[type, Callable[..., Any]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._methods = {}  # each Visitor class resolves its own methods

    def visit(self, node: Node, *args: Any) -> Any:
        method = self._methods.get(type(node))
        if method is None:
            method = self._method_for(type(node))
        return method(self, node, *args)

    def generic_visit(self, node: Node, *args: Any) -> Any:
        for child in children(node):
            self.visit(child, *args)
        return None

    @classmethod
    def _method_for(cls, node_cls: type) -> Callable[..., Any]:
        method = cls.generic_visit
        for klass in node_cls.__mro__:
            found = getattr(cls, f"visit_{klass.__name__}", None)
            if found is not None:
                method = found
                break
        cls._methods[node_cls] = method
        return method

"""The AST walker: children, walk and Visitor, against references written independently.

The expected counts and names below are read off the spec text by hand; the
brute-force traversal is written here over ``dataclasses.fields``, knowing
nothing of the walker's field cache.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

import pytest

from autoarch.dsl import ast
from autoarch.dsl.errors import Span
from autoarch.dsl.parser import parse

SPEC = """\
def block(x, k = 2) = linear(gelu(x), 8 * k)
model m(x: [8]) -> [4] {
  let width = choice(8, 16)
  h = linear(x, width)
  repeat int(1, 3) as i {
    h = h + choice(a: block(h), b: block(h, k = 4)) if i > 0 else h
  }
  with init = xavier { h = linear(h, 4) }
  require width > 4, "wide"
  return linear(h, 4)
}
train { epochs = 2 }
"""

#: the calls of SPEC, in source order, counted by hand
CALLS = ["linear", "gelu", "choice", "linear", "int", "choice", "block", "block", "linear",
         "linear"]
#: the bare names of SPEC, in source order (`a if c else b`: a, then c, then b)
NAMES = ["x", "k", "x", "width", "h", "h", "h", "i", "h", "xavier", "h", "width", "h"]
#: statements in source order, nested ones included
STMTS = ["Let", "Assign", "Repeat", "Assign", "With", "Assign", "Require", "Return"]

SP = Span("t", 1, 1, 1, 2)


@pytest.fixture(scope="module")
def module() -> ast.Module:
    return parse(SPEC, "t.spec")


def brute_force(node: Any) -> list[ast.Node]:
    """Every node, parents first, fields in declaration order: the reference for walk()."""
    out: list[ast.Node] = []
    if isinstance(node, tuple):
        for x in node:
            out += brute_force(x)
    elif isinstance(node, ast.Node):
        out.append(node)
        for f in dataclasses.fields(node):
            out += brute_force(getattr(node, f.name))
    return out


def test_calls_and_names_counted_by_hand(module):
    nodes = list(ast.walk(module))
    assert [n.func for n in nodes if isinstance(n, ast.Call)] == CALLS
    assert [n.id for n in nodes if isinstance(n, ast.Name)] == NAMES
    assert [type(n).__name__ for n in nodes if isinstance(n, ast.Stmt)] == STMTS


def test_walk_visits_every_node_once_in_the_brute_force_order(module):
    walked = list(ast.walk(module))
    reference = brute_force(module)
    assert [id(n) for n in walked] == [id(n) for n in reference]
    assert max(Counter(id(n) for n in walked).values()) == 1
    assert len(walked) > 60  # the whole file, not one item of it


def test_walk_of_every_example_spec_matches_the_brute_force():
    from pathlib import Path

    examples = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.spec"))
    assert examples
    for path in examples:
        m = parse(path.read_text(), str(path))
        assert [id(n) for n in ast.walk(m)] == [id(n) for n in brute_force(m)], path.name


def test_children_are_the_direct_nodes_in_source_order(module):
    d, m, train = module.items
    assert isinstance(d, ast.Def) and isinstance(m, ast.Model)
    assert ast.children(d) == (*d.params, d.expr)
    assert ast.children(d.params[0]) == ()  # `x`: no default
    assert ast.children(d.params[1]) == (d.params[1].default,)
    let, assign, repeat, with_, require, ret = m.body
    assert ast.children(m) == (*m.input_shape, *m.output_shape, *m.body)
    assert ast.children(let) == (let.value,)
    assert ast.children(repeat) == (repeat.count, *repeat.body)
    assert ast.children(with_) == (*with_.bindings, *with_.body)
    assert ast.children(require) == (require.cond,)
    ifexp = repeat.body[0].value
    assert isinstance(ifexp, ast.IfExp)
    # `a if c else b` reads a, c, b
    assert ast.children(ifexp) == (ifexp.body, ifexp.test, ifexp.orelse)
    call = ret.value
    assert isinstance(call, ast.Call) and ast.children(call) == call.args
    assert ast.children(call.args[0]) == (call.args[0].value,)
    assert ast.children(train) == train.settings
    for leaf in (ast.Name(SP, "h"), ast.Number(SP, 1), ast.String(SP, "s"), ast.Bool(SP, True)):
        assert ast.children(leaf) == ()


def test_a_new_node_class_needs_no_walker_change():
    @dataclasses.dataclass(frozen=True, slots=True, eq=False)
    class Pair(ast.Expr):
        label: str
        first: ast.Expr
        rest: tuple[ast.Expr, ...]
        where: Span
        maybe: ast.Expr | None = None

    a, b, c = ast.Name(SP, "a"), ast.Number(SP, 1), ast.Name(SP, "c")
    p = Pair(SP, "p", a, (b, c), SP)
    assert ast.children(p) == (a, b, c)
    q = Pair(SP, "q", p, (), SP, maybe=c)
    assert list(ast.walk(q)) == [q, p, a, b, c, c]


def test_walk_is_not_limited_by_pythons_stack():
    e: ast.Expr = ast.Name(SP, "x")
    for _ in range(20_000):
        e = ast.UnaryOp(SP, "-", e)
    assert sum(1 for _ in ast.walk(e)) == 20_001


# ---- Visitor -----------------------------------------------------------------


def test_a_visitor_overriding_one_method_sees_exactly_those_nodes(module):
    class Calls(ast.Visitor):
        def __init__(self) -> None:
            self.seen: list[ast.Call] = []

        def visit_Call(self, node: ast.Call) -> None:
            self.seen.append(node)
            self.generic_visit(node)

    v = Calls()
    v.visit(module)
    reference = [n for n in brute_force(module) if type(n) is ast.Call]
    assert [id(n) for n in v.seen] == [id(n) for n in reference]
    assert [n.func for n in v.seen] == CALLS


def test_a_method_that_does_not_recurse_stops_there(module):
    class OuterCalls(ast.Visitor):
        def __init__(self) -> None:
            self.seen: list[str] = []

        def visit_Call(self, node: ast.Call) -> None:
            self.seen.append(node.func)

    v = OuterCalls()
    v.visit(module)
    # by hand: the calls not inside another call (the def's linear, not its gelu; the
    # repeat body's choice, not the blocks in it)
    assert v.seen == ["linear", "choice", "linear", "int", "choice", "linear", "linear"]


def test_methods_for_base_classes_catch_their_subclasses(module):
    class Kinds(ast.Visitor):
        def __init__(self) -> None:
            self.stmts: list[str] = []
            self.names: list[str] = []
            self.other_exprs = 0

        def visit_Stmt(self, node: ast.Stmt) -> None:
            self.stmts.append(type(node).__name__)
            self.generic_visit(node)

        def visit_Name(self, node: ast.Name) -> None:
            self.names.append(node.id)

        def visit_Expr(self, node: ast.Expr) -> None:
            self.other_exprs += 1
            self.generic_visit(node)

    v = Kinds()
    v.visit(module)
    assert v.stmts == STMTS
    assert v.names == NAMES
    exprs = [n for n in brute_force(module) if isinstance(n, ast.Expr)]
    assert v.other_exprs == len(exprs) - len(NAMES)


def test_visit_passes_arguments_and_returns_the_result():
    class Depth(ast.Visitor):
        def generic_visit(self, node: ast.Node, level: int) -> int:
            return max([level] + [self.visit(c, level + 1) for c in ast.children(node)])

    class Double(ast.Visitor):
        def visit_Number(self, node: ast.Number, factor: int) -> Any:
            return node.value * factor

    e = parse("model m(x: [1]) -> [1] {\n  return f(-(1 + 2), [3])\n}\n").items[0].body[0]
    # Return > Call > Arg > UnaryOp > BinOp > Number: the numbers sit 5 below the Return
    assert Depth().visit(e, 0) == 5
    assert Double().visit(ast.Number(SP, 21), 2) == 42
    assert Double().visit(ast.Name(SP, "x"), 2) is None  # generic_visit returns nothing


def test_each_visitor_class_dispatches_on_its_own_methods():
    class Base(ast.Visitor):
        def __init__(self) -> None:
            self.log: list[str] = []

        def visit_Name(self, node: ast.Name) -> None:
            self.log.append("base")

    class Child(Base):
        def visit_Name(self, node: ast.Name) -> None:
            self.log.append("child")

    class Sibling(Base):
        pass

    name = ast.Name(SP, "x")
    for cls, expected in ((Base, "base"), (Child, "child"), (Sibling, "base"),
                          (Child, "child"), (Base, "base")):
        v = cls()
        v.visit(name)
        assert v.log == [expected], cls.__name__

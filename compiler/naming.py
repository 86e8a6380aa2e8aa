"""Stable, readable names for decisions (contract rule 4), and labels of alternatives.

Names are given to the *sites* of the source (decision calls, def calls, repeats)
once, when a spec is loaded; elaboration prefixes them with the dynamic scope path
(model, repeat iteration, def call). See docs/space.md for the rules.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from ..dsl import ast
from .settings import DECISION_CALLS, SYMBOL_CALLS


def name_sites(module: ast.Module) -> dict[int, str]:
    """A local name for every decision site, def call and repeat of a checked module.

    Keyed by ``id(node)`` of the call or repeat (nodes are kept alive by the module).
    """
    return _Namer(module).run()


# ---- labels of choice alternatives ------------------------------------------


def alternative_labels(c: ast.Call, source: str) -> list[Any]:
    """The value each alternative of a choice() is known by in assignments and history.

    A label given (`mlp: ...`) is used as is; a literal stands for itself; a bare
    name (symbol or constant) by its text; a call by its op name (numbered when
    several alternatives call the same op); anything else by its source text.
    """
    out: list[Any] = []
    calls: dict[str, int] = defaultdict(int)
    for a in c.args:
        if isinstance(a.value, ast.Call) and a.kind != "label":
            calls[a.value.func] += 1
    numbered: dict[str, int] = defaultdict(int)
    for a in c.args:
        v = a.value
        if a.kind == "label":
            out.append(a.name)
        elif isinstance(v, ast.Number | ast.String | ast.Bool):
            out.append(v.value)
        elif isinstance(v, ast.UnaryOp) and v.op == "-" and isinstance(v.operand, ast.Number):
            out.append(-v.operand.value)
        elif isinstance(v, ast.Name):
            out.append(v.id)
        elif isinstance(v, ast.Call) and v.func in SYMBOL_CALLS:
            out.append(_source_text(v, source))  # nm(2, 4), normal(0.02): the text says it
        elif isinstance(v, ast.Call):
            if calls[v.func] > 1:
                numbered[v.func] += 1
                out.append(f"{v.func}#{numbered[v.func]}")
            else:
                out.append(v.func)
        else:
            out.append(_source_text(v, source))
    return out


def _source_text(e: ast.Expr, source: str) -> str:
    sp = e.span
    lines = source.split("\n")
    if sp.line == sp.end_line and sp.line <= len(lines):
        return " ".join(lines[sp.line - 1][sp.column - 1: sp.end_column - 1].split())
    return f"<line {sp.line}>"


# ---- stable names ----------------------------------------------------------


class _Namer:
    """Gives every decision site, def call and repeat a name unique in its naming scope.

    A naming scope is a model body, a def body, a repeat body, or the top level
    (with `train` and `search` as their own). `with` bodies are transparent. A
    decision is named after the statement it stands in (`let width`, `h = ...`,
    `with init = ...`, the `repeat ... as i` it counts), then the labels of the
    alternatives and the keywords it sits under (`h.kan.basis`); a def call after
    the def. Names that still collide are numbered in source order (`op#1`).
    """

    def __init__(self, module: ast.Module):
        self.module = module
        self.defs = {d.name for d in module.items if isinstance(d, ast.Def)}
        self.names: dict[int, str] = {}

    def run(self) -> dict[int, str]:
        items = self.module.items
        self.scope([i for i in items if isinstance(i, ast.Let)], is_def=False)
        for d in items:
            if isinstance(d, ast.Def):
                self.scope(d.body if d.body is not None else (d.expr,), is_def=True,
                           params=d.params)
        for m in items:
            if isinstance(m, ast.Model):
                self.scope(m.body, is_def=False)
        for blk in items:
            if isinstance(blk, ast.Train):
                self.scope(blk.settings, is_def=False)
            elif isinstance(blk, ast.Search):
                self.scope(blk.settings + blk.constraints, is_def=False)
        return self.names

    def scope(self, nodes: tuple[ast.Node, ...] | list[Any], *, is_def: bool,
              params: tuple[Any, ...] = ()) -> None:
        found = _Sites(self.defs, is_def)
        for prm in params:  # a decision in a default is named after its parameter
            if prm.default is not None:
                found.visit(prm.default, [prm.name])
        for node in nodes:
            found.visit(node, [])
        # Repeats first: a repeat's count decision is named after the repeat.
        for node, name in _numbered(found.repeats):
            self.names[id(node)] = name
            found.visit(node.count, [name])
        for node, name in _numbered(found.sites):
            self.names[id(node)] = name
        for body in found.nested:
            self.scope(body, is_def=is_def)


class _Sites(ast.Visitor):
    """The sites of one naming scope, each with the path it is named by; the bodies of
    repeats are scopes of their own, collected in ``nested``.

    Statements and block entries start their own path (the argument ``path`` is
    ignored there); expressions extend the path they are given.
    """

    def __init__(self, defs: set[str], is_def: bool):
        self.defs = defs
        self.is_def = is_def
        self.sites: list[tuple[ast.Call, str]] = []
        self.repeats: list[tuple[ast.Repeat, str]] = []
        self.nested: list[tuple[ast.Stmt, ...]] = []

    # ---- statements and block entries (`with` bodies: generic_visit) ----

    def visit_Let(self, s: ast.Let | ast.Assign, path: list[str]) -> None:
        self.visit(s.value, [s.name])

    visit_Assign = visit_Let

    def visit_Binding(self, b: ast.Binding, path: list[str]) -> None:
        self.visit(b.value, [b.name])

    def visit_Repeat(self, s: ast.Repeat, path: list[str]) -> None:
        self.repeats.append((s, s.var or "repeat"))
        self.nested.append(s.body)

    def visit_Require(self, s: ast.Require, path: list[str]) -> None:
        self.visit(s.cond, ["require"])

    def visit_Return(self, s: ast.Return, path: list[str]) -> None:
        self.visit(s.value, [] if self.is_def else ["return"])

    def visit_Setting(self, s: ast.Setting, path: list[str]) -> None:
        self.visit(s.value, [s.name])

    def visit_Constraint(self, c: ast.Constraint, path: list[str]) -> None:
        self.visit(c.expr, ["constraint"])

    # ---- expressions -----------------------------------------------------

    def visit_Call(self, e: ast.Call, path: list[str]) -> None:
        f = e.func
        if f in DECISION_CALLS:
            self.sites.append((e, ".".join(path)))
            for a in e.args:
                self.visit(a.value, path + [a.name] if a.kind == "label" else path)
            return
        if f in self.defs:
            self.sites.append((e, f))
        for a in e.args:
            self.visit(a.value, path + [a.name] if a.kind == "kw" else path)

    def visit_IfExp(self, e: ast.IfExp, path: list[str]) -> None:
        # the test first, as elaboration evaluates it: names are numbered in this order
        for x in (e.test, e.body, e.orelse):
            self.visit(x, path)


def _numbered(items: list[tuple[Any, str]]) -> list[tuple[Any, str]]:
    counts: dict[str, int] = defaultdict(int)
    for _, name in items:
        counts[name] += 1
    seen: dict[str, int] = defaultdict(int)
    out = []
    for node, name in items:
        if counts[name] > 1:
            seen[name] += 1
            name = f"{name or 'return'}#{seen[name]}"
        out.append((node, name))
    return out

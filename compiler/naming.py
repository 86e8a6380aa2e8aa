"""Stable, readable names for decisions (contract rule 4), and labels of alternatives.

Names are given to the *sites* of the source (decision calls, def calls, repeats)
once, when a spec is loaded; elaboration prefixes them with the dynamic scope path
(model, repeat iteration, def call). See docs/space.md for the rules.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from ..dsl import ast
from .settings import DECISION_CALLS, SYMBOL_CALLS

if TYPE_CHECKING:
    from .checks import Program


def name_sites(prog: Program) -> None:
    """Fill ``prog.names``: a local name for every decision site, def call and repeat."""
    _Namer(prog).run()


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

    def __init__(self, prog: Program):
        self.p = prog

    def run(self) -> None:
        self.scope([("let", let) for let in self.p.lets], is_def=False)
        for d in self.p.defs.values():
            if d.body is not None:
                self.scope([("stmt", s) for s in d.body], is_def=True)
            else:
                self.scope([("expr", d.expr)], is_def=True)
        self.scope([("stmt", s) for s in self.p.model.body], is_def=False)
        for blk in (self.p.train, self.p.search):
            if blk is not None:
                entries: list[tuple[str, Any]] = [("setting", s) for s in blk.settings]
                if isinstance(blk, ast.Search):
                    entries += [("constraint", c) for c in blk.constraints]
                self.scope(entries, is_def=False)

    def scope(self, entries: list[tuple[str, Any]], *, is_def: bool) -> None:
        sites: list[tuple[ast.Node, str]] = []
        repeats: list[tuple[ast.Repeat, str]] = []
        nested: list[tuple[ast.Stmt, ...]] = []

        def stmts(body: tuple[ast.Stmt, ...]) -> None:
            for s in body:
                stmt(s)

        def stmt(s: ast.Stmt) -> None:
            if isinstance(s, ast.Let | ast.Assign):
                self.expr(s.value, [s.name], sites)
            elif isinstance(s, ast.Repeat):
                repeats.append((s, s.var or "repeat"))
                nested.append(s.body)
            elif isinstance(s, ast.With):
                for b in s.bindings:
                    self.expr(b.value, [b.name], sites)
                stmts(s.body)
            elif isinstance(s, ast.Require):
                self.expr(s.cond, ["require"], sites)
            elif isinstance(s, ast.Return):
                self.expr(s.value, [] if is_def else ["return"], sites)

        for kind, node in entries:
            if kind == "stmt" or kind == "let":
                stmt(node)
            elif kind == "expr":
                self.expr(node, [], sites)
            elif kind == "setting":
                self.expr(node.value, [node.name], sites)
            elif kind == "constraint":
                self.expr(node.expr, ["constraint"], sites)
        # Repeats first: a repeat's count decision is named after the repeat.
        for node, name in _numbered(repeats):
            self.p.names[id(node)] = name
            self.expr(node.count, [name], sites)  # type: ignore[attr-defined]
        for node, name in _numbered(sites):
            self.p.names[id(node)] = name
        for body in nested:
            self.scope([("stmt", s) for s in body], is_def=is_def)

    def expr(self, e: ast.Expr, path: list[str], sites: list) -> None:
        if isinstance(e, ast.Call):
            f = e.func
            if f in DECISION_CALLS:
                sites.append((e, ".".join(path)))
                for a in e.args:
                    self.expr(a.value, path + [a.name] if a.kind == "label" else path, sites)
                return
            if f in self.p.defs:
                sites.append((e, f))
            for a in e.args:
                self.expr(a.value, path + [a.name] if a.kind == "kw" else path, sites)
            return
        for x in ast.children(e):
            self.expr(x, path, sites)


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

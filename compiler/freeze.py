"""Freeze a candidate: the spec's own source with every decision replaced by its value.

The frozen spec describes exactly one candidate, the one ``choices`` picks: ``autoarch
check`` accepts it, its space counts 1, and ``build({})`` gives the same graph (the same
``graph.hash``) and the same training settings as ``spec.build(choices)``.

It is a rewrite of the source text, not a printout of the AST, so comments and layout
stay where they are. Each decision site gives way to what the candidate took there:

- ``choice(...)`` to the source of the alternative taken (its own decisions frozen in
  turn), ``optional(op(x, ...))`` to ``op(x, ...)`` or to ``x``, ``int``/``float`` to
  the number;
- ``a if c else b`` whose parts hold decisions to the branch taken (the other
  branch's decisions do not exist for this candidate);
- a ``repeat`` whose iterations hold decisions is unrolled (``i = 0``, the body, ``i =
  1``, ...), since each iteration may have decided differently; a repeat whose count
  alone was a decision keeps its loop with the count written in;
- a ``def`` that holds decisions becomes one specialised def per call the candidate
  makes (``op_1``, ``op_2``, ...), each with its own call's values.

Everything else (the model's other statements, `with` blocks, `train` and `search`,
defs without decisions) is copied as written.

Example:
    >>> text = freeze(spec, spec.space().sample(seed=0))
    >>> frozen = autoarch.loads(text, "frozen.spec")
    >>> frozen.space().count(), frozen.build({}).hash == spec.build(choices).hash
    (1, True)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..dsl import ast
from ..dsl.errors import Span, SpecError
from . import arith, ops
from .checks import Program
from .deciders import FixedDecider
from .deciding import SampleMode
from .elaborate import Evaluator
from .settings import DECISION_CALLS, SYMBOL_CALLS
from .values import Symbol

#: nodes whose text needs no parentheses wherever an expression may stand
_ATOMS = (ast.Name, ast.String, ast.Bool, ast.Call, ast.ListExpr)


def freeze(spec: Any, choices: Mapping[str, Any], *, header: str | None = None,
           check: bool = True) -> str:
    """The source of ``spec`` with the candidate ``choices`` written in.

    ``header`` (plain text, one or more lines) opens the file as a comment; by default
    it names the spec file. With ``check`` (the default) the frozen text is loaded and
    compared with the candidate (one candidate, the same graph hash and training
    settings) before it is returned. Raises the candidate's error (a SpecError) when
    ``choices`` does not build.
    """
    graph = spec.build(choices)  # an invalid candidate fails here, with its reason
    prog: Program = spec.program
    trace = _Trace(prog, SampleMode(FixedDecider(dict(graph.choices))))
    trace.run()
    text = _Renderer(prog, trace).module()
    if header is None:
        header = f"Frozen from {spec.filename}: every decision replaced by its value."
    lines = [f"# {line}".rstrip() for line in header.strip().splitlines()]
    text = "\n".join(lines) + "\n\n" + text.lstrip("\n")
    if check:
        _check(spec, choices, graph, text)
    return text


def _check(spec: Any, choices: Mapping[str, Any], graph: Any, text: str) -> None:
    from .spec import loads

    try:
        frozen = loads(text, spec.filename)
        count = frozen.space().count()
        built = frozen.build({})
    except SpecError as e:
        raise SpecError(f"internal: the frozen spec does not load: {e.message}") from None
    if count != 1:
        raise SpecError(f"internal: the frozen spec holds {count} candidates, not 1")
    if built.hash != graph.hash:
        raise SpecError("internal: the frozen spec builds another architecture "
                        f"({built.hash}, not {graph.hash})")
    if frozen.train_config({}) != spec.train_config(graph.choices):
        raise SpecError("internal: the frozen spec trains with other settings")


class _Trace(Evaluator):
    """The plain evaluator, noting what the renderer needs to know per dynamic instance:
    each repeat's count and each ``if``'s branch, keyed by the node and its scope path."""

    def __init__(self, prog: Program, mode: SampleMode):
        super().__init__(prog, mode)
        self.choices = mode.choices
        self.counts: dict[tuple[Span, str], int] = {}
        self.branches: dict[tuple[int, str], bool] = {}

    def check_repeat(self, count: int, span: Span) -> None:
        super().check_repeat(count, span)
        self.counts[(span, self.scope)] = count

    def visit_IfExp(self, e: ast.IfExp) -> Any:
        test = self.concrete(self.visit(e.test), e.test.span)
        if type(test) is Symbol:
            raise self.unknown(test, e.test.span)
        taken = arith.truth(test, e.test.span)
        self.branches[(id(e), self.scope)] = taken
        return self.visit(e.body if taken else e.orelse)


class _Renderer:
    """Writes the frozen source, walking the program as the evaluator does (the same
    scope paths, so each decision is found by the name elaboration gave it)."""

    def __init__(self, prog: Program, trace: _Trace):
        self.p = prog
        self.src = prog.source
        self.trace = trace
        starts = [0]
        for line in self.src.split("\n"):
            starts.append(starts[-1] + len(line) + 1)
        self.starts = starts
        self.deciding_defs = _deciding_defs(prog)
        self.specialised: dict[str, list[str]] = {name: [] for name in self.deciding_defs}
        #: (def, the text of a copy) -> the copy's name
        self.copies: dict[tuple[str, str], str] = {}
        self.taken_names = _identifiers(prog.module)
        #: names read as values somewhere: a loop variable is bound in the unrolled
        #: iterations only if it is read (after the loop as well, it keeps its value)
        self.names_read = {n.id for n in ast.walk(prog.module) if isinstance(n, ast.Name)}

    # ---- text ---------------------------------------------------------------------

    def offset(self, line: int, column: int) -> int:
        return self.starts[line - 1] + column - 1

    def bounds(self, span: Span) -> tuple[int, int]:
        return self.offset(span.line, span.column), self.offset(span.end_line, span.end_column)

    def splice(self, span: Span | None, parts: list[tuple[Span, str]]) -> str:
        """The text of ``span`` (None: the whole source) with each part's span replaced
        by its text."""
        start, end = self.bounds(span) if span is not None else (0, len(self.src))
        out, pos = [], start
        for sub, text in sorted(parts, key=lambda p: self.bounds(p[0])):
            a, b = self.bounds(sub)
            out += [self.src[pos:a], text]
            pos = b
        out.append(self.src[pos:end])
        return "".join(out)

    def indent_of(self, span: Span) -> int:
        line = self.src.split("\n")[span.line - 1]
        return len(line) - len(line.lstrip(" \t"))

    # ---- items ------------------------------------------------------------------

    def module(self) -> str:
        parts: list[tuple[Span, str]] = []
        later: list[tuple[Span, ast.Def]] = []
        for item in self.p.module.items:
            if isinstance(item, ast.Let):
                parts.append((item.span, self.statement(item, "")))
            elif isinstance(item, ast.Model):
                parts.append((item.span, self.model(item)))
            elif isinstance(item, ast.Train):
                parts.append((item.span, self.settings(item, "train")))
            elif isinstance(item, ast.Def) and item.name in self.deciding_defs:
                later.append((item.span, item))  # its copies are known once all is written
        for span, d in later:
            copies = self.specialised[d.name]
            parts.append((span, "\n\n".join(copies) if copies else
                          f"# def {d.name}: no call of it is part of this candidate"))
        return re.sub(r"\n{4,}", "\n\n\n", self.splice(None, parts))

    def model(self, m: ast.Model) -> str:
        return self.splice(m.span, [(s.span, self.statement(s, m.name)) for s in m.body])

    def settings(self, blk: ast.Train, scope: str) -> str:
        return self.splice(blk.span, [(s.value.span, self.expr(s.value, scope, top=True))
                                      for s in blk.settings])

    def specialise(self, d: ast.Def, scope: str) -> str:
        """A copy of def ``d`` for the call whose scope path is ``scope``; its name (that
        of an earlier copy when the two read the same)."""
        parts = [(p.default.span, self.expr(p.default, scope, top=True))
                 for p in d.params if p.default is not None]
        if d.expr is not None:
            parts.append((d.expr.span, self.expr(d.expr, scope, top=True)))
        else:
            parts += [(s.span, self.statement(s, scope)) for s in d.body or ()]
        text = self.splice(d.span, parts)
        known = self.copies.get((d.name, text))
        if known is not None:
            return known
        k = len(self.specialised[d.name]) + 1
        name = f"{d.name}_{k}"
        while name in self.taken_names:
            k += 1
            name = f"{d.name}_{k}"
        self.taken_names.add(name)
        self.copies[(d.name, text)] = name
        self.specialised[d.name].append(
            re.sub(rf"^def\s+{re.escape(d.name)}\b", f"def {name}", text))
        return name

    # ---- statements ----------------------------------------------------------------

    def statement(self, s: ast.Stmt, scope: str) -> str:
        if isinstance(s, ast.Let | ast.Assign):
            return self.splice(s.span, [(s.value.span, self.expr(s.value, scope, top=True))])
        if isinstance(s, ast.Return):
            return self.splice(s.span, [(s.value.span, self.expr(s.value, scope, top=True))])
        if isinstance(s, ast.Require):
            return self.splice(s.span, [(s.cond.span, self.expr(s.cond, scope, top=True))])
        if isinstance(s, ast.With):
            parts = [(b.value.span, self.expr(b.value, scope, top=True)) for b in s.bindings]
            parts += [(x.span, self.statement(x, scope)) for x in s.body]
            return self.splice(s.span, parts)
        if isinstance(s, ast.Repeat):
            return self.repeat(s, scope)
        raise SpecError(f"internal: cannot freeze a {type(s).__name__}", s.span)

    def repeat(self, s: ast.Repeat, scope: str) -> str:
        count_text = self.expr(s.count, scope, top=True)
        if not any(self.decides(x) for x in s.body):
            parts = [(s.count.span, count_text)]
            return self.splice(s.span, parts)
        name = self.p.names[id(s)]
        count = self.trace.counts.get((s.count.span, scope), 0)
        indent = self.indent_of(s.span)
        inner = self.indent_of(s.body[0].span)
        what = f"repeat {s.var}" if s.var else "repeat"
        lines = [f"# {what}: {count} iteration{'s' if count != 1 else ''}, unrolled"]
        for i in range(count):
            here = f"{scope}.{name}[{i}]"
            if count > 1:
                lines.append(f"# {name}[{i}]")
            if s.var is not None and s.var in self.names_read:
                lines.append(f"{s.var} = {i}")
            body = self.splice(_cover(s.body), [(x.span, self.statement(x, here))
                                               for x in s.body])
            lines += [_dedent(line, inner) for line in body.split("\n")]
        return ("\n" + " " * indent).join(lines)

    # ---- expressions -----------------------------------------------------------------

    def expr(self, e: ast.Expr, scope: str, *, top: bool = False) -> str:
        """``e``'s frozen text; ``top`` where it stands alone (an argument, a statement's
        value), so that a replacement needs no parentheses there."""
        if isinstance(e, ast.Call):
            if e.func in DECISION_CALLS:
                return self.decision(e, scope, top)
            parts = [(a.value.span, self.expr(a.value, scope, top=True)) for a in e.args]
            d = self.p.defs.get(e.func)
            if d is not None and d.name in self.deciding_defs:
                callee = f"{scope}.{self.p.names[id(e)]}" if scope else self.p.names[id(e)]
                parts.append((e.func_span, self.specialise(d, callee)))
            return self.splice(e.span, parts)
        if isinstance(e, ast.IfExp) and self.decides(e):
            taken = self.trace.branches.get((id(e), scope))
            if taken is not None:
                branch = e.body if taken else e.orelse
                return self.wrapped(branch, self.expr(branch, scope, top=True), top)
        children = [c for c in ast.children(e) if isinstance(c, ast.Expr)]
        if isinstance(e, ast.ListExpr):
            return self.splice(e.span, [(c.span, self.expr(c, scope, top=True))
                                        for c in children])
        return self.splice(e.span, [(c.span, self.expr(c, scope)) for c in children])

    def decision(self, e: ast.Call, scope: str, top: bool) -> str:
        local = self.p.names[id(e)]
        prefix = scope + "." if scope else ""
        name = prefix + local if local else (prefix[:-1] or "return")
        dec = self.p.decisions.get(name)
        have = dec is not None and name in self.trace.choices
        if e.func == "choice":
            # a decision this candidate never met (code it skips): its first alternative
            i = dec.index[(type(v := self.trace.choices[name]), v)] if have else 0
            alt = e.args[i].value
            return self.wrapped(alt, self.expr(alt, scope, top=True), top)
        if e.func == "optional":
            inner: ast.Call = e.args[0].value  # type: ignore[assignment]
            on = self.trace.choices[name] if have else True
            alt = inner if on else inner.positional[0].value
            return self.wrapped(alt, self.expr(alt, scope, top=True), top)
        if have:
            value = self.trace.choices[name]
        else:  # the low end of the range
            value = self.expr(e.positional[0].value, scope, top=True)
            return value if top else f"({value})"
        text = repr(float(value)) if e.func == "float" else str(int(value))
        return text if top or not text.startswith("-") else f"({text})"

    def wrapped(self, node: ast.Expr, text: str, top: bool) -> str:
        if top or isinstance(node, _ATOMS) or (isinstance(node, ast.Number)
                                               and not text.startswith("-")):
            return text
        return f"({text})"

    def decides(self, node: ast.Node) -> bool:
        """Whether ``node`` holds a decision, itself or in a def it calls."""
        for n in ast.walk(node):
            if isinstance(n, ast.Call) and (n.func in DECISION_CALLS
                                            or n.func in self.deciding_defs):
                return True
        return False


def _deciding_defs(prog: Program) -> set[str]:
    """The defs that hold a decision, themselves or through a def they call."""
    calls: dict[str, set[str]] = {}
    out: set[str] = set()
    for name, d in prog.defs.items():
        calls[name] = set()
        for n in ast.walk(d):
            if isinstance(n, ast.Call):
                if n.func in DECISION_CALLS:
                    out.add(name)
                elif n.func in prog.defs:
                    calls[name].add(n.func)
    changed = True
    while changed:
        changed = False
        for name, callees in calls.items():
            if name not in out and callees & out:
                out.add(name)
                changed = True
    return out


def _identifiers(module: ast.Module) -> set[str]:
    """Every name the source uses, and the names a def may not take."""
    names = set(DECISION_CALLS) | set(SYMBOL_CALLS)
    for n in ast.walk(module):
        for attr in ("id", "func", "name", "var", "input_name"):
            v = getattr(n, attr, None)
            if isinstance(v, str):
                names.add(v)
    return names | {s.name for s in ops.all_specs()}


def _cover(stmts: tuple[ast.Stmt, ...]) -> Span:
    first, last = stmts[0].span, stmts[-1].span
    return Span(first.filename, first.line, first.column, last.end_line, last.end_column)


def _dedent(line: str, n: int) -> str:
    lead = len(line) - len(line.lstrip(" "))
    return line[min(lead, max(n, 0)):]

"""Static analysis of a parsed spec: everything that can be checked before any decision.

- exactly one model, at most one train and one search block;
- every call names an op, a def, a decision builtin or a symbol constructor;
- def arity and keywords; no recursion between defs; `return` placement;
- stable, readable local names for every decision site, def call and repeat
  (contract rule 4): the elaborator prefixes them with the dynamic scope path.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..dsl import ast
from ..dsl.errors import (
    Span,
    SpecError,
    SpecNameError,
    SpecTypeError,
    SpecValueError,
    suggest,
)
from . import arith, ops, settings
from .naming import alternative_labels, name_sites
from .settings import DECISION_CALLS, SYMBOL_CALLS

#: most op applications remembered per spec (see Program.op_cache)
OP_CACHE_SIZE = 200_000


@dataclass
class Program:
    module: ast.Module
    model: ast.Model
    defs: dict[str, ast.Def]
    lets: list[ast.Let]
    train: ast.Train | None
    search: ast.Search | None
    #: id(node) -> local site name, for decision calls, def calls and repeats
    names: dict[int, str] = field(default_factory=dict)
    #: top-level lets whose value involves no decision, folded
    constants: dict[str, Any] = field(default_factory=dict)
    #: id(choice call) -> the labels of its alternatives
    labels: dict[int, list[Any]] = field(default_factory=dict)
    #: full decision name -> Decision, filled as elaboration meets them
    decisions: dict[str, Any] = field(default_factory=dict)
    #: id(call) -> what it calls (see Evaluator.resolve)
    targets: dict[int, Any] = field(default_factory=dict)
    #: id(op call) -> its argument binding plan (see opcalls.Plan)
    plans: dict[int, Any] = field(default_factory=dict)
    #: (call site, argument values and input shapes) -> the op's rules' results
    op_cache: dict[Any, Any] = field(default_factory=dict)
    #: the defs, each after the defs it calls
    def_order: list[str] = field(default_factory=list)

    def remember(self, key: Any, value: Any) -> None:
        if len(self.op_cache) >= OP_CACHE_SIZE:
            self.op_cache.clear()
        self.op_cache[key] = value

    @property
    def filename(self) -> str:
        return self.module.filename

    @property
    def source(self) -> str:
        return self.module.source


def analyze(module: ast.Module) -> Program:
    try:
        return _analyze(module)
    except SpecError as e:
        raise e.with_source(module.source) from None


def _analyze(module: ast.Module) -> Program:
    models = [i for i in module.items if isinstance(i, ast.Model)]
    if not models:
        raise SpecError("a spec needs exactly one model, found none",
                        Span(module.filename, 1, 1, 1, 2),
                        hint="add `model NAME(x: [d]) -> [k] { ... return ... }`")
    if len(models) > 1:
        raise SpecError(f"a spec has exactly one model; '{models[1].name}' is a second one "
                        f"(the first, '{models[0].name}', is at line {models[0].span.line})",
                        models[1].span)
    blocks: dict[type, ast.Node] = {}
    for item in module.items:
        if isinstance(item, ast.Train | ast.Search):
            if type(item) in blocks:
                word = "train" if isinstance(item, ast.Train) else "search"
                raise SpecError(f"a second `{word}` block (the first is at line "
                                f"{blocks[type(item)].span.line})", item.span)
            blocks[type(item)] = item
    defs: dict[str, ast.Def] = {}
    lets: list[ast.Let] = []
    seen_lets: dict[str, ast.Let] = {}
    for item in module.items:
        if isinstance(item, ast.Def):
            _check_def_name(item, defs)
            defs[item.name] = item
        elif isinstance(item, ast.Let):
            if item.name in seen_lets:
                raise SpecError(f"'{item.name}' is already defined at line "
                                f"{seen_lets[item.name].span.line}", item.name_span)
            seen_lets[item.name] = item
            lets.append(item)
    prog = Program(module, models[0], defs, lets, blocks.get(ast.Train),  # type: ignore[arg-type]
                   blocks.get(ast.Search))  # type: ignore[arg-type]
    checker = _Checker(prog)
    checker.run()
    prog.def_order = _check_recursion(prog, checker.def_calls)
    prog.names = name_sites(module)
    prog.constants = _fold_constants(lets)
    _check_blocks(prog)
    return prog


def _check_def_name(d: ast.Def, defs: dict[str, ast.Def]) -> None:
    if d.name in defs:
        raise SpecError(f"def '{d.name}' is already defined at line {defs[d.name].span.line}",
                        d.span)
    if ops.get(d.name) or d.name in DECISION_CALLS or d.name in SYMBOL_CALLS:
        raise SpecError(f"def '{d.name}' would hide the built-in '{d.name}'", d.span,
                        hint="choose another name")
    names = [p.name for p in d.params]
    for i, p in enumerate(d.params):
        if p.name in names[:i]:
            raise SpecError(f"parameter '{p.name}' appears twice", p.span)


# ---- checks over every statement and expression ---------------------------


class _Checker(ast.Visitor):
    """Calls, `return` placement and def calls, over every statement and expression."""

    def __init__(self, prog: Program):
        self.p = prog
        self.def_calls: dict[str, list[ast.Call]] = defaultdict(list)
        self.current_def: str | None = None
        self.known_calls = (set(DECISION_CALLS) | set(SYMBOL_CALLS) | set(prog.defs)
                            | set(ops.public_names()))

    def run(self) -> None:
        for let in self.p.lets:
            self.visit(let.value)
        for d in self.p.defs.values():
            self.current_def = d.name
            for prm in d.params:
                if prm.default is not None:
                    self.visit(prm.default)
            if d.body is not None:
                self.body(d.body, (f"def '{d.name}'", d.span))
            else:
                self.visit(d.expr)  # type: ignore[arg-type]
        self.current_def = None
        m = self.p.model
        for e in m.input_shape + m.output_shape:
            self.visit(e)
        self.body(m.body, (f"model '{m.name}'", m.span))
        for blk in (self.p.train, self.p.search):
            if blk is not None:
                for s in blk.settings:
                    self.visit(s.value)
        if self.p.search is not None:
            for c in self.p.search.constraints:
                self.visit(c.expr)

    def body(self, stmts: tuple[ast.Stmt, ...], owner: tuple[str, Span] | None = None) -> None:
        """A block of statements; ``owner`` (what, where) when it is a model's or def's."""
        for i, s in enumerate(stmts):
            if isinstance(s, ast.Return):
                if owner is None:
                    raise SpecError("`return` must be the last statement of a model or def, "
                                    "not inside `repeat` or `with`", s.span)
                if i != len(stmts) - 1:
                    raise SpecError("statement after `return` is never reached",
                                    stmts[i + 1].span)
            self.visit(s)
        if owner is not None and not (stmts and isinstance(stmts[-1], ast.Return)):
            raise SpecError(f"{owner[0]} does not end with `return`", owner[1],
                            hint="the last statement must be `return <tensor>`")

    # statements with no method here (let, assignment, require, return): their parts

    def visit_Repeat(self, s: ast.Repeat) -> None:
        self.visit(s.count)
        self.body(s.body)

    def visit_With(self, s: ast.With) -> None:
        for b in s.bindings:
            self.visit(b)
        self.body(s.body)

    def visit_IfExp(self, e: ast.IfExp) -> None:
        for x in (e.test, e.body, e.orelse):  # the test first, as elaboration meets them
            self.visit(x)

    def visit_Call(self, c: ast.Call) -> None:
        f = c.func
        if f not in self.known_calls:
            raise SpecNameError(f"unknown op '{f}'", c.func_span, hint=suggest(
                f, self.known_calls) or "see `autoarch ops`; an op of your own loads with "
                "--plugin MODULE (autoarch.load_plugins in Python)")
        labels = [a for a in c.args if a.kind == "label"]
        if labels and f != "choice":
            raise SpecTypeError("labelled arguments (name: value) are only for choice()",
                                labels[0].span)
        seen: set[str] = set()
        for a in c.args:
            if a.kind != "pos":
                if a.name in seen:
                    raise SpecTypeError(f"argument '{a.name}' given twice", a.span)
                seen.add(a.name)  # type: ignore[arg-type]
        if f == "choice":
            self._choice(c)
        elif f in ("int", "float"):
            self._numeric(c)
        elif f == "optional":
            self._optional(c)
        elif f in self.p.defs:
            self._def_call(c, self.p.defs[f])
        for a in c.args:
            self.visit(a.value)

    def _choice(self, c: ast.Call) -> None:
        if not c.args:
            raise SpecValueError("choice() needs at least one alternative", c.span)
        kws = [a for a in c.args if a.kind == "kw"]
        if kws:
            raise SpecTypeError("choice() takes alternatives, optionally labelled "
                                "`name: value`, not keyword arguments", kws[0].span,
                                hint=f"write `{kws[0].name}: ...` for a labelled alternative")
        kinds = {a.kind for a in c.args}
        if len(kinds) > 1:
            raise SpecTypeError("label all alternatives of a choice() or none",
                                c.span)
        labels = alternative_labels(c, self.p.source)
        self.p.labels[id(c)] = labels
        dup = [lab for i, lab in enumerate(labels) if lab in labels[:i]]
        if dup:
            arg = c.args[labels.index(dup[0], labels.index(dup[0]) + 1)]
            raise SpecValueError(f"choice() has the alternative {dup[0]!r} twice", arg.span)

    def _numeric(self, c: ast.Call) -> None:
        pos = [a for a in c.args if a.kind == "pos"]
        allowed = ("step", "log")
        if len(pos) != 2:
            raise SpecTypeError(f"{c.func}() takes two bounds, {c.func}(low, high), "
                                f"got {len(pos)} positional argument(s)", c.span)
        for a in c.args:
            if a.kind == "kw" and a.name not in allowed:
                raise SpecNameError(f"{c.func}() has no argument '{a.name}'", a.span,
                                    hint=suggest(a.name or "", allowed))
            if _holds_decision(a.value):
                raise SpecValueError(f"the arguments of {c.func}() must be constants, "
                                     "not decisions", a.value.span)

    def _optional(self, c: ast.Call) -> None:
        pos = [a for a in c.args if a.kind == "pos"]
        if len(c.args) != 1 or len(pos) != 1:
            raise SpecTypeError("optional() takes exactly one expression: optional(op(x, ...))",
                                c.span)
        inner = pos[0].value
        if not (isinstance(inner, ast.Call) and inner.func not in DECISION_CALLS
                and inner.positional):
            raise SpecTypeError("optional() needs a call with a tensor as its first argument, "
                                "like optional(dropout(h, 0.1))", inner.span)

    def _def_call(self, c: ast.Call, d: ast.Def) -> None:
        if self.current_def is not None:
            self.def_calls[self.current_def].append(c)
        names = [p.name for p in d.params]
        pos = [a for a in c.args if a.kind == "pos"]
        where = f"def {d.name}({', '.join(names)}) is at line {d.span.line}"
        if len(pos) > len(names):
            raise SpecTypeError(f"{d.name}() takes {len(names)} argument(s), got {len(pos)}",
                                pos[len(names)].span, hint=where)
        given = set(names[: len(pos)])
        for a in c.args:
            if a.kind == "kw":
                if a.name not in names:
                    raise SpecNameError(f"{d.name}() has no parameter '{a.name}'", a.span,
                                        hint=suggest(a.name or "", names) or where)
                if a.name in given:
                    raise SpecTypeError(f"parameter '{a.name}' of {d.name}() given twice",
                                        a.span)
                given.add(a.name)  # type: ignore[arg-type]
        missing = [p.name for p in d.params if p.name not in given and p.default is None]
        if missing:
            listed = ", ".join(f"'{m}'" for m in missing)
            raise SpecTypeError(f"{d.name}() is missing argument{'s' if len(missing) > 1 else ''}"
                                f" {listed}", c.span, hint=where)


def _holds_decision(e: ast.Expr) -> bool:
    return any(isinstance(n, ast.Call) and n.func in DECISION_CALLS for n in ast.walk(e))


def _check_blocks(prog: Program) -> None:
    """`train` and `search` keys; the search block and constraints hold no decisions."""
    decisive = _decision_holders(prog)
    for blk, keys in ((prog.train, settings.TRAIN_KEYS), (prog.search, settings.SEARCH_KEYS)):
        if blk is None:
            continue
        word = "train" if blk is prog.train else "search"
        seen: dict[str, ast.Setting] = {}
        for st in blk.settings:
            if st.name not in keys:
                raise SpecNameError(f"unknown {word} setting '{st.name}'", st.span,
                                    hint=suggest(st.name, keys, listing="expected one of"))
            if st.name in seen:
                raise SpecError(f"{word} setting '{st.name}' is given twice (first at line "
                                f"{seen[st.name].span.line})", st.span)
            seen[st.name] = st
    if prog.search is None:
        return
    for st in prog.search.settings:
        _no_decision(st.value, decisive, f"search setting '{st.name}'")
    for c in prog.search.constraints:
        _no_decision(c.expr, decisive, "a constraint")
        for n in _names(c.expr):
            if n.id not in settings.CONSTRAINT_NAMES and n.id not in prog.constants:
                raise SpecNameError(f"unknown name '{n.id}' in a constraint", n.span,
                                    hint=suggest(n.id, settings.CONSTRAINT_NAMES,
                                                 listing="constraints may use"))


def _decision_holders(prog: Program) -> set[str]:
    """Top-level lets and defs whose value involves a decision."""
    out: set[str] = set()
    changed = True
    while changed:  # defs may call defs defined later: iterate to a fixed point
        changed = False
        for d in prog.defs.values():
            parts = [p.default for p in d.params if p.default is not None]
            parts += [d.expr] if d.expr is not None else list(stmt_exprs(d.body or ()))
            if d.name not in out and any(_involves(e, out) for e in parts):
                out.add(d.name)
                changed = True
    for let in prog.lets:
        if _involves(let.value, out):
            out.add(let.name)
    return out


def _involves(e: ast.Expr, holders: set[str]) -> bool:
    for n in ast.walk(e):
        if isinstance(n, ast.Call) and (n.func in DECISION_CALLS or n.func in holders):
            return True
        if isinstance(n, ast.Name) and n.id in holders:
            return True
    return False


def _no_decision(e: ast.Expr, holders: set[str], where: str) -> None:
    for node in _walk(e):
        if isinstance(node, ast.Call) and node.func in DECISION_CALLS:
            raise SpecValueError(f"{where} cannot hold a decision ({node.func}(...)); "
                                 "only the model and the train block are searched", node.span)
        name = node.id if isinstance(node, ast.Name) else getattr(node, "func", None)
        if name in holders:
            raise SpecValueError(f"{where} cannot use '{name}': it holds a decision, and "
                                 "only the model and the train block are searched", node.span)


def _walk(e: ast.Expr) -> list[ast.Node]:
    """Every node of ``e``, in the order elaboration meets them (so errors about them are
    reported in that order): as ``ast.walk``, but an IfExp's test before its branches."""
    found = _Nodes()
    found.visit(e)
    return found.nodes


class _Nodes(ast.Visitor):
    def __init__(self) -> None:
        self.nodes: list[ast.Node] = []

    def visit_Node(self, node: ast.Node) -> None:
        self.nodes.append(node)
        self.generic_visit(node)

    def visit_IfExp(self, e: ast.IfExp) -> None:
        self.nodes.append(e)
        for x in (e.test, e.body, e.orelse):
            self.visit(x)


def _names(e: ast.Expr) -> list[ast.Name]:
    return [n for n in _walk(e) if isinstance(n, ast.Name)]


def stmt_exprs(stmts: tuple[ast.Stmt, ...]) -> Iterator[ast.Expr]:
    """Every expression of a block of statements, nested blocks included (not the
    expressions within them), in source order."""
    todo: list[ast.Node] = list(reversed(stmts))
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Expr):
            yield node
        else:
            todo.extend(reversed(ast.children(node)))


def _check_recursion(prog: Program, calls: dict[str, list[ast.Call]]) -> list[str]:
    """No def calls itself, directly or not. Returns the defs, each after those it calls.

    A depth-first walk with an explicit stack: a chain of a thousand defs is no
    reason for a Python RecursionError.
    """
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    order: list[str] = []
    for root in prog.defs:
        if root in state:
            continue
        state[root] = 1
        path = [root]
        todo = [iter(calls.get(root, ()))]
        while todo:
            c = next(todo[-1], None)
            if c is None:
                todo.pop()
                state[path[-1]] = 2
                order.append(path.pop())
            elif state.get(c.func) == 1:
                cycle = path[path.index(c.func):] + [c.func]
                raise SpecError("recursion between defs: " + " -> ".join(cycle), c.func_span,
                                hint="defs may not call themselves, directly or indirectly; "
                                     "use `repeat` for depth")
            elif c.func not in state:
                state[c.func] = 1
                path.append(c.func)
                todo.append(iter(calls.get(c.func, ())))
    return order


# ---- constants ---------------------------------------------------------------


def const_value(e: ast.Expr, constants: dict[str, Any]) -> Any:
    """Fold an expression of literals, arithmetic and constant names; raise _NotConst."""
    if isinstance(e, ast.Number | ast.String | ast.Bool):
        return e.value
    if isinstance(e, ast.Name):
        if e.id in constants:
            return constants[e.id]
        raise NotConstant(e)
    if isinstance(e, ast.UnaryOp):
        return arith.unary(e.op, const_value(e.operand, constants), e.span)
    if isinstance(e, ast.BinOp):
        if e.op in ("and", "or"):
            left = arith.truth(const_value(e.left, constants), e.span)
            if (e.op == "and") != left:
                return left
            return arith.truth(const_value(e.right, constants), e.span)
        return arith.binop(e.op, const_value(e.left, constants),
                           const_value(e.right, constants), e.span)
    if isinstance(e, ast.ListExpr):
        return tuple(const_value(x, constants) for x in e.items)
    raise NotConstant(e)


class NotConstant(Exception):
    def __init__(self, node: ast.Expr):
        self.node = node


def _fold_constants(lets: list[ast.Let]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for let in lets:
        try:
            out[let.name] = const_value(let.value, out)
        except NotConstant:
            pass
    return out

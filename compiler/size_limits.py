"""Documented limits checked on the AST, when a spec is loaded, before anything runs.

- **Evaluation depth.** Expressions within expressions, through the defs they
  call, nest at most ``limits.MAX_EVAL_DEPTH`` deep, so that no later pass (all
  of them recurse) can exhaust Python's stack.
- **Repeat ranges.** ``repeat int(lo, hi)`` with ``hi`` over ``limits.MAX_REPEAT``.
- **A lower bound on the ops of every candidate.** Doubling defs
  (``def f2(x) = f1(f1(x))``, ...) or constant loop nests describe graphs of
  millions of ops in a few lines; elaboration would stop them at
  ``limits.MAX_NODES`` only after building that many nodes. The bound counts op
  applications only where every candidate surely makes them: the cheapest
  alternative of a ``choice``, the cheaper branch of an ``if`` whose test is not a
  constant, the smallest value of a chosen ``repeat`` count, none of an
  ``and``/``or``'s right side, and no iterations where a count is not known. So a
  spec it rejects has no candidate that could be built.
"""

from __future__ import annotations

from typing import Any

from ..dsl import ast
from ..dsl.errors import SpecError, SpecLimitError
from . import limits, ops
from .checks import DECISION_CALLS, NotConstant, Program, const_value

#: costs saturate here: anything above the limit is simply "too many"
_CAP = limits.MAX_NODES + 1


def check_limits(prog: Program) -> None:
    """Raise SpecLimitError if the spec nests too deeply or every candidate is too large."""
    _Depth(prog).model()  # first: it bounds how deep the walk after it recurses
    _MinOps(prog).model()


def _add(a: int, b: int) -> int:
    return min(a + b, _CAP)


def _mul(a: int, b: int) -> int:
    return min(a * b, _CAP)


class _Depth(ast.Visitor):
    """How deep evaluation nests: expressions in expressions, through def calls and blocks.

    Elaboration, analysis and the op bound all recurse this deep, so
    ``limits.MAX_EVAL_DEPTH`` keeps them within Python's stack. Walks each def once
    (callees first) and every `repeat`, where it also checks chosen-count ranges.
    ``visit(node, level)`` returns the deepest level reached in ``node``.
    """

    def __init__(self, prog: Program):
        self.p = prog
        self.defs: dict[str, int] = {}
        for name in prog.def_order:  # callees first
            d = prog.defs[name]
            deepest = max((self.visit(p.default, 1) for p in d.params if p.default is not None),
                          default=0)
            inner = self.visit(d.expr, 1) if d.expr is not None else self.body(d.body or (), 1)
            self.defs[name] = max(deepest, inner)

    def model(self) -> None:
        p = self.p
        self.body(p.model.body, 1)
        exprs = [let.value for let in p.lets]
        for blk in (p.train, p.search):
            exprs += [s.value for s in blk.settings] if blk is not None else []
        exprs += [c.expr for c in p.search.constraints] if p.search is not None else []
        for e in exprs:
            self.visit(e, 1)

    def body(self, stmts: tuple[ast.Stmt, ...], level: int) -> int:
        deepest = level
        for s in stmts:
            deepest = max(deepest, self.visit(s, level))
        return deepest

    # ---- statements (and Arg, Binding): their parts are at their own level ----

    def generic_visit(self, node: ast.Node, level: int) -> int:
        deepest = level
        for x in ast.children(node):
            deepest = max(deepest, self.visit(x, level))
        return deepest

    def visit_Repeat(self, s: ast.Repeat, level: int) -> int:
        self.repeat_range(s.count)
        return max(level, self.visit(s.count, level), self.body(s.body, level + 1))

    def visit_With(self, s: ast.With, level: int) -> int:
        deepest = level
        for b in s.bindings:
            deepest = max(deepest, self.visit(b, level))
        return max(deepest, self.body(s.body, level + 1))

    # ---- expressions: their parts are one level deeper -------------------

    def visit_Expr(self, e: ast.Expr, level: int) -> int:
        deepest = level
        for x in ast.children(e):
            deepest = max(deepest, self.visit(x, level + 1))
        return deepest

    def visit_IfExp(self, e: ast.IfExp, level: int) -> int:
        deepest = level
        for x in (e.test, e.body, e.orelse):  # the test first, as elaboration meets them
            deepest = max(deepest, self.visit(x, level + 1))
        return deepest

    def visit_Call(self, e: ast.Call, level: int) -> int:
        if e.func in self.defs:
            if level + self.defs[e.func] > limits.MAX_EVAL_DEPTH:
                raise SpecLimitError(
                    f"evaluation would nest more than {limits.MAX_EVAL_DEPTH} deep here "
                    f"(calls of defs that call defs, within expressions)", e.span,
                    hint="flatten the chain of defs, or split expressions with `let`")
        deepest = level + self.defs.get(e.func, 0)
        for a in e.args:  # an Arg is not a level of its own
            deepest = max(deepest, self.visit(a.value, level + 1))
        return deepest

    def repeat_range(self, count: ast.Expr) -> None:
        """`repeat int(lo, hi)`: analysis walks every count up to hi, so hi must be in the limit."""
        if not (isinstance(count, ast.Call) and count.func == "int"):
            return
        hi = _constant(count.positional[1].value, self.p.constants)
        if isinstance(hi, int) and hi > limits.MAX_REPEAT:
            raise SpecLimitError(f"repeat count up to {hi:,} exceeds the limit "
                                 f"{limits.MAX_REPEAT:,}", count.span)


class _MinOps(ast.Visitor):
    """The fewest ops every candidate makes: ``visit(node, env)`` returns the ops of a
    statement or expression, ``env`` the names whose values are known constants."""

    def __init__(self, prog: Program):
        self.p = prog
        self.defs: dict[str, int] = {}
        #: in the model's own body a cost over the limit is reported where it arises;
        #: in a def body it is only counted (the def may never be called)
        self.report = False

    def model(self) -> None:
        env = dict(self.p.constants)
        total = 2  # the input and output nodes
        for let in self.p.lets:
            total = _add(total, self.expr(let.value, env))
        env.pop(self.p.model.input_name, None)
        self.report = True
        self.body(self.p.model.body, env, total)

    def too_many(self, node: ast.Node, what: str) -> SpecLimitError:
        return SpecLimitError(
            f"every candidate would have more than {limits.MAX_NODES:,} ops, the limit: "
            f"{what}", node.span,
            hint="lower repeat counts or the nesting of defs; limits are in "
                 "autoarch.compiler.limits")

    # ---- statements ------------------------------------------------------

    def body(self, stmts: tuple[ast.Stmt, ...], env: dict[str, Any], total: int = 0) -> int:
        for s in stmts:
            total = _add(total, self.visit(s, env))
            if self.report and total >= _CAP:
                raise self.too_many(s, "the model has that many by this statement")
        return total

    def generic_visit(self, node: ast.Node, env: dict[str, Any]) -> int:
        """Leaves cost nothing; `require`, `return` and the like what their parts cost."""
        total = 0
        for x in ast.children(node):
            total = _add(total, self.expr(x, env) if isinstance(x, ast.Expr)
                         else self.visit(x, env))
        return total

    def visit_Let(self, s: ast.Let | ast.Assign, env: dict[str, Any]) -> int:
        cost = self.expr(s.value, env)
        value = _constant(s.value, env)
        if value is None:
            env.pop(s.name, None)
        else:
            env[s.name] = value
        return cost

    visit_Assign = visit_Let

    def visit_With(self, s: ast.With, env: dict[str, Any]) -> int:
        cost = 0
        for b in s.bindings:
            cost = _add(cost, self.expr(b.value, env))
        return _add(cost, self.body(s.body, env))

    def visit_Repeat(self, s: ast.Repeat, env: dict[str, Any]) -> int:
        cost = self.expr(s.count, env)
        count = _least_count(s.count, env)
        if self.report and count > limits.MAX_REPEAT:
            raise SpecLimitError(f"repeat count {count:,} exceeds the limit "
                                 f"{limits.MAX_REPEAT:,}", s.count.span)
        for name in _assigned(s.body) | ({s.var} if s.var else set()):
            env.pop(name, None)  # they change from one iteration to the next
        report = self.report
        self.report = report and count > 0  # a body that may not run reports nothing
        body = self.body(s.body, env)
        self.report = report
        for name in _assigned(s.body):
            env.pop(name, None)
        total = _add(cost, _mul(min(count, _CAP), body))
        if self.report and total >= _CAP:
            raise self.too_many(s, f"this repeat runs at least {count:,} times over a body "
                                   f"of {'more than ' if body >= _CAP else ''}"
                                   f"{min(body, limits.MAX_NODES):,} ops")
        return total

    # ---- expressions -----------------------------------------------------

    def expr(self, e: ast.Expr, env: dict[str, Any]) -> int:
        cost = self.visit(e, env)
        if self.report and cost >= _CAP:
            what = f"this call of {e.func}() alone" if isinstance(e, ast.Call) else "this alone"
            raise self.too_many(e, f"{what} builds more")
        return cost

    def visit_BinOp(self, e: ast.BinOp, env: dict[str, Any]) -> int:
        if e.op in ("and", "or"):
            return self.expr(e.left, env)
        return _add(self.expr(e.left, env), self.expr(e.right, env))

    def visit_IfExp(self, e: ast.IfExp, env: dict[str, Any]) -> int:
        test = _constant(e.test, env)
        if isinstance(test, bool):
            return self.expr(e.body if test else e.orelse, env)
        return _add(self.expr(e.test, env),
                    min(self.quiet(e.body, env), self.quiet(e.orelse, env)))

    def visit_Call(self, e: ast.Call, env: dict[str, Any]) -> int:
        f = e.func
        if f == "choice":
            return min((self.quiet(a.value, env) for a in e.args), default=0)
        if f in DECISION_CALLS and f != "optional":
            return 0
        if f == "optional":  # the call, or its first argument alone
            inner = e.args[0].value
            if not isinstance(inner, ast.Call):
                return self.expr(inner, env)
            pos = inner.positional[0]  # evaluated either way; the rest only with the call
            args = [self.expr(a.value, env) if a is pos else self.quiet(a.value, env)
                    for a in inner.args]
            return min(self.applied(inner, args), args[inner.args.index(pos)])
        return self.applied(e, [self.expr(a.value, env) for a in e.args])

    def applied(self, e: ast.Call, args: list[int]) -> int:
        """Ops of call ``e`` (not a decision) whose arguments cost ``args``."""
        total = _sum(args)
        d = self.p.defs.get(e.func)
        if d is not None:
            given = {a.name for a in e.args if a.kind == "kw"}
            given |= {p.name for p in d.params[: len(e.positional)]}
            defaults = _sum(self.def_expr(p.default) for p in d.params
                            if p.name not in given and p.default is not None)
            return _add(_add(total, defaults), self.def_cost(d))
        spec = ops.get(e.func)
        return _add(total, 1 if spec is not None and not spec.internal else 0)

    def quiet(self, e: ast.Expr, env: dict[str, Any]) -> int:
        """The cost of ``e``, which only some candidates evaluate: nothing to report."""
        report, self.report = self.report, False
        try:
            return self.expr(e, env)
        finally:
            self.report = report

    def def_expr(self, e: ast.Expr) -> int:
        return self.quiet(e, dict(self.p.constants))

    def def_cost(self, d: ast.Def) -> int:
        """Ops of one call of ``d``'s body; its parameters count as unknown values."""
        cost = self.defs.get(d.name)
        if cost is None:
            report, self.report = self.report, False
            env = {k: v for k, v in self.p.constants.items()
                   if k not in {p.name for p in d.params}}
            if d.expr is not None:
                cost = self.expr(d.expr, env)
            else:
                cost = self.body(d.body or (), env)
            self.report = report
            self.defs[d.name] = cost
        return cost


def _sum(costs: Any) -> int:
    total = 0
    for c in costs:
        total = _add(total, c)
    return total


def _constant(e: ast.Expr, env: dict[str, Any]) -> Any:
    """The value of a constant expression; None if it is not one (or fails to evaluate:
    elaboration reports that where it is evaluated)."""
    try:
        return const_value(e, env)
    except (NotConstant, SpecError):
        return None


def _least_count(e: ast.Expr, env: dict[str, Any]) -> int:
    """The fewest iterations a repeat with count ``e`` runs in any candidate."""
    counts: list[Any]
    if isinstance(e, ast.Call) and e.func == "int":
        counts = [_constant(a.value, env) for a in e.args[:1] if a.kind == "pos"]
    elif isinstance(e, ast.Call) and e.func == "choice":
        counts = [_constant(a.value, env) for a in e.args]
    else:
        counts = [_constant(e, env)]
    if not counts or not all(isinstance(c, int) and not isinstance(c, bool) for c in counts):
        return 0
    return max(min(counts), 0)


def _assigned(stmts: tuple[ast.Stmt, ...]) -> set[str]:
    """Names a block of statements binds, nested blocks included."""
    out: set[str] = set()
    todo = list(stmts)
    while todo:
        s = todo.pop()
        if isinstance(s, ast.Let | ast.Assign):
            out.add(s.name)
        elif isinstance(s, ast.Repeat) and s.var:
            out.add(s.var)
        todo.extend(x for x in ast.children(s) if isinstance(x, ast.Stmt))
    return out

"""Space analysis: a mode of the evaluator that explores every alternative side by side.

Analysis evaluates the spec once with every alternative of every decision
explored, recording a tree (DeepArchitect's view of a space):

- a *product* of independent parts;
- a *choice* whose alternatives each hold a sub-tree (count: the sum);
- a *repeat* whose chosen count k takes the first k iterations (count:
  sum over k of the product of the first k iteration counts);
- a numeric *leaf* (count: the size of its range).

So counting is a walk over the tree, not over the candidates: a space of 10^12
candidates counts as fast as one of ten. When a decision's *value* steers
control flow elsewhere (an `if` on a choice, a shared `let` count used by two
repeats), analysis forks: it pins that decision to each of its values in turn
and sums the counts of the passes. Forks are rare in practice and bounded by
``limits.MAX_ANALYSIS_PASSES``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..dsl import ast
from ..dsl.errors import Span, SpecError, SpecLimitError, SpecValueError
from . import limits
from .checks import Program
from .decisions import Condition, Decision
from .elaborate import Evaluator
from .modes import EvaluatorView, Mode, OpApplication, taint_of
from .values import ATENSOR, Abstract, Tensor, is_tensor

_MISSING = object()
#: tags this mode's entries in the program's op cache, apart from a build's templates
_CHECKED = "analysis"


class NeedValue(Exception):  # noqa: N818 - control flow, not an error
    """Analysis met a decision whose value steers control flow: fork on ``decision``."""

    def __init__(self, decision: Decision, span: Span):
        super().__init__(decision.name)
        self.decision, self.span = decision, span


# ---- the space tree ----------------------------------------------------------


@dataclass
class Product:
    children: list[Any] = field(default_factory=list)


@dataclass
class Leaf:
    decision: Decision


@dataclass
class Choice:
    decision: Decision
    branches: list[Product]


@dataclass
class Pinned:
    decision: Decision
    value: Any
    sub: Product


@dataclass
class RepeatNode:
    decision: Decision
    counts: tuple[int, ...]
    iterations: list[Product]


def tree_count(node: Any, discrete: bool) -> int | None:
    """Candidates under ``node``; None if a continuous decision is under it (unless discrete)."""
    t = type(node)
    if t is Product or t is Choice:  # all of the parts, or one of the branches
        product = t is Product
        total = 1 if product else 0
        for c in node.children if product else node.branches:
            n = tree_count(c, discrete)
            if n is None:
                return None
            total = total * n if product else total + n
        return total
    if t is Leaf:
        size = node.decision.size()
        return (1 if discrete else None) if size is None else size
    if t is Pinned:
        return tree_count(node.sub, discrete)
    prefix = [1]
    for it in node.iterations:
        n = tree_count(it, discrete)
        if n is None:
            return None
        prefix.append(prefix[-1] * n)
    return sum(prefix[k] for k in node.counts)


# ---- the analysis mode ---------------------------------------------------------


class AnalysisMode(Mode):
    """Explores every alternative of each decision and records the space tree of one pass.

    ``pins`` fixes the decisions an earlier pass forked on; ``budget`` is the
    evaluation steps left to the whole analysis.
    """

    def __init__(self, pins: dict[str, Any], budget: int):
        self.pins = pins
        self.budget = budget
        self.steps = 0
        self.root = Product()
        self.stack = [self.root]
        self.conds: list[Condition] = []
        #: decision name -> (decision, the condition of each place it was met)
        self.records: dict[str, tuple[Decision, list[tuple[Condition, ...]]]] = {}

    def step(self, span: Span) -> None:
        self.steps += 1
        if self.steps > self.budget:
            raise SpecLimitError(
                f"the space is too large to analyse (over {limits.MAX_ANALYSIS_STEPS:,} "
                "evaluation steps)", span,
                hint="lower repeat counts or nesting; limits are in autoarch.compiler.limits")

    def note(self, dec: Decision) -> None:
        conds = tuple(self.conds)
        seen = self.records.get(dec.name)
        if seen is None:
            self.records[dec.name] = (dec, [conds])
            return
        # The same decision may be met again in an alternative that excludes the first
        # place (optional(f(optional(g(x))))): never both in one candidate.
        if not all(_exclusive(conds, other) for other in seen[1]):
            raise SpecError(f"two decisions are both named {dec.name}", dec.span,
                            hint="rename a `let` or def so their names differ")
        seen[1].append(conds)

    def branch(self, cond: Condition) -> None:
        self.conds.append(cond)
        self.stack.append(Product())

    def end_branch(self) -> Product:
        self.conds.pop()
        return self.stack.pop()

    # ---- hooks

    def decision(self, ev: EvaluatorView, call: ast.Call, decision: Decision) -> Any:
        dec = decision
        self.note(dec)
        self.step(call.span)
        name = dec.name
        if name in self.pins:
            value = self.pins[name]
            self.branch(Condition(name, "==", value))
            result = ev.take(call, dec, value)
            self.stack[-2].children.append(Pinned(dec, value, self.end_branch()))
            return result
        if dec.kind != "categorical":
            self.stack[-1].children.append(Leaf(dec))
            return Abstract(frozenset((name,)))
        branches, results = [], []
        for label in dec.choices:
            self.branch(Condition(name, "==", label))
            results.append(ev.take(call, dec, label))
            branches.append(self.end_branch())
        self.stack[-1].children.append(Choice(dec, branches))
        if all(is_tensor(r) for r in results):
            return ATENSOR
        taint = frozenset((name,)).union(*(taint_of(r) for r in results))
        return Abstract(taint, None if any(is_tensor(r) for r in results) else False)

    def repeat(self, ev: EvaluatorView, stmt: ast.Repeat, name: str) -> None:
        """`repeat <fresh decision>` is one repeat node; any other count is evaluated."""
        c = stmt.count
        if not (type(c) is ast.Call and c.func in ("choice", "int")):
            ev.run_repeat(stmt, name)
            return
        dec = ev.decision_at(c)
        counts = dec.values() if dec.name not in self.pins else []
        if not counts or not all(isinstance(k, int) and not isinstance(k, bool) and k >= 0
                                 for k in counts):
            ev.run_repeat(stmt, name)
            return
        ev.check_repeat(max(counts), c.span)
        self.note(dec)
        self.step(c.span)
        before = dict(ev.bindings())
        iterations = []
        for i in range(max(counts)):
            self.branch(Condition(dec.name, ">=", i + 1))
            ev.iterate(stmt, name, i)
            iterations.append(self.end_branch())
        self.stack[-1].children.append(RepeatNode(dec, tuple(counts), iterations))
        for k, v in ev.bindings().items():  # values the loop changed now depend on its count
            if before.get(k, _MISSING) is not v and not is_tensor(v):
                ev.bind(k, Abstract(taint_of(v) | {dec.name}))

    def op(self, ev: EvaluatorView, app: OpApplication) -> Any:
        """Check the arguments once per distinct application; shapes stay abstract."""
        self.step(app.span)
        args = app.args
        if args is None:  # tensor arithmetic: nothing to bind
            return ATENSOR
        prog = ev.program
        # tagged: the cache is shared with a build, whose entries are templates
        key = (_CHECKED, id(app.call), tuple(v.shape if type(v) is Tensor else v if type(v) is int
                                            or type(v) is str else (type(v), v) for v in args),
               app.defaults_key() if app.defaults else ())
        try:
            if key in prog.op_cache:
                return ATENSOR
        except TypeError:  # an unhashable value: binding reports it
            key = None
        app.bind()
        if key is not None:
            prog.remember(key, True)
        return ATENSOR

    def need_value(self, ev: EvaluatorView, value: Abstract, span: Span) -> Any:
        """Fork: the analysis is re-run once per value of the decision it needs."""
        dec = self.fork_target(value.taint)
        size = dec.size()
        if size is not None and size > limits.MAX_ANALYSIS_PASSES:
            # checked before the analysis lists the values to fork on
            raise SpecLimitError(
                f"the space is too entangled to analyse: decision {dec.name} steers "
                f"control flow here and has {size:,} values; analysis makes a pass "
                f"per value, at most {limits.MAX_ANALYSIS_PASSES:,}", span,
                hint="narrow its range, or steer with a fresh choice(...)")
        raise NeedValue(dec, span)

    def fork_target(self, taint: frozenset[str]) -> Decision:
        """The decision to fork on so that a value depending on ``taint`` becomes known.

        The first-met decision of the taint; but if it exists only under another
        decision not yet pinned (an enclosing choice or repeat), that one first.
        """
        order = list(self.records)
        name = min(taint, key=order.index)
        dec, places = self.records[name]
        for atom in places[0]:
            if atom.name not in self.pins:
                return self.records[atom.name][0]
        return dec


# ---- analysis --------------------------------------------------------------



@dataclass
class Pass:
    """One analysis pass: the decisions it pinned, its tree and where it met each decision."""

    pins: dict[str, Any]
    root: Product
    records: dict[str, tuple[Decision, list[tuple[Condition, ...]]]]


def analyze_space(prog: Program) -> list[Pass]:
    """Every pass the analysis needs (one unless a decision's value steers control flow)."""
    passes: list[Pass] = []
    todo: list[dict[str, Any]] = [{}]
    steps = 0
    while todo:
        pins = todo.pop()
        rec = AnalysisMode(pins, limits.MAX_ANALYSIS_STEPS - steps)
        try:
            Evaluator(prog, rec).run()
        except NeedValue as nv:
            steps += rec.steps
            d = nv.decision
            if d.continuous:
                raise SpecValueError(
                    f"decision {d.name} is continuous; its value cannot steer `if`, `repeat` "
                    "or `and`/`or`", nv.span, hint="use choice(...) or int(...) there",
                    source=prog.source) from None
            values = d.values()
            if len(passes) + len(todo) + len(values) > limits.MAX_ANALYSIS_PASSES:
                raise SpecLimitError(
                    f"the space is too entangled to analyse: over "
                    f"{limits.MAX_ANALYSIS_PASSES:,} combinations of decisions steer control "
                    "flow", nv.span, source=prog.source,
                    hint="steer with fresh choices (choice(a, b)) rather than `if` on "
                         "shared ones") from None
            todo.extend({**pins, d.name: v} for v in reversed(values))
            continue
        steps += rec.steps
        passes.append(Pass(pins, rec.root, rec.records))
    return passes


def _exclusive(a: tuple[Condition, ...], b: tuple[Condition, ...]) -> bool:
    """Whether two conditions can never hold together (they pick different alternatives)."""
    picks = {c.name: c.value for c in a if c.op == "=="}
    return any(c.op == "==" and c.name in picks and label_key(picks[c.name]) != label_key(c.value)
               for c in b)


def label_key(v: Any) -> tuple[type, Any]:
    """A value's identity as a label: `true` and `1` are different alternatives."""
    return (type(v), v)

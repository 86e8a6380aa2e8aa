"""The search space of a spec: its decisions, their conditions, and exact counts.

Analysis evaluates the spec once with every alternative of every decision
explored side by side, recording a tree (DeepArchitect's view of a space):

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

import math
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ..dsl import ast
from ..dsl.errors import AssignmentError, Span, SpecError, SpecLimitError, SpecValueError, suggest
from . import limits
from .deciders import PrefixDecider, RandomDecider
from .decisions import Condition, Decision, make_decision
from .elaborate import Elaborator, NeedValue, _taint
from .values import ATENSOR, Abstract, is_tensor

if TYPE_CHECKING:
    from .checks import Program

_MISSING = object()


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
    if t is Product:
        total = 1
        for c in node.children:
            n = tree_count(c, discrete)
            if n is None:
                return None
            total *= n
        return total
    if t is Leaf:
        size = node.decision.size()
        return (1 if discrete else None) if size is None else size
    if t is Choice:
        total = 0
        for b in node.branches:
            n = tree_count(b, discrete)
            if n is None:
                return None
            total += n
        return total
    if t is Pinned:
        return tree_count(node.sub, discrete)
    prefix = [1]
    for it in node.iterations:
        n = tree_count(it, discrete)
        if n is None:
            return None
        prefix.append(prefix[-1] * n)
    return sum(prefix[k] for k in node.counts)


# ---- recording during analysis ------------------------------------------------


class Recorder:
    """Receives the analysis pass's decisions and builds its tree."""

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

    def decision(self, el: Elaborator, e: ast.Call, dec: Decision) -> Any:
        self.note(dec)
        self.step(e.span)
        name = dec.name
        if name in self.pins:
            value = self.pins[name]
            self.branch(Condition(name, "==", value))
            result = el.take(e, dec, value)
            self.stack[-2].children.append(Pinned(dec, value, self.end_branch()))
            return result
        if dec.kind != "categorical":
            self.stack[-1].children.append(Leaf(dec))
            return Abstract(frozenset((name,)))
        branches, results = [], []
        for label in dec.choices:
            self.branch(Condition(name, "==", label))
            results.append(el.take(e, dec, label))
            branches.append(self.end_branch())
        self.stack[-1].children.append(Choice(dec, branches))
        if all(is_tensor(r) for r in results):
            return ATENSOR
        taint = frozenset((name,)).union(*(_taint(r) for r in results))
        return Abstract(taint, None if any(is_tensor(r) for r in results) else False)

    def structural_repeat(self, el: Elaborator, s: ast.Repeat, rname: str) -> bool:
        """Record `repeat <fresh decision>` as one repeat node; False to evaluate it plainly."""
        c = s.count
        if not (type(c) is ast.Call and c.func in ("choice", "int")):
            return False
        name = el.full_name(el.p.names[id(c)])
        if name in self.pins:
            return False
        dec = el.p.decisions.get(name) or el.p.decisions.setdefault(
            name, make_decision(el.p, c, name))
        counts = dec.values()
        if not all(isinstance(k, int) and not isinstance(k, bool) and k >= 0 for k in counts):
            return False
        el.check_repeat(max(counts), c.span)
        self.note(dec)
        self.step(c.span)
        before = dict(el.env)
        iterations = []
        for i in range(max(counts)):
            self.branch(Condition(name, ">=", i + 1))
            el.iterate(s, rname, i)
            iterations.append(self.end_branch())
        self.stack[-1].children.append(RepeatNode(dec, tuple(counts), iterations))
        for k, v in el.env.items():  # values the loop changed now depend on its count
            if before.get(k, _MISSING) is not v and not is_tensor(v):
                el.env[k] = Abstract(_taint(v) | {name})
        return True

    def fork_target(self, taint: frozenset[str], span: Span) -> Decision:
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
class _Pass:
    pins: dict[str, Any]
    root: Product
    records: dict[str, tuple[Decision, list[tuple[Condition, ...]]]]


def analyze_space(prog: Program) -> list[_Pass]:
    passes: list[_Pass] = []
    todo: list[dict[str, Any]] = [{}]
    steps = 0
    while todo:
        pins = todo.pop()
        rec = Recorder(pins, limits.MAX_ANALYSIS_STEPS - steps)
        try:
            Elaborator(prog, recorder=rec).run()
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
        passes.append(_Pass(pins, rec.root, rec.records))
    return passes


def _simplify(clauses: set[frozenset[Condition]],
              domains: dict[str, list[Any]]) -> set[frozenset[Condition]]:
    """Merge clauses that differ only in an `==` atom covering a decision's whole domain."""
    changed = True
    while changed:
        changed = False
        names = {a.name for cl in clauses for a in cl if a.name in domains}
        for name in sorted(names):
            values = domains[name]
            groups: dict[frozenset[Condition], set[Any]] = {}
            for cl in clauses:
                atoms = [a for a in cl if a.name == name and a.op == "=="]
                if len(atoms) == 1:
                    groups.setdefault(cl - {atoms[0]}, set()).add(_key(atoms[0].value))
            numeric = all(isinstance(v, int) and not isinstance(v, bool) for v in values)
            for rest, seen in groups.items():
                if seen >= {_key(v) for v in values}:
                    merged = rest
                elif numeric and len(seen) > 1 and seen == {
                        _key(v) for v in values if v >= min(k for _, k in seen)}:
                    # every value from k up: `name >= k` (a repeat count, say)
                    merged = rest | {Condition(name, ">=", min(k for _, k in seen))}
                else:
                    continue
                clauses = {cl for cl in clauses
                           if not (len(cl) == len(rest) + 1 and rest <= cl
                                   and any(a.name == name and a.op == "==" for a in cl - rest))}
                clauses.add(merged)
                changed = True
                break
            if changed:
                break
    # absorption: a clause implied by a shorter one goes
    return {c for c in clauses if not any(o < c for o in clauses)}


def _exclusive(a: tuple[Condition, ...], b: tuple[Condition, ...]) -> bool:
    """Whether two conditions can never hold together (they pick different alternatives)."""
    picks = {c.name: c.value for c in a if c.op == "=="}
    return any(c.op == "==" and c.name in picks and _key(picks[c.name]) != _key(c.value)
               for c in b)


def _key(v: Any) -> tuple[type, Any]:
    return (type(v), v)


class Space:
    """The decisions of a spec and the candidates they span.

    Example:
        >>> space = autoarch.load("examples/quickstart.spec").space()
        >>> space.count()
        774
        >>> space.sample(seed=0)["digits.width"] in (32, 64, 128)
        True
    """

    def __init__(self, prog: Program):
        self._prog = prog
        self._passes = analyze_space(prog)
        self.decisions = self._collect()
        self._by_name = {d.name: d for d in self.decisions}

    def _collect(self) -> list[Decision]:
        first: dict[str, Decision] = {}
        clauses: dict[str, set[frozenset[Condition]]] = {}
        pinned: dict[str, list[Any]] = {}
        for p in self._passes:
            for name in p.pins:
                pinned.setdefault(name, p.records[name][0].values())
            for name, (dec, places) in p.records.items():
                first.setdefault(name, dec)
                for conds in places:
                    pins = [Condition(n, "==", v) for n, v in p.pins.items()
                            if n != name and not any(a.name == n for a in conds)]
                    clauses.setdefault(name, set()).add(frozenset(conds) | frozenset(pins))
        domains = {**pinned}
        for dec in first.values():
            if dec.kind == "categorical":
                domains.setdefault(dec.name, list(dec.choices))
        order = {n: i for i, n in enumerate(first)}
        out = []
        for name, dec in first.items():
            simple = _simplify(clauses[name], domains)
            ordered = sorted((tuple(sorted(c, key=lambda a: (order.get(a.name, 0), a.op)))
                              for c in simple), key=lambda c: [str(a) for a in c])
            out.append(replace(dec, conditions=tuple(ordered)))
        return out

    # -- counts

    def count(self) -> int | None:
        """Exact number of candidates; None when a continuous decision exists."""
        total = 0
        for p in self._passes:
            n = tree_count(p.root, discrete=False)
            if n is None:
                return None
            total += n
        return total

    def discrete_count(self) -> int:
        """Exact number of candidates, counting each continuous decision as one."""
        return sum(tree_count(p.root, discrete=True) for p in self._passes)  # type: ignore[misc]

    @property
    def continuous(self) -> list[Decision]:
        return [d for d in self.decisions if d.continuous]

    # -- lookups

    def __getitem__(self, name: str) -> Decision:
        try:
            return self._by_name[name]
        except KeyError:
            raise AssignmentError(f"no decision named {name}", None,
                                  hint=suggest(name, self._by_name)) from None

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __len__(self) -> int:
        return len(self.decisions)

    # -- candidates

    def sample(self, seed: int | None = None) -> dict[str, Any]:
        """A random assignment of the decisions that exist (each uniformly)."""
        run = Elaborator(self._prog, decider=RandomDecider(seed)).run()
        return dict(run.choices)

    def enumerate(self, float_points: int | None = None) -> Iterator[dict[str, Any]]:
        """Every assignment, lazily, in a fixed order (grid search).

        Continuous decisions need a ``step`` in the spec or ``float_points`` here.
        """
        prefix: list[Any] = []
        while True:
            decider = PrefixDecider(prefix, float_points)
            run = Elaborator(self._prog, decider=decider).run()
            yield dict(run.choices)
            trail = decider.trail
            for j in range(len(trail) - 1, -1, -1):
                d, v = trail[j]
                dom = decider.domain(d)
                i = next(i for i, x in enumerate(dom) if _key(x) == _key(v))
                if i + 1 < len(dom):
                    prefix = [val for _, val in trail[:j]] + [dom[i + 1]]
                    break
            else:
                return

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self.enumerate()

    def log10_count(self) -> float | None:
        n = self.count()
        return None if n is None else (math.log10(n) if n else float("-inf"))

    def to_json(self) -> dict[str, Any]:
        return {
            "count": self.count(),
            "discrete_count": self.discrete_count(),
            "decisions": [
                {"name": d.name, "kind": d.kind, "domain": d.domain_json(),
                 "condition": d.describe_condition(),
                 "conditions": [[{"name": a.name, "op": a.op, "value": a.value} for a in c]
                                for c in d.conditions],
                 "line": d.span.line if d.span else None}
                for d in self.decisions
            ],
        }

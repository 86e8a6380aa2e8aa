"""The search space of a spec: its decisions, their conditions, counts, sampling, enumeration.

The space comes from analysis (``space_analysis``): one or a few passes of the
evaluator that explore every alternative side by side and record a tree. This
module turns the passes into the decision list (with each decision's existence
condition, simplified) and counts; sampling and enumeration re-run the
evaluator with a decider.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..dsl.errors import AssignmentError, suggest
from .deciders import PrefixDecider, RandomDecider
from .deciding import elaborate
from .decisions import Condition, Decision
from .space_analysis import analyze_space, label_key, tree_count

if TYPE_CHECKING:
    from .checks import Program



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
                    groups.setdefault(cl - {atoms[0]}, set()).add(label_key(atoms[0].value))
            numeric = all(isinstance(v, int) and not isinstance(v, bool) for v in values)
            for rest, seen in groups.items():
                if seen >= {label_key(v) for v in values}:
                    merged = rest
                elif numeric and len(seen) > 1 and seen == {
                        label_key(v) for v in values if v >= min(k for _, k in seen)}:
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
        run = elaborate(self._prog, RandomDecider(seed), build=False)
        return dict(run.choices)

    def enumerate(self, float_points: int | None = None) -> Iterator[dict[str, Any]]:
        """Every assignment, lazily, in a fixed order (grid search).

        Continuous decisions need a ``step`` in the spec or ``float_points`` here.
        """
        prefix: list[Any] = []
        while True:
            decider = PrefixDecider(prefix, float_points)
            run = elaborate(self._prog, decider, build=False)
            yield dict(run.choices)
            trail = decider.trail
            for j in range(len(trail) - 1, -1, -1):
                d, v = trail[j]
                dom = decider.domain(d)
                i = next(i for i, x in enumerate(dom) if label_key(x) == label_key(v))
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

"""Deciders: what elaboration asks at each decision it meets (define-by-run).

A decider has one method, ``decide(decision) -> value``. A random decider samples,
a fixed one looks the value up, an enumerating one follows a prefix and takes the
first value after it, and an Optuna trial's ``suggest_*`` is a decider too. Every
strategy and the Python API go through this one code path.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import Any, Protocol

from ..dsl.errors import AssignmentError
from .decisions import Decision, _clean


class Decider(Protocol):
    def decide(self, decision: Decision) -> Any: ...


class RandomDecider:
    """Each decision uniformly at random (log-uniformly where ``log = true``)."""

    def __init__(self, seed: int | None = None):
        self.rng = random.Random(seed)

    def decide(self, d: Decision) -> Any:
        rng = self.rng
        if d.kind == "categorical":
            return d.choices[rng.randrange(len(d.choices))]
        if d.kind == "int":
            if d.log:
                lo, hi = math.log(d.low - 0.5), math.log(d.high + 0.5)  # type: ignore[operator]
                v = round(math.exp(rng.uniform(lo, hi)))
                return min(max(v, d.low), d.high)  # type: ignore[type-var]
            return d.low + d.step * rng.randrange(d.size())  # type: ignore[operator]
        if d.step is not None:
            return _clean(d.low + d.step * rng.randrange(d.size()))  # type: ignore[operator]
        if d.log:
            return math.exp(rng.uniform(math.log(d.low), math.log(d.high)))  # type: ignore[arg-type]
        return rng.uniform(d.low, d.high)  # type: ignore[arg-type]


class FirstDecider:
    """The first alternative and the low end of every range: a cheap, valid probe."""

    def decide(self, d: Decision) -> Any:
        return d.choices[0] if d.kind == "categorical" else d.low


class FixedDecider:
    """Values from an assignment (name -> value); values may be given as text."""

    def __init__(self, assignment: Mapping[str, Any]):
        self.assignment = assignment

    def decide(self, d: Decision) -> Any:
        if d.name not in self.assignment:
            raise AssignmentError(f"no value for decision {d.name} ({d.describe_domain()})",
                                  d.span, hint="give every decision of the candidate a value; "
                                  "`autoarch show` lists them")
        return d.coerce(self.assignment[d.name])


class PrefixDecider:
    """Follows a list of values, then takes the first value of each new decision.

    Used by lazy enumeration: after a run, ``trail`` holds (decision, value) in the
    order they were met, so the caller can advance the last one that has a next value.
    """

    def __init__(self, prefix: list[Any], float_points: int | None = None):
        self.prefix = prefix
        self.trail: list[tuple[Decision, Any]] = []
        self.float_points = float_points

    def domain(self, d: Decision) -> list[Any]:
        if d.continuous:
            if not self.float_points:
                raise AssignmentError(f"decision {d.name} is continuous and cannot be "
                                      "enumerated", d.span,
                                      hint="give float() a step, or enumerate with float_points")
            n = self.float_points
            if n == 1:
                return [d.low]
            if d.log:
                lo, hi = math.log(d.low), math.log(d.high)  # type: ignore[arg-type]
                return [math.exp(lo + (hi - lo) * i / (n - 1)) for i in range(n)]
            return [d.low + (d.high - d.low) * i / (n - 1) for i in range(n)]  # type: ignore[operator]
        return d.values()

    def decide(self, d: Decision) -> Any:
        i = len(self.trail)
        value = self.prefix[i] if i < len(self.prefix) else self.domain(d)[0]
        self.trail.append((d, value))
        return value


class OptunaDecider:
    """Asks an ``optuna.trial.Trial`` (or FrozenTrial-like object with ``suggest_*``)."""

    def __init__(self, trial: Any):
        self.trial = trial

    def decide(self, d: Decision) -> Any:
        t = self.trial
        if d.kind == "categorical":
            return t.suggest_categorical(d.name, list(d.choices))
        if d.kind == "int":
            return t.suggest_int(d.name, d.low, d.high, step=d.step, log=d.log)
        return t.suggest_float(d.name, d.low, d.high, step=d.step, log=d.log)

"""The Mode protocol: what a run of the evaluator is for.

The language has one meaning and one evaluator (``elaborate.Evaluator``). What a
run produces differs: a candidate's graph, an assignment, the space tree, a
setting's value. Each purpose is a :class:`Mode`; the evaluator calls its hooks
where the purposes part ways (a decision, a repeat, an op application, a step,
a requirement, the model's input and output) and never looks at a mode's state,
and a mode reaches the evaluator only through :class:`EvaluatorView`. So a new
use of the language is one new Mode class.

The modes: ``deciding.BuildMode`` (the IR graph), ``deciding.SampleMode``
(decisions only), ``deciding.SettingsMode`` (settings and constraints, no
decisions) and ``space_analysis.AnalysisMode`` (every alternative side by side).

This module imports nothing of the evaluator, so modes and evaluator do not
depend on each other in a circle.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from ..dsl import ast
from ..dsl.errors import Span, SpecError, SpecNameError, SpecTypeError
from .checks import Program
from .decisions import Decision
from .ir_nodes import Plan, convert
from .ops.registry import REQUIRED, OpSpec
from .values import ATENSOR, Abstract, Symbol, Tensor

_MISSING = object()


def taint_of(v: Any) -> frozenset[str]:
    """The decisions an unknown value depends on (none for a known one)."""
    return v.taint if type(v) is Abstract else frozenset()


class EvaluatorView(Protocol):
    """What a mode may ask of the evaluator; everything else in it is private."""

    @property
    def program(self) -> Program:
        """The program being run (its caches are shared: key entries by mode)."""

    @property
    def scope(self) -> str:
        """The dynamic scope path here: ``digits.i[1].block``."""

    def bindings(self) -> Mapping[str, Any]:
        """The local names bound here (read-only)."""

    def bind(self, name: str, value: Any) -> None:
        """Rebind a local name."""

    def decision_at(self, call: ast.Call) -> Decision:
        """The decision a decision call makes here, named by the scope."""

    def take(self, call: ast.Call, decision: Decision, value: Any) -> Any:
        """Evaluate decision ``call`` as if ``value`` were chosen (may run once per label)."""

    def run_repeat(self, stmt: ast.Repeat, name: str) -> None:
        """A `repeat` with its plain meaning: evaluate the count, run that many iterations."""

    def check_repeat(self, count: int, span: Span) -> None:
        """Check a repeat's largest count against the limits before iterating."""

    def iterate(self, stmt: ast.Repeat, name: str, i: int) -> None:
        """Run iteration ``i`` of a repeat, scoped ``name[i]``."""


class OpApplication:
    """One application of an op, as the evaluator met it: what :meth:`Mode.op` receives.

    Binding the arguments (``with`` defaults, argument checks) is the costly part
    of an op, so it happens only when a mode asks (:meth:`bind`): a build that
    finds the application in its cache does not. For a call site, ``args`` holds
    the evaluated arguments in the order of ``plan``; for an op that tensor
    arithmetic stands for (``a + b`` is ``add``), ``values`` holds them bound.
    The attributes are read-only.
    """

    __slots__ = ("spec", "span", "call", "plan", "args", "values", "defaults", "_unknown")

    def __init__(self, spec: OpSpec, span: Span, call: ast.Call | None, plan: Plan | None,
                 args: list[Any] | None, values: dict[str, Any] | None,
                 defaults: Mapping[str, tuple[Any, Span]],
                 unknown: Callable[[Symbol, Span], SpecNameError] | None):
        self.spec, self.span, self.call, self.plan = spec, span, call, plan
        self.args, self.values, self.defaults, self._unknown = args, values, defaults, unknown

    def inputs(self) -> list[Tensor]:
        """The concrete tensors fed to the op, in argument order (none outside a build)."""
        vals = self.args if self.values is None else self.values.values()
        return [v for v in vals if type(v) is Tensor]  # type: ignore[union-attr]

    def cache_key(self) -> Any:
        """A key equal for applications with equal results (the call site, the argument
        values, tensors by shape, the `with` defaults in effect). It may hold an
        unhashable value (a list argument): then a cache lookup raises TypeError."""
        if self.values is not None:  # tensor arithmetic: the op and its operands
            tag = {"add": "+", "mul": "*"}.get(self.spec.name, self.spec.name)
            return (tag,) + tuple(_key(v) for v in self.values.values())
        return (id(self.call), tuple(_key(v) for v in self.args),  # type: ignore[union-attr]
                self.defaults_key() if self.defaults else ())

    def defaults_key(self) -> tuple[Any, ...]:
        """The `with` defaults in effect for the arguments the call leaves out."""
        d = self.defaults
        return tuple(d[n][0] if n in d else _MISSING for n in self.plan.rest)  # type: ignore[union-attr]

    def bind(self) -> tuple[dict[str, Any], dict[str, Span]]:
        """Argument values by name, checked and converted, with the span of each."""
        if self.values is not None:
            return self.values, {}
        spec, plan, call, unknown = self.spec, self.plan, self.call, self._unknown
        assert plan is not None and self.args is not None and call is not None
        values = dict(zip(plan.names, self.args, strict=True))
        spans = dict(zip(plan.names, plan.spans, strict=True))
        defaults = self.defaults
        for name in plan.rest:
            a_spec = spec.by_name[name]
            d = defaults.get(name)
            if d is not None:
                try:  # a `with` default applies where it suits this op
                    values[name] = convert(spec, a_spec, d[0], d[1], unknown)  # type: ignore[arg-type]
                    spans[name] = d[1]
                    continue
                except SpecError:
                    if a_spec.default is REQUIRED:
                        raise
            if a_spec.default is REQUIRED:
                raise SpecTypeError(f"{spec.name}() is missing argument '{name}'", call.span,
                                    hint="it takes " + ", ".join(a.name for a in spec.args))
            values[name] = a_spec.default
        for name in plan.names:
            values[name] = convert(spec, spec.by_name[name], values[name], spans[name],
                                   unknown)  # type: ignore[arg-type]
        return values, spans


class Mode:
    """The hooks where uses of the language differ, with the defaults of a run that
    builds nothing: tensors stay abstract, requirements go unchecked, decisions are
    an error. Override what your use needs.

    A mode may explore every alternative of a decision, not just one: its
    ``decision`` hook can call ``ev.take`` once per label and combine the results
    (space analysis does; a supernet can emit the alternatives side by side the
    same way). ``take`` evaluates an expression only, so no binding leaks from
    one alternative into the next.
    """

    def decision(self, ev: EvaluatorView, call: ast.Call, decision: Decision) -> Any:
        """The value of the decision made at ``call``: usually ``ev.take(call, decision, v)``."""
        raise SpecError(f"this evaluation cannot hold decisions ({decision.name})", call.span)

    def repeat(self, ev: EvaluatorView, stmt: ast.Repeat, name: str) -> None:
        """Run a `repeat` statement whose iterations are scoped ``name[i]``."""
        ev.run_repeat(stmt, name)

    def op(self, ev: EvaluatorView, app: OpApplication) -> Any:
        """The value of an op application: a tensor, or an abstract one.

        A mode that keeps this default (tensors stay abstract) pays nothing per op:
        the evaluator then skips making the application.
        """
        return ATENSOR

    def step(self, span: Span) -> None:
        """A unit of work: each statement, repeat iteration and def call (for a budget).

        The evaluator calls it only if a mode overrides it, so a build pays nothing.
        """

    def need_value(self, ev: EvaluatorView, value: Abstract, span: Span) -> Any:
        """A value this mode left unknown steers control flow at ``span``: make it known
        (return it) or stop the run (analysis forks on it)."""
        raise SpecError("internal: unknown value outside analysis", span)

    def require(self, ev: EvaluatorView, stmt: ast.Require, cond: Any) -> None:
        """A `require` statement's condition evaluated to ``cond``."""

    def model_input(self, ev: EvaluatorView, model: ast.Model, shape: tuple[int, ...]) -> Any:
        """The value of the model's input (of ``shape``, batch left out)."""
        return ATENSOR

    def model_output(self, ev: EvaluatorView, ret: ast.Return, value: Any,
                     shape: tuple[int, ...]) -> None:
        """The model returns tensor ``value`` and declares ``shape``."""


def _key(v: Any) -> Any:
    """An argument in a cache key: a tensor by its shape, other values with their type
    (``2`` and ``2.0``, ``1`` and ``true`` are equal in Python, not in a graph)."""
    if type(v) is Tensor:
        return v.shape
    return v if type(v) is int or type(v) is str else (type(v), v)

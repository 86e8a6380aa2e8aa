"""The modes that decide: build a candidate's graph, or sample its assignment only.

Both ask a decider at each decision they meet (define-by-run) and record the
assignment; they differ in what an op application produces. A build runs each
op's shape, parameter and FLOP rules and adds a node to the graph; sampling
leaves tensors abstract, because only the decisions matter there and a build
checks the ops anyway. :class:`SettingsMode` evaluates settings and constraints,
where decisions are not allowed. Space analysis is the fourth mode
(``space_analysis.AnalysisMode``); the protocol is in ``modes.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..dsl import ast
from ..dsl.errors import RequireError, ShapeError, Span, SpecError, SpecLimitError, SpecValueError
from . import arith, limits, ops
from .checks import Program
from .deciders import Decider
from .decisions import Decision
from .elaborate import Elaboration, Evaluator, Settings
from .ir_nodes import NodeRecord, Template
from .modes import EvaluatorView, Mode, OpApplication
from .ops.registry import OpCall, OpError, OpSpec
from .values import Abstract, Tensor

#: how the cache keys of tensor arithmetic name their op (as OpApplication.cache_key)
_TAGS = {"add": "+", "mul": "*"}


class DecidingMode(Mode):
    """Asks ``decider`` at each decision and records the assignment in ``choices``."""

    def __init__(self, decider: Decider):
        self.decider = decider
        self.choices: dict[str, Any] = {}
        self.invalid: SpecError | None = None

    def decision(self, ev: EvaluatorView, call: ast.Call, decision: Decision) -> Any:
        name = decision.name
        if name in self.choices:
            raise SpecError(f"two decisions are both named {name}", call.span,
                            hint="rename a `let` or def so their names differ")
        value = self.decider.decide(decision)
        self.choices[name] = value
        return ev.take(call, decision, value)

    def require(self, ev: EvaluatorView, stmt: ast.Require, cond: Any) -> None:
        if type(cond) is Abstract or arith.truth(cond, stmt.cond.span):
            return
        self.failed(ev, RequireError(stmt.message or "requirement does not hold",
                                     stmt.cond.span))

    def failed(self, ev: EvaluatorView, err: SpecError) -> None:
        """The candidate is invalid; sampling records the first reason and goes on."""
        if self.invalid is None:
            self.invalid = err.with_source(ev.program.source)

    def result(self, settings: Settings) -> Elaboration:
        """What the run produced, with the settings the evaluator returned."""
        return Elaboration(self.choices, train=settings.train, search=settings.search,
                           invalid=self.invalid)


class SampleMode(DecidingMode):
    """Decides without building: tensors stay abstract, ops are not checked."""


class BuildMode(DecidingMode):
    """Decides and builds the candidate's IR graph: every op becomes a node."""

    def __init__(self, decider: Decider):
        super().__init__(decider)
        self.nodes: list[NodeRecord] = []
        self.edges: list[tuple[int, int, int]] = []
        self.output: int | None = None

    def failed(self, ev: EvaluatorView, err: SpecError) -> None:
        raise err

    def result(self, settings: Settings) -> Elaboration:
        out = super().result(settings)
        out.nodes, out.edges, out.output = self.nodes, self.edges, self.output
        return out

    def model_input(self, ev: EvaluatorView, model: ast.Model, shape: tuple[int, ...]) -> Any:
        return self.add_node(ev, ops.get("input"), {"shape": shape}, [], shape, model.span,
                             name=model.input_name)

    def model_output(self, ev: EvaluatorView, ret: ast.Return, value: Any,
                     shape: tuple[int, ...]) -> None:
        if value.shape != shape:
            raise ShapeError(f"model '{ev.program.model.name}' returns shape "
                             f"{list(value.shape)} but declares -> {list(shape)}",
                             ret.value.span)
        self.output = self.add_node(ev, ops.get("output"), {}, [value], shape, ret.span).node

    def op(self, ev: EvaluatorView, app: OpApplication) -> Any:
        prog = ev.program
        args = app.args
        # app.cache_key() and app.inputs(), inline: this is the hot path of a build
        if args is not None:
            # (int and str values as they are; others with their type: 2 and 2.0 differ)
            key: Any = (id(app.call), tuple(v.shape if type(v) is Tensor else v if type(v) is int
                                            or type(v) is str else (type(v), v) for v in args),
                        app.defaults_key() if app.defaults else ())
        else:
            args = app.values.values()  # type: ignore[union-attr]
            key = (_TAGS.get(app.spec.name, app.spec.name),) + tuple(
                v.shape if type(v) is Tensor else v if type(v) is int or type(v) is str
                else (type(v), v) for v in args)
        try:  # other modes tag their keys: a hit here is always a Template
            hit = prog.op_cache.get(key)
        except TypeError:  # an unhashable value: no caching, binding reports it
            key, hit = None, None
        if hit is None:
            values, spans = app.bind()
            hit = op_template(app.spec, values, spans, app.span)
            if key is not None:
                prog.remember(key, hit)
        return self.instantiate(ev, hit, [v for v in args if type(v) is Tensor], app.span)

    def add_node(self, ev: EvaluatorView, spec: OpSpec, attrs: dict[str, Any], inputs: list[Tensor],
                 shape: tuple[int, ...], span: Span, name: str | None = None) -> Tensor:
        template = Template(spec.name, attrs, shape, tuple(t.shape for t in inputs), 0, 0, 0, 0)
        return self.instantiate(ev, template, inputs, span, name)

    def instantiate(self, ev: EvaluatorView, t: Template, inputs: list[Tensor], span: Span,
                    name: str | None = None) -> Tensor:
        """Add a node made from ``t`` fed by ``inputs``."""
        nodes = self.nodes
        nid = len(nodes)
        if nid >= limits.MAX_NODES:
            raise SpecLimitError(f"candidate has more than {limits.MAX_NODES:,} ops", span)
        nodes.append(NodeRecord(t, span, ev.scope, name))
        edges = self.edges
        for pos, x in enumerate(inputs):
            edges.append((x.node, nid, pos))
        return Tensor(nid, t.shape)


def op_template(spec: OpSpec, values: dict[str, Any], spans: dict[str, Span],
                span: Span) -> Template:
    """Run an op's shape, parameter and FLOP rules on bound values: a node, minus its place."""
    args = {}
    in_shapes = []
    for k, v in values.items():
        if type(v) is Tensor:
            args[k] = v.shape
            in_shapes.append(v.shape)
        else:
            args[k] = v
    call = OpCall(spec.name, args)
    try:
        shape = spec.shape(call)
        call.out_shape = shape
        n_params = spec.params(call)
        flops = spec.flops(call)
    except OpError as err:
        where = spans.get(err.arg, span) if err.arg else span
        # "error": a rule that failed (a user op's bug), not a verdict on the candidate
        cls = {"shape": ShapeError, "value": SpecValueError}.get(err.kind, SpecError)
        raise cls(err.message, where, hint=err.hint) from None
    for d in shape:
        if d < 1:
            raise ShapeError(f"{spec.name} would produce an empty shape {list(shape)}", span)
        if d > limits.MAX_DIM:
            raise SpecLimitError(f"{spec.name} would produce dimension {d:,}, over the "
                                 f"limit {limits.MAX_DIM:,}", span)
    attrs = {k: v for k, v in args.items() if type(values[k]) is not Tensor}
    return Template(
        spec.name, attrs, tuple(shape), tuple(in_shapes), n_params,
        0 if attrs.get("frozen", False) and spec.takes_common("frozen") else n_params, flops,
        spec.sparse_weights(call) if spec.parametric else 0)


class SettingsMode(Mode):
    """Settings and constraints: constants and costs only, so a decision is an error."""

    def decision(self, ev: EvaluatorView, call: ast.Call, decision: Decision) -> Any:
        raise SpecError("the search block and constraints cannot hold decisions "
                        f"({decision.name})", decision.span)


def elaborate(prog: Program, decider: Decider, *, build: bool = True) -> Elaboration:
    """Run ``prog`` with ``decider`` answering every decision; build the graph if ``build``."""
    mode = BuildMode(decider) if build else SampleMode(decider)
    settings = Evaluator(prog, mode).run()
    return mode.result(settings)


def evaluate_expr(prog: Program, expr: ast.Expr, *, env: Mapping[str, Any] | None = None,
                  globals: Mapping[str, Any] | None = None,
                  scope: tuple[str, ...] = ()) -> Any:
    """Evaluate one settings or constraint expression (no decisions allowed).

    Example:
        >>> evaluate_expr(prog, constraint.expr, env=graph.costs(), globals=prog.constants)
        True
    """
    return Evaluator(prog, SettingsMode()).evaluate(expr, env=env, globals=globals, scope=scope)


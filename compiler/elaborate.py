"""Elaboration: evaluate a spec's AST, asking a decider at each decision (define-by-run).

One evaluator serves three uses:

- **build** (``build=True``): decisions come from a decider; every op becomes a
  node of the candidate graph with its shapes, parameters and FLOPs.
- **light** (``build=False``): decisions come from a decider, tensors stay
  abstract: sampling and enumeration of assignments, with no graph built.
- **analysis** (``recorder`` given): no decider; every alternative of every
  decision is explored, and the recorder builds the space tree that counting,
  the decision list and conditions come from (see ``space.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..dsl import ast
from ..dsl.errors import (
    RequireError,
    ShapeError,
    Span,
    SpecError,
    SpecLimitError,
    SpecNameError,
    SpecTypeError,
    SpecValueError,
    closest,
    suggest,
)
from . import arith, limits, ops, settings
from .checks import DECISION_CALLS, NotConstant, Program, const_value
from .decisions import Decision, make_decision
from .ir_nodes import CHECKED, NodeRecord, Plan, Template, convert, dim
from .ops.registry import REQUIRED, OpCall, OpError, OpSpec
from .values import ATENSOR, Abstract, Symbol, SymbolCall, Tensor, is_tensor, type_name

if TYPE_CHECKING:
    from .deciders import Decider
    from .space import Recorder

_MISSING = object()


class NeedValue(Exception):  # noqa: N818 - control flow, not an error
    """Analysis met a decision whose value steers control flow: fork on ``decision``."""

    def __init__(self, decision: Decision, span: Span):
        super().__init__(decision.name)
        self.decision, self.span = decision, span


@dataclass
class Elaboration:
    """What one run produced."""

    choices: dict[str, Any]
    nodes: list[NodeRecord] = field(default_factory=list)
    edges: list[tuple[int, int, int]] = field(default_factory=list)
    output: int | None = None
    train: dict[str, Any] = field(default_factory=dict)
    search: dict[str, Any] = field(default_factory=dict)
    #: why the candidate is invalid (light mode records instead of raising)
    invalid: SpecError | None = None


class Elaborator:
    def __init__(self, prog: Program, *, decider: Decider | None = None, build: bool = False,
                 recorder: Recorder | None = None):
        self.p = prog
        self.decider = decider
        self.build = build
        self.rec = recorder
        #: deciding without building: ops need no checking (a build checks them)
        self.light = not build and recorder is None
        self.choices: dict[str, Any] = {}
        self.scope: list[str] = []
        self.scope_str = ""
        self.prefix = ""
        self.defaults: dict[str, tuple[Any, Span]] = {}
        self.env: dict[str, Any] = {}
        self.globals: dict[str, Any] = {}
        self.out = Elaboration(self.choices)
        self.invalid: SpecError | None = None
        #: product of the counts of the repeats being run, and each repeat's count
        #: (keyed by its count's span: `check_repeat` sees the span, `iterate` the node)
        self.nesting = 1
        self.loop_counts: dict[Span, int] = {}
        self._eval = {
            ast.Number: self._literal, ast.String: self._literal, ast.Bool: self._literal,
            ast.Name: self._name, ast.ListExpr: self._list, ast.Call: self._call,
            ast.BinOp: self._binop, ast.UnaryOp: self._unary, ast.Compare: self._compare,
            ast.IfExp: self._ifexp,
        }

    # ---- driver ----------------------------------------------------------

    def run(self) -> Elaboration:
        try:
            self._run()
        except SpecError as e:
            raise e.with_source(self.p.source) from None
        self.out.invalid = self.invalid
        return self.out

    def _run(self) -> None:
        p = self.p
        for let in p.lets:
            self.globals[let.name] = self.eval(let.value)
        m = p.model
        self.push(m.name)
        in_shape = self.shape_of(m.input_shape)
        x = self.add_node(ops.get("input"), {"shape": in_shape}, (), in_shape, m.span,
                          name=m.input_name) if self.build else ATENSOR
        self.env = {m.input_name: x}
        self.exec_body(m.body[:-1])
        ret: ast.Return = m.body[-1]  # type: ignore[assignment]
        value = self.eval(ret.value)
        out_shape = self.shape_of(m.output_shape)
        if not is_tensor(value):
            raise SpecTypeError(f"a model returns a tensor, got {type_name(value)}",
                                ret.value.span)
        if self.build:
            if value.shape != out_shape:
                raise ShapeError(f"model '{m.name}' returns shape {list(value.shape)} but "
                                 f"declares -> {list(out_shape)}", ret.value.span)
            self.out.output = self.add_node(ops.get("output"), {}, (value,), out_shape,
                                            ret.span).node
        self.pop()
        for blk, word in ((p.train, "train"), (p.search, "search")):
            if blk is None:
                continue
            self.env = {}
            self.push(word)
            target = self.out.train if word == "train" else self.out.search
            for s in blk.settings:
                if s.name in target:
                    raise SpecError(f"{word} setting '{s.name}' is given twice", s.span)
                target[s.name] = settings.check_setting(word, s.name, self.eval(s.value),
                                                      s.value.span, s.span)
            self.pop()

    def shape_of(self, dims: tuple[ast.Expr, ...]) -> tuple[int, ...]:
        out = []
        for e in dims:
            try:
                v = const_value(e, self.p.constants)
            except NotConstant:
                raise SpecValueError("model shapes must be constants (numbers or top-level "
                                     "`let` constants)", e.span) from None
            out.append(dim(v, e.span))
        return tuple(out)

    # ---- scopes ----------------------------------------------------------

    def push(self, part: str) -> None:
        self.scope.append(part)
        self.scope_str = ".".join(self.scope)
        self.prefix = self.scope_str + "."

    def pop(self) -> None:
        self.scope.pop()
        self.scope_str = ".".join(self.scope)
        self.prefix = self.scope_str + "." if self.scope else ""

    def full_name(self, local: str) -> str:
        return self.prefix + local if local else self.prefix[:-1] or "return"

    # ---- statements ------------------------------------------------------

    def exec_body(self, stmts: tuple[ast.Stmt, ...]) -> None:
        rec = self.rec
        for s in stmts:
            if rec is not None:  # each pass of an analysis re-runs every statement
                rec.step(s.span)
            t = type(s)
            if t is ast.Assign or t is ast.Let:
                self.env[s.name] = self.eval(s.value)  # type: ignore[union-attr]
            elif t is ast.Repeat:
                self.exec_repeat(s)  # type: ignore[arg-type]
            elif t is ast.With:
                self.exec_with(s)  # type: ignore[arg-type]
            elif t is ast.Require:
                self.exec_require(s)  # type: ignore[arg-type]

    def exec_with(self, s: ast.With) -> None:
        new = dict(self.defaults)
        allowed = ops.attribute_names()
        for b in s.bindings:
            if b.name not in allowed:
                raise SpecNameError(f"no op takes an argument '{b.name}' for `with` to default",
                                    b.span, hint=suggest(b.name, allowed))
            value = self.eval(b.value)
            self.check_default(b.name, value, b.value.span)
            new[b.name] = (value, b.value.span)
        saved, self.defaults = self.defaults, new
        try:
            self.exec_body(s.body)
        finally:
            self.defaults = saved

    def check_default(self, name: str, value: Any, span: Span) -> None:
        """A `with` value must suit at least one op taking ``name`` (it applies where it suits)."""
        if type(value) is Abstract:
            return
        first: SpecError | None = None
        for spec in ops.all_specs():
            a_spec = spec.by_name.get(name)
            if a_spec is None or spec.internal:
                continue
            try:
                convert(spec, a_spec, value, span, self.unknown)
                return
            except SpecError as e:
                first = first or e
        if first is not None:  # no op takes it: say why the first one does not
            raise type(first)(f"`with {name}` suits no op: {first.message}", span,
                              hint=first.hint)

    def exec_require(self, s: ast.Require) -> None:
        cond = self.eval(s.cond)
        if self.rec is not None or type(cond) is Abstract:
            return
        if not arith.truth(cond, s.cond.span):
            err = RequireError(s.message or "requirement does not hold", s.cond.span)
            if self.build:
                raise err
            if self.invalid is None:
                self.invalid = err.with_source(self.p.source)

    def exec_repeat(self, s: ast.Repeat) -> None:
        name = self.p.names[id(s)]
        if self.rec is not None and self.rec.structural_repeat(self, s, name):
            return
        count = self.concrete(self.eval(s.count), s.count.span)
        if isinstance(count, float) and count.is_integer():
            count = int(count)
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            got = repr(count) if arith.is_number(count) else type_name(count)
            raise SpecValueError(f"repeat needs a whole count >= 0, got {got}", s.count.span)
        self.check_repeat(count, s.count.span)
        for i in range(count):
            self.iterate(s, name, i)

    def check_repeat(self, count: int, span: Span) -> None:
        """Check a repeat's (largest) count, at ``span``, before its iterations run."""
        if count > limits.MAX_REPEAT:
            raise SpecLimitError(f"repeat count {count:,} exceeds the limit "
                                 f"{limits.MAX_REPEAT:,}", span)
        total = self.nesting * count
        if total > limits.MAX_NESTED_ITERATIONS:
            raise SpecLimitError(
                f"nested repeats would run {total:,} iterations, over the limit "
                f"{limits.MAX_NESTED_ITERATIONS:,}", span,
                hint="lower the counts of this repeat or of the repeats around it")
        self.loop_counts[span] = count

    def iterate(self, s: ast.Repeat, name: str, i: int) -> None:
        if self.rec is not None:
            self.rec.step(s.span)
        outer = self.nesting
        self.nesting = outer * self.loop_counts.get(s.count.span, 1)
        self.push(f"{name}[{i}]")
        if s.var is not None:
            self.env[s.var] = i
        self.exec_body(s.body)
        self.pop()
        self.nesting = outer

    # ---- expressions -----------------------------------------------------

    def eval(self, e: ast.Expr) -> Any:
        return self._eval[type(e)](e)

    def _literal(self, e: ast.Number | ast.String | ast.Bool) -> Any:
        return e.value

    def _name(self, e: ast.Name) -> Any:
        v = self.env.get(e.id, _MISSING)
        if v is _MISSING:
            v = self.globals.get(e.id, _MISSING)
            if v is _MISSING:
                if e.id in self.p.defs:
                    raise SpecTypeError(f"def '{e.id}' must be called: {e.id}(...)", e.span)
                return Symbol(e.id)
        return v

    def _list(self, e: ast.ListExpr) -> tuple[Any, ...]:
        return tuple(self.eval(x) for x in e.items)

    def known_names(self) -> list[str]:
        return list(self.env) + list(self.globals)

    def unknown(self, sym: Symbol, span: Span) -> SpecNameError:
        """A bare name used as a value: it is not bound here (so it reads as a symbol)."""
        known = self.known_names()
        near = closest(sym.name, known)
        if near:
            hint = "did you mean " + " or ".join(f"'{n}'" for n in near) + "?"
        elif known:
            shown = sorted(known)
            hint = "names bound here: " + ", ".join(shown[:12]) + (", ..." if len(shown) > 12
                                                                  else "")
        else:
            hint = "no names are bound here"
        return SpecNameError(f"unknown name '{sym.name}'", span, hint=hint)

    def _binop(self, e: ast.BinOp) -> Any:
        op = e.op
        if op == "and" or op == "or":
            left = self.concrete(self.eval(e.left), e.left.span)
            if type(left) is Symbol:
                raise self.unknown(left, e.left.span)
            if arith.truth(left, e.left.span) == (op == "or"):
                return left
            return self.eval(e.right)
        a, b = self.eval(e.left), self.eval(e.right)
        ta, tb = type(a), type(b)
        if ta is Symbol and op in "+-*/%" and tb is not Symbol:
            raise self.unknown(a, e.left.span)
        if tb is Symbol and ta is not Symbol:
            raise self.unknown(b, e.right.span)
        if ta is Abstract or tb is Abstract:
            if is_tensor(a) or is_tensor(b):
                return self.tensor_arith(op, a, b, e)
            return Abstract(_taint(a) | _taint(b))
        if ta is Tensor or tb is Tensor:
            return self.tensor_arith(op, a, b, e)
        return arith.binop(op, a, b, e.span)

    def tensor_arith(self, op: str, a: Any, b: Any, e: ast.BinOp) -> Any:
        if type(a) is Tensor and type(b) is Tensor and (op == "+" or op == "*"):
            hit = self.p.op_cache.get((op, a.shape, b.shape))  # the common residual add
            if hit is not None:
                return self.instantiate(hit, [a, b], e.span)
        both = is_tensor(a) and is_tensor(b)
        if op == "+" and both:
            return self.apply(ops.get("add"), {"a": a, "b": b}, e.span, {})
        if op == "*" and both:
            return self.apply(ops.get("mul"), {"a": a, "b": b}, e.span, {})
        if op == "*":
            x, f = (a, b) if is_tensor(a) else (b, a)
            if arith.is_number(f) or type(f) is Abstract:
                return self.apply(ops.get("scale"), {"x": x, "factor": f}, e.span, {})
        raise SpecTypeError(f"cannot apply '{op}' to {type_name(a)} and {type_name(b)}", e.span,
                            hint="tensors support a + b (residual), a * b (gating) and "
                                 "number * tensor")

    def _unary(self, e: ast.UnaryOp) -> Any:
        v = self.eval(e.operand)
        if type(v) is Abstract and not is_tensor(v):
            if e.op == "not":
                self.concrete(v, e.span)
            return v
        if is_tensor(v):
            if e.op == "+":
                return v
            if e.op == "-":
                return self.apply(ops.get("scale"), {"x": v, "factor": -1}, e.span, {})
        if type(v) is Symbol:
            raise self.unknown(v, e.operand.span)
        return arith.unary(e.op, v, e.span)

    def _compare(self, e: ast.Compare) -> Any:
        values = [self.eval(x) for x in e.operands]
        for v, x in zip(values, e.operands, strict=True):
            if is_tensor(v):
                raise SpecTypeError("tensors cannot be compared", x.span)
        if any(type(v) is Abstract for v in values):
            return Abstract(frozenset().union(*(_taint(v) for v in values)))
        for i, op in enumerate(e.ops):
            if not arith.compare(op, values[i], values[i + 1], e.span):
                return False
        return True

    def _ifexp(self, e: ast.IfExp) -> Any:
        test = self.concrete(self.eval(e.test), e.test.span)
        if type(test) is Symbol:
            raise self.unknown(test, e.test.span)
        return self.eval(e.body if arith.truth(test, e.test.span) else e.orelse)

    def concrete(self, v: Any, span: Span) -> Any:
        """The value itself; during analysis, an unknown one forks the analysis."""
        if type(v) is Abstract and not v.tensor:
            if self.rec is None:
                raise SpecError("internal: unknown value outside analysis", span)
            dec = self.rec.fork_target(v.taint, span)
            size = dec.size()
            if size is not None and size > limits.MAX_ANALYSIS_PASSES:
                # checked before the analysis lists the values to fork on
                raise SpecLimitError(
                    f"the space is too entangled to analyse: decision {dec.name} steers "
                    f"control flow here and has {size:,} values; analysis makes a pass "
                    f"per value, at most {limits.MAX_ANALYSIS_PASSES:,}", span,
                    hint="narrow its range, or steer with a fresh choice(...)")
            raise NeedValue(dec, span)
        return v

    # ---- calls -----------------------------------------------------------

    def _call(self, e: ast.Call) -> Any:
        target = self.p.targets.get(id(e))
        if target is None:
            target = self.p.targets[id(e)] = self.resolve(e)
        kind, obj = target
        if kind == 0:
            return self.call_op(e, obj)
        if kind == 1:
            return self.decision(e)
        if kind == 2:
            return self.call_def(e, obj)
        args = tuple(self.eval(a.value) for a in e.args if a.kind == "pos")
        kwargs = tuple((a.name, self.eval(a.value)) for a in e.args if a.kind == "kw")
        return SymbolCall(e.func, args, kwargs)  # type: ignore[arg-type]

    def resolve(self, e: ast.Call) -> tuple[int, Any]:
        """What a call site calls: (0, op), (1, decision builtin), (2, def) or (3, symbol)."""
        f = e.func
        if f in DECISION_CALLS:
            return (1, None)
        d = self.p.defs.get(f)
        if d is not None:
            return (2, d)
        spec = ops.get(f)
        if spec is not None and not spec.internal:
            return (0, spec)
        return (3, None)

    def call_def(self, e: ast.Call, d: ast.Def) -> Any:
        env: dict[str, Any] = {}
        pos = [a for a in e.args if a.kind == "pos"]
        for prm, a in zip(d.params, pos, strict=False):
            env[prm.name] = self.eval(a.value)
        for a in e.args:
            if a.kind == "kw":
                env[a.name] = self.eval(a.value)  # type: ignore[index]
        saved = self.env
        self.env = env
        self.push(self.p.names[id(e)])
        if self.rec is not None:
            self.rec.step(e.span)
        try:
            for prm in d.params:
                if prm.name not in env:
                    env[prm.name] = self.eval(prm.default)  # type: ignore[arg-type]
            if d.expr is not None:
                return self.eval(d.expr)
            self.exec_body(d.body[:-1])  # type: ignore[index]
            return self.eval(d.body[-1].value)  # type: ignore[index, union-attr]
        finally:
            self.pop()
            self.env = saved

    def call_op(self, e: ast.Call, spec: OpSpec) -> Any:
        plan = self.p.plans.get(id(e))
        if plan is None:
            plan = self.p.plans[id(e)] = Plan.make(e, spec)
        vals = [self.eval(x) for x in plan.exprs]
        if self.light:  # sampling: only the decisions matter; building checks the op
            return ATENSOR
        defaults = self.defaults
        if defaults:
            dflt = tuple(defaults[n][0] if n in defaults else _MISSING for n in plan.rest)
        else:
            dflt = ()
        key = (id(e), tuple(v.shape if type(v) is Tensor else v for v in vals), dflt)
        try:
            hit = self.p.op_cache.get(key)
        except TypeError:  # an unhashable value: no caching, the slow path reports it
            key, hit = None, None
        if hit is not None:
            return self.instantiate(hit, [v for v in vals if type(v) is Tensor], e.span)
        values = dict(zip(plan.names, vals, strict=True))
        spans = dict(zip(plan.names, plan.spans, strict=True))
        for name in plan.rest:
            a_spec = spec.by_name[name]
            d = defaults.get(name)
            if d is not None:
                try:  # a `with` default applies where it suits this op
                    values[name] = convert(spec, a_spec, d[0], d[1], self.unknown)
                    spans[name] = d[1]
                    continue
                except SpecError:
                    if a_spec.default is REQUIRED:
                        raise
            if a_spec.default is REQUIRED:
                raise SpecTypeError(f"{spec.name}() is missing argument '{name}'", e.span,
                                    hint="it takes " + ", ".join(a.name for a in spec.args))
            values[name] = a_spec.default
        for name in plan.names:
            values[name] = convert(spec, spec.by_name[name], values[name], spans[name],
                                  self.unknown)
        return self.apply(spec, values, e.span, spans, key)

    def apply(self, spec: OpSpec, values: dict[str, Any], span: Span,
              spans: dict[str, Span], key: Any = None) -> Any:
        """Run the op's rules and add its node (or, when not building, just check it)."""
        if self.rec is not None:
            self.rec.step(span)
        if not self.build:
            if key is not None:
                self.p.remember(key, CHECKED)
            return ATENSOR
        if key is None and spec.name in ("add", "mul", "scale"):
            tag = {"add": "+", "mul": "*"}.get(spec.name, spec.name)  # as tensor_arith looks
            key = (tag,) + tuple(v.shape if type(v) is Tensor else v
                                       for v in values.values())
            hit = self.p.op_cache.get(key)
            if hit is not None and hit is not CHECKED:
                return self.instantiate(hit, [v for v in values.values() if type(v) is Tensor],
                                        span)
        args = {}
        inputs = []
        for k, v in values.items():
            if type(v) is Tensor:
                args[k] = v.shape
                inputs.append(v)
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
            cls = ShapeError if err.kind == "shape" else SpecValueError
            raise cls(err.message, where, hint=err.hint) from None
        for d in shape:
            if d < 1:
                raise ShapeError(f"{spec.name} would produce an empty shape {list(shape)}", span)
            if d > limits.MAX_DIM:
                raise SpecLimitError(f"{spec.name} would produce dimension {d:,}, over the "
                                     f"limit {limits.MAX_DIM:,}", span)
        attrs = {k: v for k, v in args.items() if type(values[k]) is not Tensor}
        template = Template(
            spec.name, attrs, tuple(shape), tuple(t.shape for t in inputs), n_params,
            0 if attrs.get("frozen", False) else n_params, flops,
            spec.sparse_weights(call) if spec.parametric else 0)
        if key is not None:
            self.p.remember(key, template)
        return self.instantiate(template, inputs, span)

    def add_node(self, spec: OpSpec, attrs: dict[str, Any], inputs: Any, shape: tuple[int, ...],
                 span: Span, name: str | None = None) -> Tensor:
        template = Template(spec.name, attrs, shape, tuple(t.shape for t in inputs), 0, 0, 0, 0)
        return self.instantiate(template, inputs, span, name)

    def instantiate(self, t: Template, inputs: list[Tensor], span: Span,
                    name: str | None = None) -> Any:
        """Add a node made from ``t`` fed by ``inputs``; when not building, check only."""
        if t is CHECKED or not self.build:
            if self.rec is not None:
                self.rec.step(span)
            return ATENSOR
        nodes = self.out.nodes
        nid = len(nodes)
        if nid >= limits.MAX_NODES:
            raise SpecLimitError(f"candidate has more than {limits.MAX_NODES:,} ops", span)
        nodes.append(NodeRecord(t, span, self.scope_str, name))
        edges = self.out.edges
        for pos, x in enumerate(inputs):
            edges.append((x.node, nid, pos))
        return Tensor(nid, t.shape)

    # ---- decisions -------------------------------------------------------

    def decision(self, e: ast.Call) -> Any:
        name = self.full_name(self.p.names[id(e)])
        dec = self.p.decisions.get(name)
        if dec is None:
            dec = self.p.decisions[name] = make_decision(self.p, e, name)
        if self.rec is not None:
            return self.rec.decision(self, e, dec)
        if name in self.choices:
            raise SpecError(f"two decisions are both named {name}", e.span,
                            hint="rename a `let` or def so their names differ")
        value = self.decider.decide(dec)  # type: ignore[union-attr]
        self.choices[name] = value
        return self.take(e, dec, value)

    def take(self, e: ast.Call, dec: Decision, value: Any) -> Any:
        """The value of decision ``e`` when ``value`` is chosen (evaluates the alternative)."""
        f = e.func
        if f == "choice":
            return self.eval(e.args[_index(dec, value)].value)
        if f == "optional":
            inner: ast.Call = e.args[0].value  # type: ignore[assignment]
            return self.eval(inner if value else inner.positional[0].value)
        return value


def _index(dec: Decision, value: Any) -> int:
    i = dec.index.get((type(value), value))
    if i is not None:
        return i
    raise SpecError(f"internal: {value!r} is not an alternative of {dec.name}", dec.span)


def _taint(v: Any) -> frozenset[str]:
    return v.taint if type(v) is Abstract else frozenset()

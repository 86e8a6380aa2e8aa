"""The evaluator of the spec language (define-by-run elaboration).

The language has one meaning, so it has one evaluator: scopes and names, `let`,
`with`, `repeat`, def calls, arithmetic, `if`, argument binding plans. What a
run is for (a graph, an assignment, the space tree, a setting's value) is its
:class:`~.modes.Mode`, called at the places where those uses differ; see
``modes.py`` for the protocol and ``deciding.py`` / ``space_analysis.py`` for
the modes.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ..dsl import ast
from ..dsl.errors import (
    Span,
    SpecError,
    SpecLimitError,
    SpecNameError,
    SpecTypeError,
    SpecValueError,
    suggest,
)
from . import arith, limits, ops, settings
from .checks import DECISION_CALLS, NotConstant, Program, const_value
from .decisions import Decision, make_decision
from .ir_nodes import NodeRecord, Plan, convert, dim
from .modes import Mode, OpApplication, taint_of
from .ops.registry import OpSpec
from .values import ATENSOR, Abstract, Symbol, SymbolCall, Tensor, is_tensor, type_name

_MISSING = object()


@dataclass
class Elaboration:
    """What a deciding run (build or sample) produced."""

    choices: dict[str, Any]
    nodes: list[NodeRecord] = field(default_factory=list)
    edges: list[tuple[int, int, int]] = field(default_factory=list)
    output: int | None = None
    train: dict[str, Any] = field(default_factory=dict)
    search: dict[str, Any] = field(default_factory=dict)
    #: why the candidate is invalid (sampling records instead of raising)
    invalid: SpecError | None = None


@dataclass
class Settings:
    """The `train` and `search` settings a run evaluated (every mode evaluates them)."""

    train: dict[str, Any] = field(default_factory=dict)
    search: dict[str, Any] = field(default_factory=dict)


class CallTarget(enum.Enum):
    """What a call site calls; resolved once per site and cached in ``Program.targets``."""

    OP = "op"
    DECISION = "decision"
    DEF = "def"
    SYMBOL = "symbol"


class Evaluator(ast.Visitor):
    """Evaluates a checked program; ``mode`` decides what the run produces.

    An :class:`~autoarch.dsl.ast.Visitor`: ``visit(e)`` evaluates an expression and
    returns its value, ``visit(s)`` executes a statement; a node with no
    ``visit_<Class>`` here is an internal error (``generic_visit`` raises).

    Public methods are those of :class:`~.modes.EvaluatorView` (what modes may
    use), plus :meth:`run` and :meth:`evaluate`.

    Example:
        >>> mode = deciding.BuildMode(FixedDecider(choices))
        >>> settings = Evaluator(spec.program, mode).run()
        >>> mode.result(settings).nodes
    """

    def __init__(self, prog: Program, mode: Mode):
        self.p = prog
        #: the program being run (read-only; modes key their entries in its caches)
        self.program = prog
        self.mode = mode
        # a mode that does not count steps costs nothing per statement
        self._step = mode.step if type(mode).step is not Mode.step else None
        self._abstract_ops = type(mode).op is Mode.op
        # the hooks called per op and per decision, bound once
        self._op, self._decision = mode.op, mode.decision
        self._scope: list[str] = []
        #: the dynamic scope path here, ``digits.i[1].block`` (read-only; an attribute,
        #: not a property, because a build reads it for every node)
        self.scope = ""
        self._prefix = ""
        self.defaults: dict[str, tuple[Any, Span]] = {}
        self._env: dict[str, Any] = {}
        self._globals: dict[str, Any] = {}
        #: product of the counts of the repeats being run, and each repeat's count
        #: (keyed by its count's span: `check_repeat` sees the span, `iterate` the node)
        self._nesting = 1
        self._loop_counts: dict[Span, int] = {}
        self._unknown = self.unknown
        #: per node class, its ``visit_`` method bound to this evaluator (bound once)
        self._handlers: dict[type, Callable[[Any], Any]] = {}

    def bindings(self) -> Mapping[str, Any]:
        """The local names bound here (a read-only view)."""
        return MappingProxyType(self._env)

    def bind(self, name: str, value: Any) -> None:
        """Rebind a local name (analysis marks values a loop changed as unknown)."""
        self._env[name] = value

    # ---- drivers -----------------------------------------------------------

    def run(self) -> Settings:
        """Run the whole spec: lets, the model, then the settings blocks."""
        try:
            return self._run()
        except SpecError as e:
            raise e.with_source(self.p.source) from None

    def evaluate(self, expr: ast.Expr, *, env: Mapping[str, Any] | None = None,
                 globals: Mapping[str, Any] | None = None, scope: tuple[str, ...] = ()) -> Any:
        """One expression outside a model run: a setting, a constraint over costs.

        ``env`` binds local names, ``globals`` top-level ones (the program's
        constants, say); ``scope`` names any decision met (for its error).
        """
        self._env = dict(env or {})
        self._globals = dict(globals or {})
        for part in scope:
            self._push(part)
        try:
            return self.visit(expr)
        except SpecError as e:
            raise e.with_source(self.p.source) from None
        finally:
            for _ in scope:
                self._pop()

    def _run(self) -> Settings:
        p, mode = self.p, self.mode
        for let in p.lets:
            self._globals[let.name] = self.visit(let.value)
        m = p.model
        self._push(m.name)
        self._env = {m.input_name: mode.model_input(self, m, self.shape_of(m.input_shape))}
        self.exec_body(m.body[:-1])
        ret: ast.Return = m.body[-1]  # type: ignore[assignment]
        value = self.visit(ret.value)
        out_shape = self.shape_of(m.output_shape)
        if not is_tensor(value):
            raise SpecTypeError(f"a model returns a tensor, got {type_name(value)}",
                                ret.value.span)
        mode.model_output(self, ret, value, out_shape)
        self._pop()
        out = Settings()
        for blk, word in ((p.train, "train"), (p.search, "search")):
            if blk is None:
                continue
            self._env = {}
            self._push(word)
            target = out.train if word == "train" else out.search
            for s in blk.settings:
                if s.name in target:
                    raise SpecError(f"{word} setting '{s.name}' is given twice", s.span)
                target[s.name] = settings.check_setting(word, s.name, self.visit(s.value),
                                                      s.value.span, s.span)
            self._pop()
        return out

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

    # ---- scopes ------------------------------------------------------------

    def _push(self, part: str) -> None:
        self._scope.append(part)
        self.scope = ".".join(self._scope)
        self._prefix = self.scope + "."

    def _pop(self) -> None:
        self._scope.pop()
        self.scope = ".".join(self._scope)
        self._prefix = self.scope + "." if self._scope else ""

    def full_name(self, local: str) -> str:
        """The name of a decision whose local (source) name is ``local``, here."""
        return self._prefix + local if local else self._prefix[:-1] or "return"

    # ---- statements --------------------------------------------------------

    def exec_body(self, stmts: tuple[ast.Stmt, ...]) -> None:
        step, visit = self._step, self.visit
        for s in stmts:
            if step is not None:  # each pass of an analysis re-runs every statement
                step(s.span)
            visit(s)

    def visit_Let(self, s: ast.Let) -> None:
        self._env[s.name] = self.visit(s.value)

    def visit_Assign(self, s: ast.Assign) -> None:
        self._env[s.name] = self.visit(s.value)

    def visit_Repeat(self, s: ast.Repeat) -> None:
        self.mode.repeat(self, s, self.p.names[id(s)])

    def visit_Require(self, s: ast.Require) -> None:
        self.mode.require(self, s, self.visit(s.cond))

    def visit_With(self, s: ast.With) -> None:
        new = dict(self.defaults)
        allowed = ops.attribute_names()
        for b in s.bindings:
            if b.name not in allowed:
                raise SpecNameError(f"no op takes an argument '{b.name}' for `with` to default",
                                    b.span, hint=suggest(b.name, allowed))
            value = self.visit(b.value)
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

    def run_repeat(self, s: ast.Repeat, name: str) -> None:
        """Evaluate the count, then run that many iterations (the plain meaning)."""
        count = self.concrete(self.visit(s.count), s.count.span)
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
        total = self._nesting * count
        if total > limits.MAX_NESTED_ITERATIONS:
            raise SpecLimitError(
                f"nested repeats would run {total:,} iterations, over the limit "
                f"{limits.MAX_NESTED_ITERATIONS:,}", span,
                hint="lower the counts of this repeat or of the repeats around it")
        self._loop_counts[span] = count

    def iterate(self, s: ast.Repeat, name: str, i: int) -> None:
        """Run iteration ``i`` of ``s`` (after ``check_repeat`` saw its count)."""
        if self._step is not None:
            self._step(s.span)
        outer = self._nesting
        self._nesting = outer * self._loop_counts.get(s.count.span, 1)
        self._push(f"{name}[{i}]")
        if s.var is not None:
            self._env[s.var] = i
        self.exec_body(s.body)
        self._pop()
        self._nesting = outer

    # ---- expressions -------------------------------------------------------

    def visit(self, node: ast.Node) -> Any:  # type: ignore[override]
        """Evaluate an expression (to its value) or execute a statement.

        The dispatch of :class:`~autoarch.dsl.ast.Visitor`, with each method bound
        once per evaluator rather than per call: every expression passes here.
        """
        handler = self._handlers.get(type(node))
        if handler is None:
            method = self._method_for(type(node))
            handler = self._handlers[type(node)] = method.__get__(self)
        return handler(node)

    def generic_visit(self, node: ast.Node, *args: Any) -> Any:
        # a node the evaluator has no method for: a bug here, not in the spec
        name = type(node).__name__
        raise TypeError(f"internal: the evaluator has no visit_{name} for node {name}")

    def visit_Number(self, e: ast.Number) -> Any:
        return e.value

    def visit_String(self, e: ast.String) -> Any:
        return e.value

    def visit_Bool(self, e: ast.Bool) -> Any:
        return e.value

    def visit_Name(self, e: ast.Name) -> Any:
        v = self._env.get(e.id, _MISSING)
        if v is _MISSING:
            v = self._globals.get(e.id, _MISSING)
            if v is _MISSING:
                if e.id in self.p.defs:
                    raise SpecTypeError(f"def '{e.id}' must be called: {e.id}(...)", e.span)
                return Symbol(e.id)
        return v

    def visit_ListExpr(self, e: ast.ListExpr) -> tuple[Any, ...]:
        return tuple(self.visit(x) for x in e.items)

    def unknown(self, sym: Symbol, span: Span) -> SpecNameError:
        """A bare name used as a value: it is not bound here (so it reads as a symbol)."""
        return arith.unknown_name(sym, span, list(self._env) + list(self._globals))

    def visit_BinOp(self, e: ast.BinOp) -> Any:
        op = e.op
        if op == "and" or op == "or":
            left = self.concrete(self.visit(e.left), e.left.span)
            if type(left) is Symbol:
                raise self.unknown(left, e.left.span)
            if arith.truth(left, e.left.span) == (op == "or"):
                return left
            return self.visit(e.right)
        a, b = self.visit(e.left), self.visit(e.right)
        ta, tb = type(a), type(b)
        if ta is Symbol and op in "+-*/%" and tb is not Symbol:
            raise self.unknown(a, e.left.span)
        if tb is Symbol and ta is not Symbol:
            raise self.unknown(b, e.right.span)
        if ta is Abstract or tb is Abstract:
            if is_tensor(a) or is_tensor(b):
                return self.tensor_arith(op, a, b, e)
            return Abstract(taint_of(a) | taint_of(b))
        if ta is Tensor or tb is Tensor:
            return self.tensor_arith(op, a, b, e)
        return arith.binop(op, a, b, e.span)

    def tensor_arith(self, op: str, a: Any, b: Any, e: ast.BinOp) -> Any:
        if type(a) is Tensor and type(b) is Tensor and (op == "+" or op == "*"):
            # the common residual add (or gate) of a build, without the checks below
            return self.apply_builtin("add" if op == "+" else "mul", {"a": a, "b": b}, e.span)
        both = is_tensor(a) and is_tensor(b)
        if op == "+" and both:
            return self.apply_builtin("add", {"a": a, "b": b}, e.span)
        if op == "*" and both:
            return self.apply_builtin("mul", {"a": a, "b": b}, e.span)
        if op == "*":
            x, f = (a, b) if is_tensor(a) else (b, a)
            if arith.is_number(f) or type(f) is Abstract:
                return self.apply_builtin("scale", {"x": x, "factor": f}, e.span)
        raise SpecTypeError(f"cannot apply '{op}' to {type_name(a)} and {type_name(b)}", e.span,
                            hint="tensors support a + b (residual), a * b (gating) and "
                                 "number * tensor")

    def apply_builtin(self, name: str, values: dict[str, Any], span: Span) -> Any:
        """An op that tensor arithmetic stands for (``a + b`` is ``add``): bound already."""
        if self._abstract_ops:
            return ATENSOR
        spec = _BUILTINS.get(name)
        if spec is None:
            spec = _BUILTINS[name] = ops.get(name)
        return self._op(self, OpApplication(spec, span, None, None, None, values,
                                                self.defaults, None))

    def visit_UnaryOp(self, e: ast.UnaryOp) -> Any:
        v = self.visit(e.operand)
        if type(v) is Abstract and not is_tensor(v):
            if e.op == "not":
                self.concrete(v, e.span)
            return v
        if is_tensor(v):
            if e.op == "+":
                return v
            if e.op == "-":
                return self.apply_builtin("scale", {"x": v, "factor": -1}, e.span)
        if type(v) is Symbol:
            raise self.unknown(v, e.operand.span)
        return arith.unary(e.op, v, e.span)

    def visit_Compare(self, e: ast.Compare) -> Any:
        values = [self.visit(x) for x in e.operands]
        for v, x in zip(values, e.operands, strict=True):
            if is_tensor(v):
                raise SpecTypeError("tensors cannot be compared", x.span)
        if any(type(v) is Abstract for v in values):
            return Abstract(frozenset().union(*(taint_of(v) for v in values)))
        for i, op in enumerate(e.ops):
            if not arith.compare(op, values[i], values[i + 1], e.span):
                return False
        return True

    def visit_IfExp(self, e: ast.IfExp) -> Any:
        test = self.concrete(self.visit(e.test), e.test.span)
        if type(test) is Symbol:
            raise self.unknown(test, e.test.span)
        return self.visit(e.body if arith.truth(test, e.test.span) else e.orelse)

    def concrete(self, v: Any, span: Span) -> Any:
        """The value itself; an unknown one goes to the mode (analysis forks on it)."""
        if type(v) is Abstract and not v.tensor:
            return self.mode.need_value(self, v, span)
        return v

    # ---- calls -------------------------------------------------------------

    def visit_Call(self, e: ast.Call) -> Any:
        target = self.p.targets.get(id(e))
        if target is None:
            target = self.p.targets[id(e)] = self.resolve(e)
        kind, obj = target
        if kind is _OP:
            return self.call_op(e, obj)
        if kind is _DECISION:
            p = self.p  # decision_at, inline: every decision passes here
            name = self.full_name(p.names[id(e)])
            dec = p.decisions.get(name)
            if dec is None:
                dec = p.decisions[name] = make_decision(p, e, name)
            return self._decision(self, e, dec)
        if kind is _DEF:
            return self.call_def(e, obj)
        args = tuple(self.visit(a.value) for a in e.args if a.kind == "pos")
        kwargs = tuple((a.name, self.visit(a.value)) for a in e.args if a.kind == "kw")
        return SymbolCall(e.func, args, kwargs)  # type: ignore[arg-type]

    def resolve(self, e: ast.Call) -> tuple[CallTarget, Any]:
        """What a call site calls, with the op spec or def it names."""
        f = e.func
        if f in DECISION_CALLS:
            return (CallTarget.DECISION, None)
        d = self.p.defs.get(f)
        if d is not None:
            return (CallTarget.DEF, d)
        spec = ops.get(f)
        if spec is not None and not spec.internal:
            return (CallTarget.OP, spec)
        return (CallTarget.SYMBOL, None)

    def call_def(self, e: ast.Call, d: ast.Def) -> Any:
        env: dict[str, Any] = {}
        pos = [a for a in e.args if a.kind == "pos"]
        for prm, a in zip(d.params, pos, strict=False):
            env[prm.name] = self.visit(a.value)
        for a in e.args:
            if a.kind == "kw":
                env[a.name] = self.visit(a.value)  # type: ignore[index]
        saved = self._env
        self._env = env
        self._push(self.p.names[id(e)])
        if self._step is not None:
            self._step(e.span)
        try:
            for prm in d.params:
                if prm.name not in env:
                    env[prm.name] = self.visit(prm.default)  # type: ignore[arg-type]
            if d.expr is not None:
                return self.visit(d.expr)
            self.exec_body(d.body[:-1])  # type: ignore[index]
            return self.visit(d.body[-1].value)  # type: ignore[index, union-attr]
        finally:
            self._pop()
            self._env = saved

    def call_op(self, e: ast.Call, spec: OpSpec) -> Any:
        plan = self.p.plans.get(id(e))
        if plan is None:
            plan = self.p.plans[id(e)] = Plan.make(e, spec)
        args = [self.visit(x) for x in plan.exprs]
        if self._abstract_ops:  # sampling: only the decisions matter; a build checks ops
            return ATENSOR
        return self._op(self, OpApplication(spec, e.span, e, plan, args, None, self.defaults,
                                                self._unknown))

    # ---- decisions ---------------------------------------------------------

    def decision_at(self, e: ast.Call) -> Decision:
        """The decision a `choice`/`optional`/`int`/`float` call makes here (named by scope)."""
        name = self.full_name(self.p.names[id(e)])
        dec = self.p.decisions.get(name)
        if dec is None:
            dec = self.p.decisions[name] = make_decision(self.p, e, name)
        return dec

    def take(self, e: ast.Call, dec: Decision, value: Any) -> Any:
        """The value of decision ``e`` when ``value`` is chosen (evaluates the alternative)."""
        f = e.func
        if f == "choice":
            return self.visit(e.args[_index(dec, value)].value)
        if f == "optional":
            inner: ast.Call = e.args[0].value  # type: ignore[assignment]
            return self.visit(inner if value else inner.positional[0].value)
        return value


# module globals: comparing against them is faster than reading CallTarget's members
_OP, _DECISION, _DEF = CallTarget.OP, CallTarget.DECISION, CallTarget.DEF
#: the op specs tensor arithmetic stands for, by name (looked up once)
_BUILTINS: dict[str, OpSpec] = {}


def _index(dec: Decision, value: Any) -> int:
    i = dec.index.get((type(value), value))
    if i is not None:
        return i
    raise SpecError(f"internal: {value!r} is not an alternative of {dec.name}", dec.span)

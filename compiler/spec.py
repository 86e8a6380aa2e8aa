"""A loaded spec: parse + static checks, its space, and candidate building."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

from ..dsl import ast, bidi_controls, parse
from ..dsl.errors import (
    AssignmentError,
    CommandError,
    Span,
    SpecError,
    SpecLimitError,
    SpecTypeError,
    SpecWarning,
    suggest,
)
from ..dsl.parser import MAX_SOURCE_CHARS
from . import limits
from .checks import Program, analyze
from .deciders import Decider, FixedDecider
from .deciding import elaborate, evaluate_expr
from .elaborate import Elaboration
from .graph import Graph
from .plugins import load_entry_points
from .settings import CONSTRAINT_NAMES, check_setting, defaults
from .size_limits import check_limits
from .space import Space
from .values import to_json, type_name


class Spec:
    """A parsed and checked spec.

    Example:
        >>> spec = autoarch.loads(open("examples/quickstart.spec").read(), "quickstart.spec")
        >>> spec.space().count()
        774
        >>> graph = spec.build(spec.space().sample(seed=0))
    """

    def __init__(self, program: Program):
        self.program = program
        #: located warnings about the text (bidirectional control characters): the
        #: spec means what it says, but may not display that way; never raised
        self.warnings: list[SpecWarning] = []

    @property
    def name(self) -> str:
        return self.program.model.name

    @property
    def filename(self) -> str:
        return self.program.filename

    @property
    def source(self) -> str:
        return self.program.source

    @cached_property
    def _space(self) -> Space:
        return Space(self.program)

    def space(self) -> Space:
        """The search space (analysed once, then cached)."""
        return self._space

    def elaborate(self, decider: Decider, *, build: bool = True) -> Elaboration:
        """Run the spec with ``decider`` answering every decision."""
        return elaborate(self.program, decider, build=build)

    def build_with(self, decider: Decider) -> Graph:
        """The candidate graph the decider's answers describe (e.g. an OptunaDecider)."""
        return Graph(self.elaborate(decider), self.name)

    def build(self, choices: Mapping[str, Any] | None = None) -> Graph:
        """The candidate graph of an assignment ``{decision name: value}``.

        Values may be given as text (``"64"``). Names of decisions that do not exist
        for this candidate (an alternative not taken) are ignored; names the space
        does not have at all are an error. Raises :class:`CandidateError` (a
        SpecError) if the candidate is invalid (shapes, ``require``).
        """
        choices = dict(choices or {})
        space = self.space()
        for name in choices:
            if name not in space:
                raise AssignmentError(f"no decision named {name}", None,
                                      hint=suggest(name, [d.name for d in space.decisions])
                                      or "`autoarch show` lists the decisions")
        return self.build_with(FixedDecider(choices))

    def check_params(self, graph: Graph) -> None:
        """Refuse to build a torch module of more than ``limits.MAX_PARAMS`` parameters.

        Call it before lowering: the count is a formula over the IR, so a candidate
        too large for memory fails at once instead of in the allocator.
        """
        if graph.params <= limits.MAX_PARAMS:
            return
        sp = self.program.model.span
        raise SpecLimitError(
            f"this candidate of model {self.name} has {graph.params:,} parameters "
            f"({graph.params * 4 / 1e9:,.0f} GB as float32); the limit for building it is "
            f"{limits.MAX_PARAMS:,} (MAX_PARAMS)",
            Span(sp.filename, sp.line, sp.column, sp.line, sp.column + len("model")),
            hint="choose a smaller candidate, or raise MAX_PARAMS in "
                 "autoarch/compiler/limits.py", source=self.source)

    def train_config(self, choices: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The `train` settings of a candidate, defaults filled in."""
        run = elaborate(self.program, FixedDecider(dict(choices or {})), build=False)
        return {**defaults("train"), **run.train}

    def search_config(self) -> dict[str, Any]:
        """The `search` settings, defaults filled in (they may use constants, not decisions)."""
        out = defaults("search")
        blk = self.program.search
        if blk is None:
            return out
        prog = self.program
        try:
            for s in blk.settings:
                value = evaluate_expr(prog, s.value, globals=prog.constants, scope=("search",))
                out[s.name] = check_setting("search", s.name, value, s.value.span, s.span)
        except SpecError as e:
            raise e.with_source(self.source) from None
        return out

    @property
    def constraints(self) -> tuple[ast.Constraint, ...]:
        s = self.program.search
        return s.constraints if s is not None else ()

    def violated_constraints(self, graph: Graph) -> list[str]:
        """Source text of every `constraint` the candidate breaks (empty: all hold).

        Loading checked that constraints use only costs and constants.
        """
        out = []
        prog = self.program
        costs = graph.costs()
        for c in self.constraints:
            try:
                value = evaluate_expr(prog, c.expr, env=costs, globals=prog.constants)
                if not isinstance(value, bool):
                    raise SpecTypeError("a constraint must be a comparison, like "
                                        f"params <= 200k; this is {type_name(value)}",
                                        c.expr.span)
            except SpecError as e:
                raise e.with_source(self.source) from None
            if not value:
                out.append(_text(self.source, c))
        return out

    def check_constraints(self) -> None:
        """Evaluate every constraint once against a dummy graph's costs, to catch typos."""
        class _Costs:
            def costs(self) -> dict[str, Any]:
                return dict.fromkeys(CONSTRAINT_NAMES, 1)

        self.violated_constraints(_Costs())  # type: ignore[arg-type]


def _text(source: str, c: ast.Constraint) -> str:
    sp = c.expr.span
    lines = source.split("\n")
    if sp.line == sp.end_line:
        return lines[sp.line - 1][sp.column - 1: sp.end_column - 1]
    return "constraint at line " + str(sp.line)


def loads(text: str, filename: str = "<spec>") -> Spec:
    """Parse and check spec text. Raises :class:`SpecError` on any mistake.

    The first call loads the installed plugins' ops (``compiler/plugins.py``).
    """
    load_entry_points()
    spec = Spec(analyze(parse(text, filename)))
    try:
        check_limits(spec.program)
    except SpecError as e:
        raise e.with_source(spec.source) from None
    spec.check_constraints()
    spec.warnings = bidi_controls(spec.source, spec.filename)
    return spec


def load(path: str | Path) -> Spec:
    """Parse and check a `.spec` file. Raises :class:`SpecError` on any mistake.

    A file that cannot be read as a spec (missing, a directory, unreadable, not
    UTF-8, too large) is a one-line :class:`CommandError`.
    """
    p = Path(path)
    # Read no more than the largest spec can take (4 bytes a character at most), so
    # that a huge file, or a device such as /dev/zero, fails at once instead of filling memory.
    most = 4 * MAX_SOURCE_CHARS
    try:
        with p.open("rb") as f:
            data = f.read(most + 1)
    except FileNotFoundError:
        raise CommandError(f"no such file: {p}") from None
    except IsADirectoryError:
        raise CommandError(f"{p} is a directory", hint="give the path of a .spec file") from None
    except OSError as e:
        raise CommandError(f"cannot read {p}: {e.strerror or e}") from None
    if len(data) > most:
        raise CommandError(f"{p} is over {most:,} bytes; a spec is at most "
                           f"{MAX_SOURCE_CHARS:,} characters", hint="is it the right file?")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CommandError(f"{p} is not UTF-8 text ({e.reason} at byte {e.start})",
                           hint="is it the right file?") from None
    return loads(text, str(path))


def to_jsonable(choices: Mapping[str, Any]) -> dict[str, Any]:
    return {k: to_json(v) for k, v in choices.items()}

"""The compiler's side of one-shot NAS: which specs a supernet can hold, and its paths.

A supernet holds every candidate of a space at once and shares weights between
them (the sharing rules are the torch backend's, ``backends/torch/supernet.py``).
Here is what the language decides about it:

* :func:`check_supernet`: a spec whose *architecture* decisions are all discrete
  and whose `train` settings hold no decision can be trained as one supernet;
  anything else is a located :class:`SpecError` with a hint, raised before
  anything trains.
* :class:`PathMode`: the elaboration mode of a supernet path. It builds one
  candidate's graph like ``BuildMode`` and refuses a continuous decision at its
  call site; each node keeps its scope and call site, which is what names the
  supernet slot the node's weights live in.
* :func:`scan_paths`: the candidates the supernet is sized from: every
  candidate when the space is small, else a seeded sample of them (a path met
  later that needs a larger slot grows it).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from ..dsl import ast
from ..dsl.errors import SpecError
from .deciders import FixedDecider, RandomDecider
from .deciding import BuildMode
from .decisions import Decision
from .elaborate import Evaluator
from .graph import Graph
from .modes import EvaluatorView
from .settings import DECISION_CALLS

if TYPE_CHECKING:
    from .spec import Spec

#: how many candidates size the supernet: all of them up to this many, else a sample
SCAN_LIMIT = 2000


class PathMode(BuildMode):
    """Builds one path of the supernet: a candidate graph, discrete decisions only."""

    def decision(self, ev: EvaluatorView, call: ast.Call, decision: Decision) -> Any:
        if decision.continuous:
            raise _continuous(decision)
        return super().decision(ev, call, decision)


def _continuous(d: Decision) -> SpecError:
    return SpecError(
        f"one-shot search cannot hold the continuous decision {d.name} "
        f"({d.describe_domain()}): a supernet holds a module for every alternative",
        d.span, hint="give the range a step, e.g. int(16, 256, step = 16), or list the "
                     "values with choice(...); or search it with a multi-trial strategy")


def path_graph(spec: Spec, choices: Mapping[str, Any]) -> Graph:
    """The graph of the supernet path ``choices`` (the same graph ``spec.build`` gives)."""
    mode = PathMode(FixedDecider(dict(choices)))
    settings = Evaluator(spec.program, mode).run()
    return Graph(mode.result(settings), spec.name)


def check_supernet(spec: Spec) -> None:
    """Raise a located :class:`SpecError` if one supernet cannot hold ``spec``'s space.

    Two things cannot be shared by one trained network: a decision the `train`
    block depends on (a learning rate, a batch size: one supernet trains with
    one setting), and a continuous architecture decision (no finite set of
    modules holds it).
    """
    prog = spec.program
    lets = {let.name: let for let in prog.lets}
    if prog.train is not None:
        for s in prog.train.settings:
            call = _decision_in(s.value, lets, set())
            if call is not None:
                raise SpecError(
                    f"one-shot search trains one supernet with one set of `train` settings, "
                    f"but train setting '{s.name}' depends on a decision",
                    call.span, hint="fix its value (e.g. lr = 0.001), or search it with a "
                                    "multi-trial strategy such as tpe",
                    source=spec.source)
    for d in spec.space().decisions:
        if d.continuous:
            raise _continuous(d).with_source(spec.source)


def _decision_in(e: ast.Expr, lets: Mapping[str, ast.Let], seen: set[str]) -> ast.Call | None:
    """The first decision call ``e`` evaluates, through the top-level lets it names."""
    for n in ast.walk(e):
        if isinstance(n, ast.Call) and n.func in DECISION_CALLS:
            return n
        if isinstance(n, ast.Name) and n.id in lets and n.id not in seen:
            seen.add(n.id)
            found = _decision_in(lets[n.id].value, lets, seen)
            if found is not None:
                return found
    return None


def scan_paths(spec: Spec, *, limit: int = SCAN_LIMIT, seed: int = 0) -> Iterator[Graph]:
    """The valid candidates that size the supernet: every one when the space has at
    most ``limit``, else ``limit`` seeded random draws. Invalid candidates (a failed
    `require`, a shape error) are skipped: no path of the supernet is one of them."""
    space = spec.space()
    count = space.count()
    if count is not None and count <= limit:
        source: Iterator[dict[str, Any]] = space.enumerate()
    else:
        rng = RandomDecider(seed)
        source = (spec.elaborate(rng, build=False).choices for _ in itertools.count())
    for choices in itertools.islice(source, limit):
        try:
            yield path_graph(spec, choices)
        except SpecError as e:  # a subclass: this candidate is invalid
            if type(e) is SpecError:
                raise
            continue

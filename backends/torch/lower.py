"""IR graph -> ``torch.fx.GraphModule``.

Each IR node becomes one fx node: a call of a submodule for ops with state
(parameters, buffers, train/eval behaviour), a call of a torch function for the
rest. The module's generated ``forward`` is straight-line code over those calls,
with no interpretation of the IR at run time; ``module.code`` shows it.
Submodules are named after where the op stands in the spec (``i_0_h_mlp`` for
the `mlp` of `digits.i[0].h`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from ...compiler import ops
from ...compiler.graph import Graph
from ...compiler.ops import OpCall
from ...dsl.errors import SpecError
from .init import apply_init
from .sparsity import apply_sparsity

#: a lowering: (emitter, the IR node's attributes, its inputs' fx nodes) -> its fx node
Lowering = Callable[["Emitter", dict[str, Any], list[fx.Node]], fx.Node]


class LoweringError(SpecError):
    """An op of the candidate has no torch lowering (yet)."""


#: op name -> the attributes a supernet shares by first-k slicing (docs/oneshot.md)
SLICED: dict[str, tuple[str, ...]] = {}


def lowering(*names: str, sliced: tuple[str, ...] = ()) -> Callable[[Lowering], Lowering]:
    """Register a function as the torch lowering of the ops ``names`` (once each).

    ``sliced`` names the attributes that only change sizes: a supernet keeps one
    module for all their values, at the largest, and a path takes the first k of
    every axis of its weights. Its other attributes give each value its own module.
    """
    def register(fn: Lowering) -> Lowering:
        for name in names:
            spec = ops.lookup(name)
            if spec.lower is not None:
                raise ValueError(f"op {name!r} already has a lowering")
            unknown = set(sliced) - {a.name for a in spec.args}
            if unknown:
                raise ValueError(f"op {name!r} has no argument {sorted(unknown)[0]!r}")
            spec.lower = fn
            SLICED[name] = tuple(sliced)
        return fn

    return register


def op_call(node: dict[str, Any]) -> OpCall:
    """The IR node's arguments as its op's rules saw them: the attributes, with each
    tensor argument replaced by its input's shape. A lowering passes it to the rule
    file's dimension helpers (``mlp_dims``, ``kan_widths``, ...) rather than working
    the dimensions out a second time."""
    spec = ops.lookup(node["op"])
    shapes = iter(node["in_shapes"])
    attrs = node["attrs"]
    args = {a.name: next(shapes) if a.type == "tensor" else attrs.get(a.name, a.default)
            for a in spec.args}
    return OpCall(node["op"], args, tuple(node["shape"]))


class Emitter:
    """Adds nodes to the fx graph being built, and submodules to its root."""

    def __init__(self) -> None:
        self.graph = fx.Graph()
        self.root = nn.Module()
        self.node: dict[str, Any] = {}
        self.node_id = -1
        #: submodule name -> (IR node id, its rank among that node's submodules)
        self.owners: dict[str, tuple[int, int]] = {}
        self._names: set[str] = set()

    def module(self, mod: nn.Module, *inputs: fx.Node) -> fx.Node:
        """Call ``mod`` on ``inputs``; the node's `init`, `sparsity` and `frozen` apply to it."""
        attrs = self.node.get("attrs", {})
        try:
            init = attrs.get("init")
            if init == "variance_preserving" and hasattr(mod, "init_variance_preserving"):
                mod.init_variance_preserving()  # the block knows its rationals' gains
            elif init is not None:
                apply_init(mod, init)
            if attrs.get("sparsity"):
                apply_sparsity(mod, attrs["sparsity"])
        except ValueError as e:
            raise LoweringError(str(e), self.node["span"]) from None
        if attrs.get("frozen"):
            mod.requires_grad_(False)
        name = self._unique(_module_name(self.node))
        self.root.add_module(name, mod)
        rank = sum(1 for nid, _ in self.owners.values() if nid == self.node_id)
        self.owners[name] = (self.node_id, rank)
        return self.graph.call_module(name, tuple(inputs))

    def function(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> fx.Node:
        return self.graph.call_function(fn, tuple(args), kwargs)

    def _unique(self, name: str) -> str:
        base, k = name, 1
        while name in self._names:
            k += 1
            name = f"{base}_{k}"
        self._names.add(name)
        return name


def _module_name(node: dict[str, Any]) -> str:
    """`digits.i[0].h` + `mlp` -> `i_0_h_mlp`: the scope without the model's name."""
    scope = node["scope"].split(".", 1)[1] if "." in node["scope"] else ""
    text = f"{scope}_{node['op']}" if scope else node["op"]
    return re.sub(r"_+", "_", re.sub(r"[^0-9A-Za-z_]", "_", text)).strip("_")


def lower_graph(graph: Graph, *, seed: int | None = None) -> fx.GraphModule:
    """The candidate as a trainable ``torch.fx.GraphModule`` (parameters seeded by ``seed``)."""
    if seed is not None:
        torch.manual_seed(seed)
    em = Emitter()
    nodes = graph.nx.nodes
    preds: dict[int, list[tuple[int, int]]] = {}
    for u, v, pos in graph.edges:
        preds.setdefault(v, []).append((pos, u))
    values: dict[int, fx.Node] = {}
    for i in range(len(graph)):  # creation order is a topological order
        nd = nodes[i]
        inputs = [values[u] for _, u in sorted(preds.get(i, ()))]
        op = nd["op"]
        if op == "input":
            values[i] = em.graph.placeholder(nd["name"] or "x")
        elif op == "output":
            em.graph.output(inputs[0])
        else:
            spec = ops.lookup(op)
            if spec.lower is None:
                raise LoweringError(f"op '{op}' has no torch lowering yet", nd["span"])
            em.node, em.node_id = nd, i
            values[i] = spec.lower(em, nd, inputs)
    module = fx.GraphModule(em.root, em.graph, class_name=_class_name(graph.model))
    module.autoarch_choices = dict(graph.choices)
    module.autoarch_owners = em.owners
    # the feature shapes the model declares (batch excluded): what the trainer checks
    # its data against before training
    module.autoarch_input_shape = next(tuple(nodes[i]["shape"]) for i in range(len(graph))
                                       if nodes[i]["op"] == "input")
    module.autoarch_output_shape = tuple(nodes[graph.output]["shape"])
    return module


def _class_name(model: str) -> str:
    return "".join(p[:1].upper() + p[1:] for p in re.split(r"[^0-9A-Za-z]", model) if p)

"""The IR of one candidate: a networkx DiGraph of ops, with its costs and hash."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from functools import cached_property
from typing import Any

import networkx as nx

from .elaborate import Elaboration
from .hashing import hash_labels, node_label
from .settings import COST_METRICS
from .values import SymbolCall, to_json

BYTES_PER_VALUE = 4  # fp32


class Graph:
    """A candidate architecture: ops with input/output shapes, params, FLOPs and spans.

    Node attributes (``graph.nx.nodes[i]``): ``op``, ``attrs`` (the op's non-tensor
    arguments), ``in_shapes``, ``shape`` (output), ``params``, ``trainable_params``,
    ``flops``, ``sparse_weights``, ``span`` (source location), ``scope`` (where in
    the spec it was built); edges carry ``pos``, the argument position (and
    ``positions``, all of them, when one node feeds another twice, as in ``x + x``).

    Example:
        >>> g = spec.build(spec.space().sample(seed=0))
        >>> g.params, g.flops, g.hash
    """

    def __init__(self, run: Elaboration, model: str):
        self.model = model
        self.choices: dict[str, Any] = dict(run.choices)
        self.train: dict[str, Any] = run.train
        self.search: dict[str, Any] = run.search
        self._records = run.nodes
        self._edges = run.edges
        self.output = run.output
        params = trainable = flops = 0
        for r in run.nodes:
            t = r.t
            params += t.params
            trainable += t.trainable
            flops += t.flops
        self.params, self.trainable_params, self.flops = params, trainable, flops

    @cached_property
    def _nodes(self) -> list[dict[str, Any]]:
        """Node attributes, in creation order (what ``nx`` nodes carry)."""
        return [r.attrs() for r in self._records]

    @cached_property
    def nx(self) -> nx.DiGraph:
        """The graph as a ``networkx.DiGraph`` (node ids are creation order)."""
        g = nx.DiGraph(model=self.model, output=self.output)
        g.add_nodes_from(enumerate(self._nodes))
        for u, v, p in self._edges:
            if g.has_edge(u, v):  # one input used twice (x + x, concat(h, h))
                g.edges[u, v]["positions"].append(p)
            else:
                g.add_edge(u, v, pos=p, positions=[p])
        return g

    @property
    def edges(self) -> list[tuple[int, int, int]]:
        """Every (source, consumer, argument position), an input used twice included."""
        return list(self._edges)

    def __len__(self) -> int:
        return len(self._records)

    def __repr__(self) -> str:
        return (f"Graph({self.model}: {len(self)} ops, params={self.params:,}, "
                f"flops={self.flops:,}, hash={self.hash})")

    @cached_property
    def hash(self) -> str:
        """Canonical: isomorphic candidates share it, different ones do not."""
        labels, op_names = [], []
        for r in self._records:
            t = r.t
            if t.label is None:  # shared by every node of this template, in every graph
                t.label = node_label(t.op, t.attrs, t.shape)
            labels.append(t.label)
            op_names.append(t.op)
        return hash_labels(labels, op_names, self._edges)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one example the model takes (batch excluded)."""
        return next(tuple(nd["shape"]) for nd in self._nodes if nd["op"] == "input")

    @property
    def output_shape(self) -> tuple[int, ...]:
        """The shape of one example's output (batch excluded)."""
        return tuple(self._nodes[self.output]["shape"])

    @cached_property
    def activations(self) -> int:
        """Values in all op outputs for one example."""
        total = 0
        for nd in self._nodes:
            n = 1
            for d in nd["shape"]:
                n *= d
            total += n
        return total

    @property
    def memory(self) -> int:
        """Estimated bytes: fp32 parameters plus one example's fp32 activations."""
        return BYTES_PER_VALUE * (self.params + self.activations)

    @cached_property
    def nonzero_params(self) -> int:
        """Parameters the sparsity masks leave non-zero (exactly what the lowering keeps)."""
        return self.params - sum(pruned_weights(r.t.attrs.get("sparsity") or 0, r.t.sparse)
                                 for r in self._records)

    def costs(self) -> dict[str, Any]:
        """The costs a `constraint` may name."""
        return {name: getattr(self, name) for name in COST_METRICS}

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "choices": {k: to_json(v) for k, v in self.choices.items()},
            "params": self.params, "trainable_params": self.trainable_params,
            "nonzero_params": self.nonzero_params,
            "flops": self.flops, "memory": self.memory, "hash": self.hash,
            "nodes": [
                {"id": i, "op": nd["op"], "name": nd["name"], "scope": nd["scope"],
                 "attrs": {k: to_json(v) for k, v in nd["attrs"].items()},
                 "in_shapes": [list(s) for s in nd["in_shapes"]], "shape": list(nd["shape"]),
                 "params": nd["params"], "trainable_params": nd["trainable_params"],
                 "flops": nd["flops"],
                 "span": {"file": nd["span"].filename, "line": nd["span"].line,
                          "column": nd["span"].column}}
                for i, nd in enumerate(self._nodes)
            ],
            "edges": [{"src": u, "dst": v, "pos": p} for u, v, p in self._edges],
            "output": self.output,
        }

    def to_dot(self) -> str:
        lines = [f'digraph "{self.model}" {{', "  rankdir=TB;",
                 '  node [shape=box, fontname="Helvetica", fontsize=10];']
        for i, nd in enumerate(self._nodes):
            extra = _short_attrs(nd["attrs"])
            label = f"{nd['op']}{extra}\\n{list(nd['shape'])}"
            if nd["params"]:
                label += f"\\n{nd['params']:,} params"
            lines.append(f'  n{i} [label="{_escape(label)}"];')
        for u, v, p in self._edges:
            lines.append(f"  n{u} -> n{v}" + (f' [label="{p}"]' if p else "") + ";")
        lines.append("}")
        return "\n".join(lines)


def pruned_weights(sparsity: Any, weights: int) -> int:
    """How many of an op's ``weights`` matrix entries its ``sparsity`` zeroes.

    A fraction ``s`` prunes ``floor(s * weights)``; ``nm(n, m)`` keeps ``n`` of every
    ``m`` consecutive input weights. The torch lowering masks exactly this many.
    """
    if isinstance(sparsity, SymbolCall):
        n, m = sparsity.get("n", 0), sparsity.get("m", 1)
        return weights * (m - n) // m
    return math.floor(sparsity * weights)


def _short_attrs(attrs: Mapping[str, Any]) -> str:
    shown = {k: v for k, v in attrs.items()
             if k not in ("init", "sparsity", "bias", "frozen") and v is not None}
    if not shown:
        return ""
    return "(" + ", ".join(f"{k}={json.dumps(to_json(v))}" for k, v in shown.items()) + ")"


def _escape(s: str) -> str:
    return s.replace('"', '\\"')

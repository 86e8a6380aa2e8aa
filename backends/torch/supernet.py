"""A weight-sharing supernet: one torch module holding every candidate of a space.

Sharing rules (docs/oneshot.md, per op family in each lowering's ``sliced=``):

* every op application of a candidate lives in a **slot**, named by where it
  stands in the spec: its scope (``digits.i[2].h``), its call site, its op, and
  its attributes that are not sizes. So the alternatives of a `choice`, the two
  branches of an `if`, an `optional` op and a different `basis` or `heads` each
  get their own slot, while the parts no decision touches (stem, head) are one
  slot that every path uses;
* a slot's module is built once at the largest size any candidate asks of it
  (the op's ``sliced`` attributes and its input and output widths at their
  maximum), and a path takes the **first k** of every axis of each weight: the
  OFA rule for widths, hidden sizes, ``expand`` and output channels;
* iteration ``i`` of a `repeat` is scope ``...i[i]``, so a path of depth D uses
  the first D iterations' slots.

A path runs as the candidate's own compiled module (``lower_graph``) with its
parameters and persistent buffers replaced by views of the slots
(``torch.func.functional_call``), so gradients flow into the shared weights and
:meth:`Supernet.extract` is exact: it loads copies of those same views into an
ordinary compiled module.

Example:
    >>> net = Supernet(spec, seed=0)
    >>> y = net(x, choices)                    # the path's forward
    >>> model = net.extract(choices)           # == autoarch.compile(spec, choices), trained
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx as fx
from torch import nn
from torch.func import functional_call

from ...compiler import ops
from ...compiler.graph import Graph
from ...compiler.supernet import SCAN_LIMIT, check_supernet, path_graph, scan_paths
from .lower import SLICED, Emitter, lower_graph

#: how many paths keep their compiled module between calls
PATH_CACHE = 256

SlotKey = tuple[Any, ...]


@dataclass
class _Size:
    """The largest node a slot must hold: sliced attributes, input and output shapes at
    their maximum over the candidates met."""

    node: dict[str, Any]

    def merge(self, other: dict[str, Any]) -> bool:
        """Widen to hold ``other``; whether anything grew."""
        n, grew = self.node, False
        attrs = dict(n["attrs"])
        for a in SLICED.get(n["op"], ()):
            mine, theirs = attrs.get(a), other["attrs"].get(a)
            if isinstance(theirs, int) and (mine is None or theirs > mine):
                attrs[a], grew = theirs, True
        shapes = [_wider(s, t) for s, t in zip(n["in_shapes"], other["in_shapes"], strict=True)]
        shape = _wider(n["shape"], other["shape"])
        if shapes != list(n["in_shapes"]) or shape != tuple(n["shape"]):
            grew = True
        self.node = {**n, "attrs": attrs, "in_shapes": tuple(shapes), "shape": shape}
        return grew


def _wider(a: Iterable[int], b: Iterable[int]) -> tuple[int, ...]:
    return tuple(max(x, y) for x, y in zip(a, b, strict=True))


def slot_keys(graph: Graph) -> list[SlotKey | None]:
    """The slot of each node of ``graph`` (None for its input and output)."""
    nodes = graph.nx.nodes
    seen: dict[tuple[Any, ...], int] = {}
    out: list[SlotKey | None] = []
    for i in range(len(graph)):
        nd = nodes[i]
        op = nd["op"]
        if op in ("input", "output"):
            out.append(None)
            continue
        sp = nd["span"]
        site = (nd["scope"], sp.line, sp.column, sp.end_line, sp.end_column, op)
        k = seen.get(site, 0)
        seen[site] = k + 1
        sliced = SLICED.get(op, ())
        attrs = tuple(sorted((a, (v is None) if a in sliced else _hashable(v))
                             for a, v in nd["attrs"].items()))
        if ops.lookup(op).plugin is not None:
            # a user op shares no sliced weights: one module per set of arguments and
            # shapes (each alternative its own), so its key holds the shapes in full
            shapes: tuple[Any, ...] = (tuple(map(tuple, nd["in_shapes"])), tuple(nd["shape"]))
        else:
            shapes = tuple(len(s) for s in nd["in_shapes"])
        out.append(site + (k, attrs, shapes))
    return out


def _hashable(v: Any) -> Any:
    try:
        hash(v)
        return v
    except TypeError:
        return repr(v)


@dataclass
class _Binding:
    """One tensor of a path's module and where it lives in the supernet."""

    name: str            # in the path's module: ``i_0_h_mlp.fc1.weight``
    slot: str            # the slot module's name
    rank: int            # which of the slot's modules
    local: str           # in that module: ``fc1.weight``
    shape: torch.Size    # the path's size (a prefix of the slot tensor's)


@dataclass
class Path:
    """A candidate as a path of the supernet: its graph, module and bindings."""

    choices: dict[str, Any]
    graph: Graph
    module: fx.GraphModule
    bindings: list[_Binding] = field(default_factory=list)


class Supernet(nn.Module):
    """Every candidate of ``spec``'s space in one module, weights shared by slot.

    Args:
        spec: a spec :func:`check_supernet` accepts (else a located SpecError).
        seed: seeds the slots' initial weights and the scan's sample.
        scan_limit: how many candidates size the slots (all, if the space is
            no larger); a later path that needs a larger slot grows it.
    """

    def __init__(self, spec: Any, *, seed: int | None = 0, scan_limit: int = SCAN_LIMIT,
                 layout: Mapping[str, Any] | None = None):
        super().__init__()
        check_supernet(spec)
        self.spec = spec
        self.slots = nn.ModuleDict()
        self._sizes: dict[str, _Size] = {}
        self._names: dict[SlotKey, str] = {}
        self._paths: OrderedDict[Any, Path] = OrderedDict()
        self._tensors: dict[str, list[dict[str, torch.Tensor]]] = {}
        self._used: dict[int, tuple[torch.Tensor, list[torch.Size]]] | None = None
        #: called with ({old tensor: new tensor}, [new tensors]) after slots grow or
        #: appear (an optimizer re-points and adds them)
        self.on_grow: list[Any] = []
        self.scanned = 0
        if layout is not None:  # a saved supernet's slots, as :meth:`layout` gave them
            self._names = dict(layout["names"])
            self._sizes = {n: _Size(dict(node)) for n, node in layout["sizes"].items()}
            self.scanned = int(layout["scanned"])
        else:
            for g in scan_paths(spec, limit=scan_limit, seed=seed or 0):
                self.scanned += 1
                self._absorb(g)
        if seed is not None:
            torch.manual_seed(seed)
        for name in list(self._sizes):
            self._make(name)

    def layout(self) -> dict[str, Any]:
        """The slots' names and sizes: with the state dict, what rebuilds this supernet
        (``Supernet(spec, layout=...)``), slots grown by later paths included."""
        return {"names": dict(self._names), "scanned": self.scanned,
                "sizes": {n: dict(s.node) for n, s in self._sizes.items()}}

    def adopt(self, layout: Mapping[str, Any]) -> None:
        """Grow to a saved :meth:`layout` (the slots a trained supernet had)."""
        self._names.update(layout["names"])
        for name, node in layout["sizes"].items():
            if name not in self._sizes:
                self._sizes[name] = _Size(dict(node))
                self._make(name)
            elif self._sizes[name].merge(node):
                self._make(name)
        self.scanned = int(layout["scanned"])

    # -- slots

    def _absorb(self, graph: Graph) -> set[str]:
        """Size the slots for ``graph``'s nodes; the names of the slots that grew."""
        nodes = graph.nx.nodes
        grew = set()
        for i, key in enumerate(slot_keys(graph)):
            if key is None:
                continue
            name = self._names.get(key)
            if name is None:
                name = self._slot_name(nodes[i])
                self._names[key] = name
                self._sizes[name] = _Size(dict(nodes[i]))
                grew.add(name)
            elif self._sizes[name].merge(nodes[i]):
                grew.add(name)
        return grew

    def _slot_name(self, node: Mapping[str, Any]) -> str:
        scope = node["scope"].split(".", 1)[1] if "." in node["scope"] else ""
        base = re.sub(r"_+", "_", re.sub(r"[^0-9A-Za-z_]", "_",
                                         f"{scope}_{node['op']}" if scope else node["op"]))
        base, name, k = base.strip("_"), base.strip("_"), 1
        while name in self._sizes:
            k += 1
            name = f"{base}_{k}"
        return name

    def _make(self, name: str) -> None:
        """(Re)build slot ``name`` at its size, keeping the prefix of its old weights."""
        node = self._sizes[name].node
        em = Emitter()
        em.node, em.node_id = node, 0
        inputs = [em.graph.placeholder(f"x{j}") for j in range(len(node["in_shapes"]))]
        ops.lookup(node["op"]).lower(em, node, inputs)
        mods = nn.ModuleList(em.root.children())
        old = self.slots[name] if name in self.slots else None
        if not len(mods):  # a function (add, relu, reshape): nothing to share
            return
        moved: dict[torch.Tensor, torch.Tensor] = {}
        if old is not None:
            new_sd = mods.state_dict(keep_vars=True)
            with torch.no_grad():
                for local, t in old.state_dict(keep_vars=True).items():
                    n = new_sd[local]
                    n[_prefix(t.shape)] = t
                    moved[t] = n
        self.slots[name] = mods
        self._tensors[name] = [m.state_dict(keep_vars=True) for m in mods]
        added = [] if old is not None else list(mods.parameters())
        for fn in self.on_grow:
            fn(moved, added)

    # -- paths

    def path(self, choices: Mapping[str, Any]) -> Path:
        """The path of candidate ``choices`` (compiled once, then cached)."""
        key = tuple(sorted((k, repr(v)) for k, v in choices.items()))
        hit = self._paths.get(key)
        if hit is not None:
            self._paths.move_to_end(key)
            return hit
        graph = path_graph(self.spec, choices)
        self.spec.check_params(graph)
        for name in self._absorb(graph):
            self._make(name)
        with torch.random.fork_rng(devices=[]):  # a path's own weights are never used:
            module = lower_graph(graph, seed=0)  # leave the caller's random stream alone
        keys = slot_keys(graph)
        p = Path(dict(graph.choices), graph, module)
        for sub, (nid, rank) in module.autoarch_owners.items():
            slot = self._names[keys[nid]]  # type: ignore[index]
            for local, t in getattr(module, sub).state_dict(keep_vars=True).items():
                p.bindings.append(_Binding(f"{sub}.{local}", slot, rank, local, t.shape))
        self._paths[key] = p
        if len(self._paths) > PATH_CACHE:
            self._paths.popitem(last=False)
        return p

    def tensors(self, path: Path) -> dict[str, torch.Tensor]:
        """The path's parameters and buffers as views of the slots' (first k of each axis)."""
        out = {}
        used = self._used
        for b in path.bindings:
            t = self._tensors[b.slot][b.rank][b.local]
            out[b.name] = t if t.shape == b.shape else t[_prefix(b.shape)]
            if used is not None:
                used.setdefault(id(t), (t, []))[1].append(b.shape)
        return out

    def forward(self, x: torch.Tensor, choices: Mapping[str, Any] | Path) -> torch.Tensor:
        """The output of path ``choices`` on ``x`` (gradients reach the shared weights)."""
        p = choices if isinstance(choices, Path) else self.path(choices)
        if p.module.training != self.training:  # paths are not submodules: follow train/eval
            p.module.train(self.training)
        return functional_call(p.module, self.tensors(p), (x,), strict=False)

    def aux_loss(self, path: Path) -> torch.Tensor | None:
        """The MoE load-balancing losses of the last forward of ``path``, if any."""
        losses = [m.aux_loss for m in path.module.modules()
                  if isinstance(getattr(m, "aux_loss", None), torch.Tensor)]
        return sum(losses) if losses else None  # type: ignore[return-value]

    def extract(self, choices: Mapping[str, Any]) -> fx.GraphModule:
        """Candidate ``choices`` as an ordinary compiled module with the inherited weights.

        The module is what ``autoarch.compile(spec, choices)`` gives (same class,
        same parameter names), with every parameter and persistent buffer a copy
        of the path's view of the supernet, so its forward equals the supernet's
        forward on that path.
        """
        p = self.path(choices)
        with torch.random.fork_rng(devices=[]):  # every weight is replaced below
            model = lower_graph(p.graph, seed=0)
        with torch.no_grad():
            state = {k: v.detach().clone() for k, v in self.tensors(p).items()}
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected or any(k in state for k in missing):  # pragma: no cover - invariant
            raise RuntimeError(f"supernet path does not match its module: {unexpected}")
        return model

    # -- what a step touched

    @contextmanager
    def tracking(self) -> Iterator[dict[int, tuple[torch.Tensor, list[torch.Size]]]]:
        """Record, for each slot tensor a forward uses, the sizes it is used at."""
        self._used = {}
        try:
            yield self._used
        finally:
            self._used = None


def _prefix(shape: Iterable[int]) -> tuple[slice, ...]:
    return tuple(slice(0, s) for s in shape)


def _partial(t: torch.Tensor, shapes: Iterable[torch.Size]) -> list[torch.Size] | None:
    """The distinct prefixes of ``t`` a step used, or None if one covers all of it."""
    out: list[torch.Size] = []
    for s in shapes:
        if tuple(s) == tuple(t.shape):
            return None
        if s not in out:
            out.append(s)
    return out


def masked_step(optimizer: torch.optim.Optimizer,
                used: Mapping[int, tuple[torch.Tensor, list[torch.Size]]]) -> None:
    """``optimizer.step()`` that leaves every weight a step did not use bit-identical.

    A parameter no path used has no gradient (set to None), so the optimizer skips
    it, weight decay and momentum included. A slot used at a smaller size than it
    holds has a gradient of zeros outside that prefix, where AdamW's decay and
    momentum would still move it: the slot and its optimizer state are put back
    as they were before the step, and then the used prefixes take their new values.
    """
    keep = []
    for t, shapes in used.values():
        if not isinstance(t, nn.Parameter) or t.grad is None:
            continue
        prefixes = _partial(t, shapes)
        if prefixes is None:
            continue
        state = optimizer.state.get(t, {})
        saved = {k: v.detach().clone() for k, v in state.items()
                 if isinstance(v, torch.Tensor) and v.shape == t.shape}
        keep.append((t, prefixes, t.detach().clone(), saved))
    optimizer.step()
    with torch.no_grad():
        for t, prefixes, before, saved in keep:
            _put_back(t, before, prefixes)
            state = optimizer.state.get(t, {})
            for k, v in saved.items():
                if k in state:
                    _put_back(state[k], v, prefixes)


def _put_back(t: torch.Tensor, before: torch.Tensor, prefixes: list[torch.Size]) -> None:
    """``t`` as ``before`` except on ``prefixes``, which keep their values in ``t``."""
    after = [t[_prefix(s)].clone() for s in prefixes]
    t.copy_(before)
    for s, v in zip(prefixes, after, strict=True):
        t[_prefix(s)] = v


def recalibrate_batchnorm(model: nn.Module, batches: Iterable[torch.Tensor]) -> int:
    """Reset every BatchNorm's statistics, then re-estimate them on ``batches``.

    Runs the batches in train mode without gradients, with each BatchNorm's
    statistics the plain average over them (``momentum=None``), as SPOS does
    before scoring a path; the momenta are restored afterwards. Returns the
    number of BatchNorm layers (0: the batches were not run).
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return 0
    momenta = [m.momentum for m in bns]
    was_training = model.training
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    try:
        with torch.no_grad():
            for xb in batches:
                model(xb)
    finally:
        for m, mom in zip(bns, momenta, strict=True):
            m.momentum = mom
        model.train(was_training)
    return len(bns)

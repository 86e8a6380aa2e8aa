"""The best architecture of a run, for `autoarch report` and `autoarch plot`: its graph
(rebuilt from the run's spec, else the IR the history recorded) and where to draw
each node: graphviz's ``dot`` when it is installed (an SVG), else :func:`arch_layout`,
a layered layout of our own that ``search/plots.py`` draws with plotly or matplotlib.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass, field
from typing import Any

from .history import History, loads
from .report import RunData, ranking

#: seconds ``dot`` may take to lay out one graph
DOT_TIMEOUT_S = 30


@dataclass
class ArchNode:
    id: int
    op: str
    detail: str
    shape: list[int]
    params: int
    flops: int


@dataclass
class Architecture:
    run: str
    number: int | None = None
    nodes: list[ArchNode] = field(default_factory=list)
    edges: list[tuple[int, int]] = field(default_factory=list)
    params: int | None = None
    flops: int | None = None
    source: str = ""
    note: str | None = None


def architecture(h: History, run: RunData) -> Architecture:
    """The best trial's graph: rebuilt from the run's spec and the trial's choices,
    or, when that fails (an op registered from Python that this process lacks), read
    from the IR the history recorded for the candidate."""
    out = Architecture(run.name)
    best = [t for t in ranking(h, run) if t["state"] == "complete"]
    if not best:
        out.note = "no complete trial yet: no best architecture to draw"
        return out
    t = best[0]
    out.number, out.params, out.flops = t["number"], t["params"], t["flops"]
    from ..compiler.spec import loads as load_spec

    try:
        graph = load_spec(run.row["spec_text"], run.row["spec_file"] or "<spec>").build(
            t["choices"] or {})
        _from_graph(out, graph.to_json())
        out.source = "rebuilt from the run's spec"
        return out
    except Exception as e:  # noqa: BLE001 - any failure falls back to the recorded IR
        why = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    recorded = _recorded_graph(h, t["arch_hash"])
    if recorded is not None:
        try:
            _from_graph(out, recorded)
            out.source = f"the IR recorded in the history (the spec did not rebuild: {why})"
            return out
        except (KeyError, TypeError, ValueError):
            out.nodes, out.edges = [], []
    out.note = (f"trial #{t['number']}'s architecture cannot be drawn: its spec did not "
                f"rebuild ({why}) and the history holds no readable IR for it")
    return out


def _recorded_graph(h: History, arch_hash: str | None) -> dict[str, Any] | None:
    if arch_hash is None:
        return None
    try:
        row = h.db.execute("SELECT graph FROM candidates WHERE arch_hash = ?",
                           [arch_hash]).fetchone()
        return loads(row[0]) if row and row[0] else None
    except (sqlite3.DatabaseError, ValueError):
        return None


def _from_graph(out: Architecture, g: dict[str, Any]) -> None:
    """Nodes and edges of a graph in ``Graph.to_json`` form."""
    out.nodes = [ArchNode(int(n["id"]), str(n["op"]), _detail(n.get("attrs") or {}),
                          [int(d) for d in n["shape"]], int(n.get("params") or 0),
                          int(n.get("flops") or 0)) for n in g["nodes"]]
    out.edges = sorted({(int(e["src"]), int(e["dst"])) for e in g["edges"]})
    out.params = g.get("params", out.params)
    out.flops = g.get("flops", out.flops)


def _detail(attrs: dict[str, Any]) -> str:
    shown = [f"{k}={v}" for k, v in attrs.items()
             if k not in ("init", "sparsity", "bias", "frozen") and v is not None]
    text = ", ".join(shown)
    return text if len(text) <= 48 else text[:47] + "…"


# -- where to draw it


def graphviz_dot() -> str | None:
    """The ``dot`` program when graphviz is installed; ``AUTOARCH_NO_DOT=1`` hides it
    (the report then draws the graph with :func:`arch_layout`)."""
    if os.environ.get("AUTOARCH_NO_DOT"):
        return None
    return shutil.which("dot")


def node_label(n: Any, sep: str = "\n") -> str:
    head = f"{n.op}({n.detail})" if n.detail else n.op
    text = f"{head}{sep}{list(n.shape)}"
    return text + (f"{sep}{n.params:,} params" if n.params else "")


def arch_svg(a: Architecture) -> str | None:
    """The graph drawn by graphviz as an inline ``<svg>`` element; None without ``dot``
    (or when it fails)."""
    dot = graphviz_dot()
    if dot is None or not a.nodes:
        return None
    lines = ["digraph arch {", "  rankdir=TB;",
             '  node [shape=box, style="rounded,filled", fillcolor="#eef2ff", '
             'fontname="Helvetica", fontsize=10];', '  edge [color="#6b7280"];']
    for n in a.nodes:
        label = node_label(n).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        lines.append(f'  n{n.id} [label="{label}"];')
    lines += [f"  n{u} -> n{v};" for u, v in a.edges] + ["}"]
    try:
        done = subprocess.run([dot, "-Tsvg"], input="\n".join(lines), capture_output=True,
                              text=True, timeout=DOT_TIMEOUT_S, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    svg = done.stdout
    start = svg.find("<svg")
    if start < 0:
        return None
    # the XML prolog and DOCTYPE are not for an inline element; comments say nothing
    return re.sub(r"<!--.*?-->", "", svg[start:], flags=re.S).strip()


@dataclass
class Layout:
    """Where :func:`arch_layout` puts each node, and the polyline of each edge."""

    pos: dict[int, tuple[float, float]]
    routes: dict[tuple[int, int], list[tuple[float, float]]]
    layers: int
    width: int


def arch_layout(a: Architecture) -> Layout:
    """A layered layout: one row per layer (a node one below its deepest input); an
    edge that skips layers passes through a waypoint in each (so a residual runs beside
    the block it skips, not through it); each row ordered by the mean position of its
    nodes' inputs and centred on x = 0."""
    ids = {n.id for n in a.nodes}
    edges = [(u, v) for u, v in a.edges if u in ids and v in ids]
    preds: dict[Any, list[Any]] = {nid: [] for nid in ids}
    for u, v in edges:
        preds[v].append(u)
    layer: dict[Any, int] = {}
    for nid in sorted(ids):  # node ids are creation order: inputs come first
        layer[nid] = 1 + max((layer.get(p, 0) for p in preds[nid]), default=-1)
    chains: dict[tuple[int, int], list[Any]] = {}
    for u, v in edges:  # waypoints ("u>v", depth) of a long edge, chained as nodes
        chain, prev = [u], u
        for d in range(layer[u] + 1, layer[v]):
            w = (u, v, d)
            layer[w], preds[w] = d, [prev]
            chain.append(w)
            prev = w
        preds[v] = [prev if p == u else p for p in preds[v]]
        chains[(u, v)] = [*chain, v]
    rows: dict[int, list[Any]] = {}
    for nid in sorted(layer, key=lambda n: (layer[n], isinstance(n, tuple), n)):
        rows.setdefault(layer[nid], []).append(nid)
    x: dict[Any, float] = {}
    for d in sorted(rows):
        row = rows[d]
        if d > 0:  # barycentre of the inputs; real nodes before waypoints on ties
            row.sort(key=lambda n: (sum(x[p] for p in preds[n]) / len(preds[n])
                                    if preds[n] else 0.0, isinstance(n, tuple)))
        for i, nid in enumerate(row):
            x[nid] = i - (len(row) - 1) / 2
    point = {nid: (x[nid], -float(layer[nid])) for nid in layer}
    return Layout({nid: point[nid] for nid in ids},
                  {e: [point[n] for n in chain] for e, chain in chains.items()},
                  1 + max(rows, default=0), max((len(r) for r in rows.values()), default=1))

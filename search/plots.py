"""The figures of a report's parts (``search/report.py``'s data): plotly figures for
the HTML report, matplotlib figures for ``autoarch plot``'s PNGs.

Each part is drawn twice from the same data, once per library, so a PNG shows what
the report shows. The best architecture is drawn on the layout of
``search/arch_drawing.py`` (the report shows graphviz's SVG instead when ``dot`` is
installed).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .arch_drawing import Architecture, arch_layout, node_label
from .report import Curves, Importance, Progress, Supernet, Tradeoff

#: one colour per run or trial, in order (plotly's default palette)
PALETTE = ("#636efa", "#ef553b", "#00cc96", "#ab63fa", "#ffa15a", "#19d3f3", "#ff6692",
           "#b6e880", "#ff97ff", "#fecb52")
FRONT, OTHER = "#d62728", "#9ca3af"


def colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


# -- plotly figures for the HTML report


def _go() -> Any:
    import plotly.graph_objects as go

    return go


def _base(fig: Any, title: str, height: int = 420) -> Any:
    fig.update_layout(title=title, template="plotly_white", height=height,
                      margin={"l": 60, "r": 20, "t": 60, "b": 50},
                      legend={"orientation": "h", "y": -0.2})
    return fig


def progress_figure(series: Sequence[Progress]) -> Any:
    """Best so far (a step line) and every complete trial (dots), per run; one panel
    per objective."""
    from plotly.subplots import make_subplots

    objectives = list(dict.fromkeys(s.objective for s in series))
    runs = list(dict.fromkeys(s.run for s in series))
    fig = make_subplots(rows=max(1, len(objectives)), cols=1, subplot_titles=objectives,
                        vertical_spacing=0.12)
    go = _go()
    for s in series:
        row, c = objectives.index(s.objective) + 1, colour(runs.index(s.run))
        first = objectives.index(s.objective) == 0
        fig.add_trace(go.Scatter(
            x=s.numbers, y=s.values, mode="markers", name=f"{s.run}: trials",
            legendgroup=s.run, showlegend=first, marker={"color": c, "opacity": 0.45},
            customdata=s.numbers, meta={"part": "points", "run": s.run},
            hovertemplate=f"{s.run} #%{{customdata}}: %{{y:.4g}}<extra></extra>"), row=row, col=1)
        fig.add_trace(go.Scatter(
            x=s.numbers, y=s.best, mode="lines", name=f"{s.run}: best so far",
            legendgroup=s.run, showlegend=first, line={"color": c, "shape": "hv", "width": 2},
            meta={"part": "best", "run": s.run},
            hovertemplate=f"{s.run} best after #%{{x}}: %{{y:.4g}}<extra></extra>"),
            row=row, col=1)
    fig.update_xaxes(title_text="trial number")
    return _base(fig, "Best so far", 300 + 260 * max(1, len(objectives)))


def tradeoff_figure(t: Tradeoff) -> Any:
    """The complete trials on two axes, the front highlighted; two menus choose the
    axes among the objectives' metrics, params and FLOPs."""
    go = _go()
    front = [i for i, f in enumerate(t.front) if f]
    other = [i for i, f in enumerate(t.front) if not f]

    def pick(axis: str, idx: list[int]) -> list[float]:
        return [t.axes[axis][i] for i in idx]

    label = "Pareto front" if t.several else "best"
    fig = go.Figure()
    for idx, name, colr, size in ((other, "other trials", OTHER, 8), (front, label, FRONT, 12)):
        fig.add_trace(go.Scatter(
            x=pick(t.x, idx), y=pick(t.y, idx), mode="markers", name=name,
            customdata=[t.numbers[i] for i in idx], meta={"part": name},
            marker={"color": colr, "size": size, "line": {"width": 1, "color": "#333"}},
            hovertemplate="#%{customdata}: x %{x:.4g}, y %{y:.4g}<extra>" + name + "</extra>"))
    menus = []
    for k, (axis, chosen) in enumerate((("x", t.x), ("y", t.y))):
        buttons = [{"label": a, "method": "update",
                    "args": [{axis: [pick(a, other), pick(a, front)]},
                             {f"{axis}axis.title.text": a}]} for a in t.axes]
        menus.append({"buttons": buttons, "active": list(t.axes).index(chosen),
                      "direction": "down", "x": 0.62 + 0.25 * k, "xanchor": "left",
                      "y": 1.16, "yanchor": "top", "showactive": True})
    fig.update_layout(updatemenus=menus, xaxis_title=t.x, yaxis_title=t.y, annotations=[
        {"text": f"{a} axis:", "x": 0.615 + 0.25 * k, "xanchor": "right", "y": 1.14,
         "xref": "paper", "yref": "paper", "showarrow": False}
        for k, a in enumerate(("x", "y"))])
    title = "Pareto front" if t.several else "Trade-off"
    return _base(fig, f"{title}: {t.run}", 480)


def importance_figure(imp: Importance) -> Any:
    go = _go()
    fig = go.Figure()
    for i, (objective, values) in enumerate(imp.values.items()):
        names = sorted(values, key=values.__getitem__)
        fig.add_trace(go.Bar(x=[values[n] for n in names], y=names, orientation="h",
                             name=objective, marker={"color": colour(i)},
                             hovertemplate="%{y}: %{x:.3f}<extra>" + objective + "</extra>"))
    n = max((len(v) for v in imp.values.values()), default=1)
    fig.update_layout(barmode="group", xaxis_title="importance (fANOVA, sums to 1)")
    return _base(fig, f"Decision importance: {imp.run}", 200 + 28 * n * len(imp.values))


def curves_figure(c: Curves) -> Any:
    go = _go()
    fig = go.Figure()
    for i, (number, epochs, values) in enumerate(c.series):
        fig.add_trace(go.Scatter(x=epochs, y=values, mode="lines+markers",
                                 name=f"#{number}", marker={"color": colour(i)},
                                 hovertemplate=f"#{number} epoch %{{x}}: %{{y:.4g}}<extra></extra>"))
    fig.update_layout(xaxis_title="epoch", yaxis_title=c.metric or "")
    _whole_numbers(fig, max((e for _, epochs, _ in c.series for e in epochs), default=1))
    return _base(fig, f"Learning curves of the top trials: {c.run}")


def _whole_numbers(fig: Any, top: int) -> None:
    """Epochs are whole numbers: no 1.5 on a short axis."""
    if top <= 20:
        fig.update_xaxes(tickmode="linear", tick0=1, dtick=1)
    else:
        fig.update_xaxes(tickformat="d")


def arch_figure(a: Architecture) -> Any:
    """The graph on :func:`arch_layout`: boxes (annotations), edges (lines, the last
    leg an arrow), and a marker per node that shows its attributes, params and FLOPs
    on hover."""
    go = _go()
    lay = arch_layout(a)
    pos = lay.pos
    fig = go.Figure()
    xs: list[float | None] = []
    ys: list[float | None] = []
    annotations = []
    for route in lay.routes.values():
        for p in route[:-1]:
            xs.append(p[0])
            ys.append(p[1])
        xs.append(None)
        ys.append(None)
        (ax, ay), (hx, hy) = route[-2], route[-1]
        annotations.append({"x": hx, "y": hy, "ax": ax, "ay": ay, "xref": "x", "yref": "y",
                            "axref": "x", "ayref": "y", "text": "", "showarrow": True,
                            "arrowhead": 2, "arrowwidth": 1.2, "arrowcolor": "#6b7280",
                            "standoff": 16, "startstandoff": 0 if len(route) > 2 else 16})
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", hoverinfo="skip", showlegend=False,
                             line={"color": "#6b7280", "width": 1.2}, name="edges"))
    annotations += [{"x": pos[n.id][0], "y": pos[n.id][1], "xref": "x", "yref": "y",
                     "text": _plotly_text(node_label(n)), "showarrow": False,
                     "bgcolor": "#eef2ff", "bordercolor": "#4f46e5", "borderpad": 3,
                     "font": {"size": 10}} for n in a.nodes]
    fig.add_trace(go.Scatter(
        x=[pos[n.id][0] for n in a.nodes], y=[pos[n.id][1] for n in a.nodes], mode="markers",
        marker={"size": 28, "opacity": 0, "symbol": "square"}, name="ops", showlegend=False,
        customdata=[[n.id, _plotly_text(n.op), _plotly_text(n.detail or "-"),
                     str(list(n.shape)), f"{n.params:,}", f"{n.flops:,}"] for n in a.nodes],
        hovertemplate=("node %{customdata[0]}: %{customdata[1]}<br>%{customdata[2]}<br>"
                       "shape %{customdata[3]}<br>params %{customdata[4]}<br>"
                       "FLOPs %{customdata[5]}<extra></extra>")))
    fig.update_layout(annotations=annotations, hovermode="closest")
    fig.update_xaxes(visible=False, range=[-lay.width / 2 - 0.3, lay.width / 2 + 0.3])
    fig.update_yaxes(visible=False, range=[-lay.layers + 0.4, 0.6])
    return _base(fig, f"Best architecture: {a.run} #{a.number}",
                 min(8000, 160 + 78 * lay.layers))


def _plotly_text(text: str) -> str:
    """Plain text for plotly's annotations, which read a little HTML."""
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("\n", "<br>"))


def supernet_figures(s: Supernet, objectives: Sequence[Any],
                     retrained: set[str] | frozenset[str] = frozenset()) -> list[Any]:
    """A one-shot run's supernet: its epochs' losses, and the scored candidates'
    inherited first objective against their params (those retrained, by architecture
    hash, marked)."""
    go = _go()
    figs = []
    if s.epochs:
        fig = go.Figure()
        for i, col in enumerate(("train_loss", "val_loss", "val_accuracy")):
            ys = [e.get(col) for e in s.epochs]
            if any(v is not None for v in ys):
                fig.add_trace(go.Scatter(x=[e["epoch"] for e in s.epochs], y=ys,
                                         mode="lines+markers", name=col,
                                         marker={"color": colour(i)},
                                         yaxis="y2" if col == "val_accuracy" else "y"))
        fig.update_layout(xaxis_title="supernet epoch", yaxis_title="loss",
                          yaxis2={"title": "val_accuracy", "overlaying": "y", "side": "right"})
        _whole_numbers(fig, len(s.epochs))
        figs.append(_base(fig, "Supernet training"))
    scored = [r for r in s.scores if isinstance(r.get("objective"), list) and r["objective"]
              and _num(r["objective"][0])]
    if scored:
        metric = objectives[0].metric if objectives else "objective"
        fig = go.Figure()
        for want, name, colr in ((False, "scored", colour(0)), (True, "retrained", FRONT)):
            rows = [r for r in scored if (r.get("arch_hash") in retrained) is want]
            fig.add_trace(go.Scatter(
                x=[r["params"] for r in rows], y=[r["objective"][0] for r in rows],
                mode="markers", name=name, marker={"color": colr, "size": 11 if want else 7},
                customdata=[r["number"] for r in rows],
                hovertemplate=f"{name} #%{{customdata}}: params %{{x}}, %{{y:.4g}}<extra></extra>"))
        fig.update_layout(xaxis_title="params", yaxis_title=f"{metric} (inherited weights)")
        figs.append(_base(fig, "Candidates scored on the supernet"))
    return figs


def _num(v: Any) -> bool:
    return isinstance(v, int | float) and math.isfinite(v)


# -- matplotlib figures for PNGs


def _figure(width: float, height: float) -> Any:
    # a Figure of its own, not pyplot's: no GUI backend, no global state
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def progress_png(series: Sequence[Progress]) -> Any:
    objectives = list(dict.fromkeys(s.objective for s in series))
    runs = list(dict.fromkeys(s.run for s in series))
    fig = _figure(8, 3.2 * len(objectives) + 0.6)
    axes = fig.subplots(len(objectives), 1, squeeze=False)[:, 0]
    for s in series:
        ax, c = axes[objectives.index(s.objective)], colour(runs.index(s.run))
        ax.scatter(s.numbers, s.values, color=c, alpha=0.45, s=18)
        ax.step(s.numbers, s.best, where="post", color=c, label=s.run, linewidth=2)
    for ax, o in zip(axes, objectives, strict=True):
        ax.set_title(o)
        ax.set_xlabel("trial number")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Best so far")
    return fig


def tradeoff_png(t: Tradeoff, x: str | None = None, y: str | None = None) -> Any:
    x, y = x or t.x, y or t.y
    fig = _figure(7, 5.5)
    ax = fig.add_subplot()
    label = "Pareto front" if t.several else "best"
    for want, name, colr, size in ((False, "other trials", OTHER, 30), (True, label, FRONT, 60)):
        idx = [i for i, f in enumerate(t.front) if f is want]
        ax.scatter([t.axes[x][i] for i in idx], [t.axes[y][i] for i in idx], color=colr,
                   s=size, edgecolors="#333", linewidths=0.6, label=name, zorder=3 if want else 2)
        if want:
            for i in idx:
                ax.annotate(f"#{t.numbers[i]}", (t.axes[x][i], t.axes[y][i]), fontsize=8,
                            xytext=(4, 4), textcoords="offset points")
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(f"{'Pareto front' if t.several else 'Trade-off'}: {t.run}")
    return fig


def importance_png(imp: Importance) -> Any:
    names = sorted({n for v in imp.values.values() for n in v},
                   key=lambda n: next(iter(imp.values.values())).get(n, 0.0))
    k = len(imp.values)
    fig = _figure(8, 1.2 + 0.35 * len(names) * max(1, k))
    ax = fig.add_subplot()
    h = 0.8 / max(1, k)
    for i, (objective, values) in enumerate(imp.values.items()):
        ax.barh([j + i * h for j in range(len(names))], [values.get(n, 0.0) for n in names],
                height=h, color=colour(i), label=objective)
    ax.set_yticks([j + h * (k - 1) / 2 for j in range(len(names))], names, fontsize=8)
    ax.set_xlabel("importance (fANOVA, sums to 1)")
    ax.legend(fontsize=8)
    ax.set_title(f"Decision importance: {imp.run}")
    return fig


def curves_png(c: Curves) -> Any:
    fig = _figure(8, 5)
    ax = fig.add_subplot()
    for i, (number, epochs, values) in enumerate(c.series):
        ax.plot(epochs, values, marker="o", color=colour(i), label=f"#{number}")
    ax.set_xlabel("epoch")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_ylabel(c.metric or "")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncols=2)
    ax.set_title(f"Learning curves of the top trials: {c.run}")
    return fig


def arch_png(a: Architecture) -> Any:
    lay = arch_layout(a)
    pos = lay.pos
    fig = _figure(max(5.0, 2.6 * lay.width), min(80.0, max(3.0, 0.85 * lay.layers + 0.8)))
    ax = fig.add_subplot()
    for route in lay.routes.values():
        if len(route) > 2:
            ax.plot([p[0] for p in route[:-1]], [p[1] for p in route[:-1]], color="#6b7280",
                    linewidth=1)
        ax.annotate("", xy=route[-1], xytext=route[-2], arrowprops={
            "arrowstyle": "-|>", "color": "#6b7280", "shrinkA": 0 if len(route) > 2 else 14,
            "shrinkB": 14})
    for n in a.nodes:
        ax.text(*pos[n.id], node_label(n), ha="center", va="center", fontsize=8,
                bbox={"boxstyle": "round,pad=0.4", "facecolor": "#eef2ff",
                      "edgecolor": "#4f46e5"})
    ax.set_xlim(-lay.width / 2 - 0.1, lay.width / 2 + 0.1)
    ax.set_ylim(-lay.layers + 0.5, 0.5)
    ax.axis("off")
    ax.set_title(f"Best architecture: {a.run} #{a.number} ({a.params or 0:,} params)")
    return fig

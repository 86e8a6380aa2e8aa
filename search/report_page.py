"""`autoarch report`'s page: one self-contained HTML file (docs/report.md).

plotly.js is embedded once, so the file works offline and from anywhere; each
figure's data sits in the page as JSON (``<script type="application/json"
id="plot-N-json">``) and is drawn on load. Tables sort by clicking a header, in
a few lines of plain JavaScript. Every text from the history is escaped.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import plots
from .arch_drawing import arch_svg, architecture
from .history import History
from .report import (
    RunData,
    Table,
    curves,
    failures,
    importance,
    progress,
    supernet,
    top_table,
    tradeoff,
)

_STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif;
       margin: 0 auto; max-width: 1180px; padding: 0 24px 48px; color: #1f2937; }
h1 { margin: 24px 0 4px; } h2 { margin-top: 40px; border-bottom: 2px solid #e5e7eb; }
h3 { margin: 28px 0 8px; }
.meta, .note { color: #6b7280; } .note { font-style: italic; }
nav a { margin-right: 14px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
th, td { border: 1px solid #e5e7eb; padding: 4px 8px; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
th { background: #f3f4f6; white-space: nowrap; }
td.wide { min-width: 360px; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th[data-order="asc"]::after { content: " \\25B2"; }
table.sortable th[data-order="desc"]::after { content: " \\25BC"; }
.arch-svg { overflow: auto; max-height: 900px; border: 1px solid #e5e7eb; padding: 8px; }
.arch-svg svg { max-width: 100%; height: auto; }
"""

_SCRIPT = """
document.querySelectorAll("div.plot").forEach(function (div) {
  var fig = JSON.parse(document.getElementById(div.id + "-json").textContent);
  Plotly.newPlot(div, fig.data, fig.layout, {responsive: true, displaylogo: false});
});
function sortKey(td) {
  var v = td.hasAttribute("data-sort") ? td.getAttribute("data-sort") : td.textContent;
  if (v === "") return null;
  var n = Number(v);
  return isNaN(n) ? v.toLowerCase() : n;
}
document.querySelectorAll("table.sortable th").forEach(function (th) {
  th.addEventListener("click", function () {
    var table = th.closest("table"), body = table.tBodies[0], col = th.cellIndex;
    var asc = th.getAttribute("data-order") !== "asc";
    table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("data-order"); });
    th.setAttribute("data-order", asc ? "asc" : "desc");
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = sortKey(a.cells[col]), y = sortKey(b.cells[col]);
      if (x === null || y === null) return (x === null) - (y === null);  // empty: last
      if (typeof x !== typeof y) return typeof x === "number" ? -1 : 1;
      return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
"""


def render(h: History, db: str | Path, runs: Sequence[RunData], k: int,
           note: str | None = None) -> str:
    """The whole page for ``runs`` of the database ``db``."""
    page = _Page()
    title = f"autoarch report: {Path(db).name}"
    from .._version import __version__

    parts = [f"<h1>{_e(title)}</h1>",
             f'<p class="meta">{_e(str(db))} &middot; {len(runs)} run(s) &middot; generated '
             f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} by autoarch "
             f"{_e(__version__)}</p>"]
    if note:
        parts.append(_note(note))
    parts.append("<nav>" + "".join(f'<a href="#{_anchor(r)}">{_e(r.name)}</a>'
                                   for r in runs) + "</nav>")
    parts.append('<h2 id="overview">Runs</h2>')
    parts.append(_runs_table(runs))
    series = [s for r in runs for s in progress(r)]
    parts.append("<h3>Best so far</h3>")
    if any(s.numbers for s in series):
        parts.append('<p class="meta">The best objective value after each trial number (the '
                     "line) and each complete trial's own value (the dots), one colour per "
                     "run.</p>")
        parts.append(page.figure(plots.progress_figure([s for s in series if s.numbers]),
                                 "progress"))
    else:
        parts.append(_note("no run has a complete trial yet: nothing to plot"))
    for r in runs:
        parts.append(_run_section(page, h, db, r, k))
    return _document(title, "\n".join(parts))


class _Page:
    """Numbers the figures of a page."""

    def __init__(self) -> None:
        self.count = 0

    def figure(self, fig: Any, kind: str, run: str | None = None) -> str:
        import plotly.io as pio

        self.count += 1
        pid = f"plot-{self.count}"
        data = _script_safe(pio.to_json(fig, validate=False))
        attrs = f'data-kind="{_e(kind)}"' + (f' data-run="{_e(run)}"' if run else "")
        return (f'<div class="plot figure" id="{pid}" {attrs}></div>\n'
                f'<script type="application/json" id="{pid}-json" {attrs}>{data}</script>')


def _run_section(page: _Page, h: History, db: str | Path, r: RunData, k: int) -> str:
    row = r.row
    out = [f'<section class="run" id="{_anchor(r)}" data-run="{_e(r.name)}">',
           f"<h2>Run {_e(r.name)}</h2>",
           f'<p class="meta">model {_e(row["model"])} &middot; strategy {_e(row["strategy"])}'
           f" &middot; {_e(', '.join(map(str, r.objectives)))} &middot; status "
           f"{_e(row['status'])} &middot; spec {_e(row['spec_file'] or '-')} &middot; "
           f"started {_e((row['started_at'] or '')[:19])}</p>"]
    if not r.trials:
        out.append(_note("this run has no trials yet"))

    t = tradeoff(h, r)
    out.append(f"<h3>{'Pareto front' if t.several else 'Trade-off'}</h3>")
    if t.note:
        out.append(_note(t.note))
    if t.numbers:
        out.append(page.figure(plots.tradeoff_figure(t), "tradeoff", r.name))

    imp = importance(db, r)
    out.append("<h3>Decision importance</h3>")
    if imp.values:
        out.append(f'<p class="meta">fANOVA on the {imp.trials} complete, valid trials of the '
                   "run's Optuna study; decisions that not every trial has are left out.</p>")
        out.append(page.figure(plots.importance_figure(imp), "importance", r.name))
    else:
        out.append(_note(imp.note or "no importances"))

    c = curves(h, r, k)
    out.append(f"<h3>Learning curves of the top {k}</h3>")
    if c.series:
        out.append(page.figure(plots.curves_figure(c), "curves", r.name))
    else:
        out.append(_note(c.note or "no learning curves"))

    table = top_table(h, r, k)
    out.append(f"<h3>Top {k} trials</h3>")
    if table.rows:
        out.append('<p class="meta">Best first (several objectives: Pareto fronts first); '
                   "duplicates left out. Click a header to sort.</p>")
        out.append(_table(table, "top"))
    else:
        out.append(_note(table.note or "no trials"))

    out.append(_failures(r))

    a = architecture(h, r)
    out.append("<h3>Best architecture</h3>")
    if a.nodes:
        out.append(f'<p class="meta">Trial #{a.number}: {len(a.nodes)} ops, '
                   f"{a.params or 0:,} params, {a.flops or 0:,} FLOPs; {_e(a.source)}.</p>")
        svg = arch_svg(a)
        if svg is not None:
            out.append(f'<div class="arch-svg figure" data-kind="arch" data-run="{_e(r.name)}" '
                       f'data-nodes="{len(a.nodes)}">{svg}</div>')
        else:
            out.append(page.figure(plots.arch_figure(a), "arch", r.name))
    else:
        out.append(_note(a.note or "nothing to draw"))

    s = supernet(h, r)
    if s is not None:
        out.append("<h3>Supernet</h3>")
        out.append(f'<p class="meta">One-shot run: {len(s.epochs)} supernet epochs, '
                   f"{len(s.scores)} candidates scored with inherited weights; the trials "
                   "above are the retrained best.</p>")
        retrained = {t["arch_hash"] for t in r.trials if t["arch_hash"]}
        for fig in plots.supernet_figures(s, r.objectives, retrained):
            out.append(page.figure(fig, "supernet", r.name))
    out.append("</section>")
    return "\n".join(out)


def _runs_table(runs: Sequence[RunData]) -> str:
    columns = ["run", "model", "strategy", "objectives", "status", "trials", "complete",
               "failed", "invalid", "pruned", "best of each objective"]
    rows = []
    for r in runs:
        states = {s: sum(1 for t in r.trials if t["state"] == s)
                  for s in ("complete", "failed", "invalid", "pruned")}
        done = r.complete()
        best = []
        for i, o in enumerate(r.objectives):
            vals = [t["objective"][i] for t in done]
            if vals:
                best.append(max(vals) if o.direction == "maximize" else min(vals))
        rows.append([r.name, r.row["model"], r.row["strategy"],
                     ", ".join(map(str, r.objectives)), r.row["status"], len(r.trials),
                     *states.values(), ", ".join(_fmt(v) for v in best) or None])
    return _table(Table(columns, rows), "runs")


def _failures(r: RunData) -> str:
    f = failures(r)
    out = ["<h3>Failed and invalid trials</h3>"]
    if not f.counts:
        return "\n".join([*out, _note("no trials recorded yet")])
    out.append('<p class="meta">Trials by state: ' + ", ".join(
        f"{_e(s)} {n}" for s, n in f.counts.items()) + ".</p>")
    if not f.groups:
        out.append(_note("no trial failed or was invalid"))
        return "\n".join(out)
    rows = [[g.state, g.count, g.reason,
             ", ".join(f"#{n}" for n in g.numbers) + (" …" if g.count > len(g.numbers) else "")]
            for g in f.groups]
    out.append('<p class="meta">Invalid trials were refused before training (shapes, '
               "<code>require</code>, constraints) and do not use up the budget; failed ones "
               "raised while training.</p>")
    out.append(_table(Table(["state", "trials", "reason", "trial numbers"], rows), "failures"))
    return "\n".join(out)


def _table(t: Table, kind: str) -> str:
    head = "".join(f"<th>{_e(c)}</th>" for c in t.columns)
    body = []
    for row in t.rows:
        cells = []
        for v in row:
            if isinstance(v, bool) or not isinstance(v, int | float):
                text = "" if v is None else str(v)
                wide = ' class="wide"' if len(text) > 40 else ""
                cells.append(f"<td{wide}>{_e(text)}</td>")
            elif isinstance(v, float) and not math.isfinite(v):
                cells.append(f'<td class="num" data-sort="">{_e(str(v))}</td>')
            else:
                cells.append(f'<td class="num" data-sort="{v!r}">{_e(_fmt(v))}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<div class="scroll"><table class="sortable" data-kind="{_e(kind)}">'
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>")


def _document(title: str, body: str) -> str:
    import plotly.offline

    js = re.sub(r"</(script)", r"<\\/\1", plotly.offline.get_plotlyjs(), flags=re.I)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{_e(title)}</title>\n"
            f'<link rel="icon" href="data:,">\n<style>{_STYLE}</style>\n'
            f"<script>{js}</script>\n</head>\n<body>\n{body}\n<script>{_SCRIPT}</script>\n"
            "</body>\n</html>\n")


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _note(text: str) -> str:
    return f'<p class="note">{_e(text)}</p>'


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _anchor(r: RunData) -> str:
    return f"run-{r.id}"


def _script_safe(text: str) -> str:
    """JSON inside a ``<script>`` element: ``</script`` or ``<!--`` in a string would
    end or confuse it, so every ``<`` (only ever inside a string) is escaped."""
    return text.replace("<", "\\u003c")

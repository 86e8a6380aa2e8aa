"""`autoarch plot DB --kind K`: one part of the report as a PNG, drawn with matplotlib."""

from __future__ import annotations

from typing import Any

import typer

from autoarch.dsl.errors import CommandError, suggest

from ._common import PLUGIN_OPTION, check_output_path, write_output
from ._console import out

KINDS = ("history", "pareto", "importance", "curves", "arch")
#: pixels per inch of the PNG
DPI = 120


def plot(
    db: str = typer.Argument(..., help="history database written by `autoarch search`"),
    kind: str = typer.Option(..., "--kind", help="what to draw: " + ", ".join(KINDS)),
    run: list[str] | None = typer.Option(
        None, "--run", "-r", help="the run (default: the latest with a complete trial); "
                                  "history takes several (default: every run)"),
    output: str | None = typer.Option(None, "--output", "-o",
                                      help="the PNG file to write (default: KIND.png)"),
    top: int = typer.Option(10, "-k", "--top", min=1, max=1000,
                            help="trials drawn by --kind curves"),
    x: str | None = typer.Option(None, "--x", help="pareto: the x axis (an objective's "
                                                   "metric, params or flops)"),
    y: str | None = typer.Option(None, "--y", help="pareto: the y axis"),
    plugin: list[str] | None = PLUGIN_OPTION,
) -> None:
    """Draw one figure of a run as a PNG: best so far (history), the Pareto front,
    decision importance, learning curves or the best architecture."""
    from autoarch.search.history import History, unreadable

    if kind not in KINDS:
        raise CommandError(f"unknown --kind '{kind}'", hint=suggest(kind, KINDS,
                                                                     listing="kinds"))
    if (x or y) and kind != "pareto":
        raise CommandError("--x and --y choose the axes of --kind pareto",
                           hint=f"leave them out for --kind {kind}")
    if kind != "history" and run and len(set(run)) > 1:
        raise CommandError(f"--kind {kind} draws one run; {len(set(run))} were given",
                           hint="give one --run (several runs: --kind history)")
    output = output or f"{kind}.png"
    check_output_path(output)
    h = History(db, readonly=True)
    try:
        fig, what = _figure(h, db, kind, run, top, x, y)
    except (ValueError, TypeError) as e:  # a stored value that does not decode
        raise unreadable(db, e) from e
    finally:
        h.close()
    write_output(output, lambda f: fig.savefig(f, format="png", dpi=DPI))
    out.print(f"wrote {output} ({what})", markup=False)


def _figure(h: Any, db: str, kind: str, runs: list[str] | None, top: int, x: str | None,
            y: str | None) -> tuple[Any, str]:
    from autoarch.search import plots, report
    from autoarch.search.arch_drawing import architecture

    if kind == "history":
        chosen, _ = report.select_runs(h, runs)
        series = [s for r in chosen for s in report.progress(r) if s.numbers]
        if not series:
            raise CommandError(f"no run of {db} shown has a complete trial yet: nothing to plot",
                               hint=f"`autoarch history {db}` shows every run's trials")
        return plots.progress_png(series), f"best so far of {len(chosen)} run(s)"
    r = report.default_run(h, runs[0] if runs else None)
    where = f"run {r.name}"
    if kind == "pareto":
        t = report.tradeoff(h, r)
        if not t.numbers:
            raise _nothing(where, t.note)
        for flag, axis in (("--x", x), ("--y", y)):
            if axis is not None and axis not in t.axes:
                raise CommandError(f"{flag} {axis} is not an axis of {where}",
                                   hint=suggest(axis, t.axes, listing="axes"))
        return plots.tradeoff_png(t, x, y), f"{where}: {len(t.numbers)} complete trials"
    if kind == "importance":
        imp = report.importance(db, r)
        if not imp.values:
            raise _nothing(where, imp.note)
        return plots.importance_png(imp), f"{where}: {imp.trials} trials"
    if kind == "curves":
        c = report.curves(h, r, top)
        if not c.series:
            raise _nothing(where, c.note)
        return plots.curves_png(c), f"{where}: {len(c.series)} trials, {c.metric}"
    a = architecture(h, r)
    if not a.nodes:
        raise _nothing(where, a.note)
    return plots.arch_png(a), f"{where}: trial #{a.number}, {len(a.nodes)} ops"


def _nothing(where: str, why: str | None) -> CommandError:
    return CommandError(f"{where}: {why or 'nothing to plot'}")

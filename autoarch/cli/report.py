"""`autoarch report DB`: one self-contained HTML page of a history's runs (docs/report.md)."""

from __future__ import annotations

import typer

from ._common import PLUGIN_OPTION, check_output_path, write_output
from ._console import out

#: most top trials a report lists (-k)
MAX_TOP = 1000


def report(
    db: str = typer.Argument(..., help="history database written by `autoarch search`"),
    run: list[str] | None = typer.Option(
        None, "--run", "-r", help="a run to show (repeatable; default: every run, the latest "
                                  "8 when there are more)"),
    top: int = typer.Option(10, "-k", "--top", min=1, max=MAX_TOP,
                            help="trials in each run's table and learning curves"),
    output: str = typer.Option("report.html", "--output", "-o", help="the HTML file to write"),
    plugin: list[str] | None = PLUGIN_OPTION,
) -> None:
    """Write an HTML report: best so far, Pareto front, decision importance, learning
    curves, the top trials, failures and the best architecture of each run."""
    from autoarch.search.history import History, unreadable
    from autoarch.search.report import select_runs
    from autoarch.search.report_page import render

    check_output_path(output)  # a bad -o fails before the work
    h = History(db, readonly=True)
    try:
        runs, note = select_runs(h, run)
        page = render(h, db, runs, top, note)
    except (ValueError, TypeError) as e:  # a stored value that does not decode
        raise unreadable(db, e) from e
    finally:
        h.close()
    write_output(output, lambda f: f.write(page.encode("utf-8")))
    names = ", ".join(r.name for r in runs)
    out.print(f"wrote {output} ({len(runs)} run{'s' if len(runs) != 1 else ''}: {names}); "
              "open it in a browser, it needs no network", markup=False)

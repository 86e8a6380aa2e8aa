"""The `autoarch` command line: thin commands over the library.

Known errors (SpecError) print as one located diagnostic and exit 1; set
AUTOARCH_DEBUG=1 to see Python tracebacks.
"""

from __future__ import annotations

import os
import sys

import typer

from autoarch.dsl.errors import SpecError

from . import best, check, compile, history, ops, sample, search, show
from . import curves as curves_cmd
from . import export as export_cmd
from . import plot as plot_cmd
from . import report as report_cmd
from . import tabulate as tabulate_cmd
from . import top as top_cmd
from ._common import Command, Group
from ._console import err

app = typer.Typer(add_completion=False, no_args_is_help=True, cls=Group,
                  help="Declarative architecture specs: check, inspect and sample search spaces, "
                       "compile candidates, search them and query the history.")
app.command("check", cls=Command)(check.check)
app.command("show", cls=Command)(show.show)
app.command("sample", cls=Command)(sample.sample)
app.command("ops", cls=Command)(ops.ops)
app.command("compile", cls=Command)(compile.compile_)
app.command("search", cls=Command)(search.search_)
app.command("history", cls=Command)(history.history)
app.command("best", cls=Command)(best.best)
app.command("export", cls=Command)(export_cmd.export_)
app.command("report", cls=Command)(report_cmd.report)
app.command("plot", cls=Command)(plot_cmd.plot)
app.command("top", cls=Command)(top_cmd.top)
app.command("curves", cls=Command)(curves_cmd.curves)
app.command("tabulate", cls=Command)(tabulate_cmd.tabulate_)


def main() -> None:
    # Standalone mode: typer prints usage errors and help itself and exits with the
    # command's code (a `typer.Exit(1)` included); only SpecError is ours to print.
    try:
        app(prog_name="autoarch")  # `python -m autoarch` too: usage says `autoarch`
    except SpecError as e:
        if os.environ.get("AUTOARCH_DEBUG"):
            raise
        # soft_wrap: a long source line must not wrap, or the caret would point astray
        err.print(e.format(), markup=False, highlight=False, soft_wrap=True)
        sys.exit(1)

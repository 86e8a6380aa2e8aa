"""The `autoarch` command line: thin commands over the library.

Known errors (SpecError) print as one located diagnostic and exit 1; set
AUTOARCH_DEBUG=1 to see Python tracebacks.
"""

from __future__ import annotations

import os
import sys

import typer

from autoarch.dsl.errors import SpecError

from . import check, sample, show
from ._console import err

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Declarative architecture specs: check, inspect and sample search spaces.")
app.command("check")(check.check)
app.command("show")(show.show)
app.command("sample")(sample.sample)


def main() -> None:
    try:
        app(standalone_mode=False)
    except SpecError as e:
        if os.environ.get("AUTOARCH_DEBUG"):
            raise
        err.print(e.format(), markup=False, highlight=False)
        sys.exit(1)
    except (typer.Exit, SystemExit) as e:
        code = getattr(e, "exit_code", getattr(e, "code", 0))
        sys.exit(code)
    except Exception as e:  # click usage errors and the like
        import click

        if isinstance(e, click.ClickException):
            e.show()
            sys.exit(e.exit_code)
        if isinstance(e, click.exceptions.Abort):
            sys.exit(130)
        raise

"""`autoarch tabulate FILE`: train every candidate of a small space, S times, into a table."""

from __future__ import annotations

from typing import Any

import typer

from ._common import PLUGIN_OPTION, load_spec
from ._console import out


def tabulate_(
    file: str = typer.Argument(..., help="the .spec file (a discrete space)"),
    seeds: int = typer.Option(3, "--seeds", "-S", help="training seeds per candidate (0..S-1)"),
    output: str = typer.Option("table.db", "--output", "-o",
                               help="the table (a history database); an existing one resumes"),
    epochs: int | None = typer.Option(None, "--epochs", "-e",
                                      help="epochs of every training (replaces the spec's)"),
    data: str | None = typer.Option(None, "--data", help="data of every training, replacing "
                                                         "the spec's"),
    backend: str | None = typer.Option(None, "--backend",
                                       help="local (this process) or ray (Ray Tune)"),
    workers: int | None = typer.Option(None, "--workers", help="trainings at once (ray)"),
    limit: int = typer.Option(20_000, "--limit",
                              help="refuse a space of more trainings (candidates x seeds)"),
    plugin: list[str] | None = PLUGIN_OPTION,
) -> None:
    """Train every candidate of the spec's space --seeds times into the table --output.

    A search replays it with `autoarch search x.spec --replay TABLE` (docs/tables.md).
    """
    from autoarch.search.engine import SearchInterrupted
    from autoarch.search.tabulate import tabulate

    from .search import _Bar

    spec = load_spec(file)
    from autoarch.search.options import objectives_of

    bar = _Bar(objectives_of(spec.search_config()["objective"]))
    try:
        result = tabulate(spec, seeds=seeds, db=output, epochs=epochs, data=data,
                          backend=backend, workers=workers, limit=limit, reporter=bar)
    except SearchInterrupted as e:
        bar.stop()
        _interrupted(e, output)
    finally:
        bar.stop()
    out.print(str(result), markup=False)
    out.print(f"replay it: autoarch search {file} --replay {output}", markup=False)


def _interrupted(e: Any, output: str) -> None:
    """One line on how to resume (the same command), then exit 130 or 143."""
    import shlex
    import sys

    from ._console import err

    command = "autoarch " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    err.print(f"interrupted ({e.signal_name}): the table {output} keeps every training that "
              f"ended; resume with: {command}", markup=False, highlight=False)
    raise typer.Exit(143 if e.signal_name == "SIGTERM" else 130)

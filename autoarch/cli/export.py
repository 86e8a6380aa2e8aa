"""`autoarch export DB`: a trial's model as .pt, plain-torch Python or ONNX, or its
architecture as a frozen spec (the library's ``autoarch.search.export.export``)."""

from __future__ import annotations

import typer

from ._common import PLUGIN_OPTION, check_output_path
from ._console import err, out


def export_(
    db: str = typer.Argument(..., help="history database written by `autoarch search`"),
    fmt: str = typer.Option(..., "--format", "-f", metavar="py|onnx|spec|pt",
                            help="py: plain torch code and its state dict (.pt beside it); "
                                 "onnx; spec: the spec with the trial's decisions written in; "
                                 "pt: the model file autoarch.load_model reads"),
    output: str = typer.Option(..., "--output", "-o", help="the file to write"),
    run: str | None = typer.Option(None, "--run", "-r",
                                   help="run name (default: the latest with a complete trial)"),
    trial: int | None = typer.Option(None, "--trial", "-t",
                                     help="trial number in the run (default: the best, or "
                                          "the first of the Pareto front)"),
    plugin: list[str] | None = PLUGIN_OPTION,
) -> None:
    """Export a trial (default: the run's best) as Python, ONNX, a frozen spec or a .pt file."""
    from autoarch.search.export import FORMATS, export

    if fmt in FORMATS and output:
        check_output_path(output)  # a bad -o fails before the history is read
    done = export(db, fmt, output, run=run, trial=trial)
    for note in done.notes:
        err.print(note, markup=False)
    files = " and ".join(str(p) for p in done.paths)
    out.print(f"exported trial #{done.trial} of run {done.run} as {done.format} to {files}",
              markup=False)

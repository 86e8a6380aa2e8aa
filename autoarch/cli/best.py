"""`autoarch best DB`: the best candidate of a run, and its trained weights."""

from __future__ import annotations

import json
from typing import Any

import typer

from autoarch.dsl.errors import CommandError, SpecError

from ._common import check_output_path, print_json, write_output
from ._console import out
from ._runs import best_table


def best(
    db: str = typer.Argument(..., help="history database written by `autoarch search`"),
    run: str | None = typer.Option(None, "--run", "-r",
                                   help="run name (default: the latest with a complete trial)"),
    output: str | None = typer.Option(None, "--output", "-o",
                                      help="write the best trained model here (.pt)"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Show the run's best trial (the Pareto front for several objectives); -o saves it."""
    from autoarch.search.history import History, unreadable
    from autoarch.search.options import objectives_of_text
    from autoarch.search.results import best_trials

    if output:
        check_output_path(output)  # a bad -o fails before anything is printed
    h = History(db, readonly=True)
    try:
        r, chosen = _the_run(h, db, run)
        objs = objectives_of_text(r["objectives"])
        rows = best_trials(h, r["id"], objs)
        if not rows:
            raise CommandError(f"run {r['name']} in {db} has no complete trial yet",
                               hint=f"`autoarch history {db} --run {r['name']}` shows its "
                                    "trials")
        if as_json:
            print_json({"run": r["name"], "objectives": [str(o) for o in objs],
                        "best": [{"number": b["number"], "arch_hash": b["arch_hash"],
                                  "objective": json.loads(b["objective"]),
                                  "metrics": json.loads(b["metrics"]),
                                  "choices": json.loads(b["choices"]),
                                  "params": b["params"], "flops": b["flops"]}
                                 for b in rows]})
        else:
            out.print(f"run {r['name']}{chosen}", markup=False)
            out.print(best_table(rows, objs))
        if output:
            data = h.weights(rows[0]["id"])
            if data is None:
                raise SpecError(f"the weights of trial #{rows[0]['number']} were not kept")
            write_output(output, lambda f: f.write(data))
            if not as_json:
                out.print(f"saved trial #{rows[0]['number']} to {output} "
                          "(autoarch.load_model reads it)", markup=False)
    except (ValueError, TypeError) as e:  # a stored value that does not decode
        raise unreadable(db, e) from e
    finally:
        h.close()


def _the_run(h: Any, db: str, name: str | None) -> tuple[dict[str, Any], str]:
    """The run asked for, or the latest one with a complete trial; and how it was chosen."""
    if name is not None:
        return h.get_run(name), ""
    row = h.latest_run(complete=True)
    if row is None:
        h.get_run(None)  # a HistoryError when there are no runs at all
        raise CommandError(f"no run in {db} has a complete trial yet",
                           hint=f"`autoarch history {db}` shows every run's trials")
    return row, " (the latest run with a complete trial)"

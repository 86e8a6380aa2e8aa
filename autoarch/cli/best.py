"""`autoarch best DB`: the best candidate of a run, and its trained weights."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from autoarch.dsl.errors import SpecError

from ._common import print_json
from ._console import out
from ._runs import best_table


def best(
    db: str = typer.Argument(..., help="history database written by `autoarch search`"),
    run: str | None = typer.Option(None, "--run", "-r", help="run name (default: latest)"),
    output: str | None = typer.Option(None, "--output", "-o",
                                      help="write the best trained model here (.pt)"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Show the run's best trial (the Pareto front for several objectives); -o saves it."""
    from autoarch.search.engine import best_trials, objectives_of_text
    from autoarch.search.history import History

    h = History(db, create=False)
    try:
        r = h.get_run(run)
        objs = objectives_of_text(r["objectives"])
        rows = best_trials(h, r["id"], objs)
        if not rows:
            raise SpecError(f"run {r['name']} has no complete trial yet")
        if as_json:
            print_json({"run": r["name"], "objectives": [str(o) for o in objs],
                        "best": [{"number": b["number"], "arch_hash": b["arch_hash"],
                                  "objective": json.loads(b["objective"]),
                                  "metrics": json.loads(b["metrics"]),
                                  "choices": json.loads(b["choices"]),
                                  "params": b["params"], "flops": b["flops"]}
                                 for b in rows]})
        else:
            out.print(f"run {r['name']}", markup=False)
            out.print(best_table(rows, objs))
        if output:
            data = h.weights(rows[0]["id"])
            if data is None:
                raise SpecError(f"the weights of trial #{rows[0]['number']} were not kept")
            Path(output).write_bytes(data)
            if not as_json:
                out.print(f"saved trial #{rows[0]['number']} to {output} "
                          "(autoarch.load_model reads it)", markup=False)
    finally:
        h.close()

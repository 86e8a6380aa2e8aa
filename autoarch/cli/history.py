"""`autoarch history DB`: the runs of a history database, or one run's trials."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.table import Table

from ._common import print_json
from ._console import out
from ._runs import fmt_value, short_choices


def history(
    db: str = typer.Argument(..., help="history database written by `autoarch search`"),
    run: str | None = typer.Option(None, "--run", "-r", help="show this run's trials"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """List runs (best, trials done, status); with --run, every trial of that run."""
    from autoarch.search.history import History, unreadable
    from autoarch.search.options import objectives_of_text
    from autoarch.search.results import best_trials

    h = History(db, readonly=True)
    try:
        if run is None:
            rows = []
            for r in h.runs():
                objs = objectives_of_text(r["objectives"])
                best = best_trials(h, r["id"], objs)
                rows.append({**_run_json(r), "done": h.counted(r["id"]),
                             "states": h.state_counts(r["id"]),
                             "best": [json.loads(b["objective"]) for b in best]})
            if as_json:
                print_json({"db": db, "runs": rows})
                return
            table = Table(title=f"runs in {db}", title_justify="left")
            for col in ("run", "model", "strategy", "trials", "best", "status", "started"):
                table.add_column(col)
            for r in rows:
                best = "; ".join(", ".join(fmt_value(v) for v in b) for b in r["best"][:3])
                table.add_row(r["name"], r["model"], r["strategy"],
                              f"{r['done']}/{r['trials_requested']}", best or "-",
                              r["status"], r["started_at"][:19])
            out.print(table)
            return
        r = h.get_run(run)
        trials = h.trials(r["id"])
        if as_json:
            print_json({"db": db, "run": _run_json(r), "trials": [_trial_json(t)
                                                                   for t in trials]})
            return
        out.print(f"run {r['name']}: model {r['model']}, strategy {r['strategy']}, "
                  f"{h.counted(r['id'])}/{r['trials_requested']} trials done, {r['status']}",
                  markup=False)
        table = Table(title_justify="left")
        for col in ("#", "state", "objective", "params", "s", "note", "choices"):
            table.add_column(col, overflow="fold")
        for t in trials:
            obj = json.loads(t["objective"]) if t["objective"] else None
            note = (f"same as #{t['duplicate_of']}" if t["duplicate_of"] is not None
                    else t["error"] or "")
            table.add_row(str(t["number"]), t["state"],
                          ", ".join(fmt_value(v) for v in obj) if obj else "",
                          f"{t['params']:,}" if t["params"] is not None else "",
                          f"{t['duration_s']:.1f}" if t["duration_s"] is not None else "",
                          note, short_choices(json.loads(t["choices"] or "{}"), 60))
        out.print(table)
    except (ValueError, TypeError) as e:  # a stored value that does not decode
        raise unreadable(db, e) from e
    finally:
        h.close()


def _run_json(r: dict[str, Any]) -> dict[str, Any]:
    keep = ("id", "name", "model", "spec_file", "spec_hash", "strategy", "trials_requested",
            "seed", "epochs", "study_name", "study_storage", "started_at", "finished_at",
            "status")
    return {k: r[k] for k in keep} | {"objectives": json.loads(r["objectives"])}


def _trial_json(t: dict[str, Any]) -> dict[str, Any]:
    out_ = dict(t)
    for key in ("choices", "train_config", "metrics", "objective"):
        out_[key] = json.loads(t[key]) if t[key] else None
    out_.pop("traceback", None)
    return out_

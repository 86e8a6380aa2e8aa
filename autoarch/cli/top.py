"""`autoarch top DB`: a run's trials ranked by the objective (the Pareto fronts first)."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from autoarch.dsl.errors import CommandError

from ._common import print_json
from ._console import out
from ._runs import fmt_value, short_choices

#: the metrics shown beside the objective when a trial has them
SHOWN = ("val_accuracy", "val_loss", "test_accuracy", "train_time")


def top(
    db: str = typer.Argument(..., help="history database written by `autoarch search`"),
    run: str | None = typer.Option(None, "--run", "-r", help="run name (default: the latest)"),
    k: int = typer.Option(10, "-k", min=1, help="how many trials"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """The run's k best complete trials, best first (several objectives: Pareto front 0
    first, then the front of the rest, ...); duplicates are shown once."""
    from autoarch.search.history import History, unreadable
    from autoarch.search.options import objectives_of_text
    from autoarch.search.results import parsed, ranked_trials

    h = History(db, readonly=True)
    try:
        r = h.get_run(run)
        objs = objectives_of_text(r["objectives"])
        rows = [parsed(t) for t in ranked_trials(h, r["id"], objs)[:k]]
        if as_json:
            print_json({"run": r["name"], "objectives": [str(o) for o in objs],
                        "trials": [_trial_json(t) for t in rows]})
            return
        if not rows:
            raise CommandError(f"run {r['name']} in {db} has no complete trial yet",
                               hint=f"`autoarch history {db} --run {r['name']}` shows its "
                                    "trials")
        out.print(f"run {r['name']}: the {len(rows)} best of {h.counted(r['id'])} trials",
                  markup=False)
        table = Table(title_justify="left")
        table.add_column("#", justify="right")
        if len(objs) > 1:
            table.add_column("front", justify="right")
        for o in objs:
            table.add_column(o.metric, justify="right")
        shown = [m for m in SHOWN if m not in {o.metric for o in objs}
                 and any(m in (t["metrics"] or {}) for t in rows)]
        for m in shown:
            table.add_column(m, justify="right")
        table.add_column("params", justify="right")
        table.add_column("flops", justify="right")
        table.add_column("choices", overflow="fold")
        for t in rows:
            cells = [str(t["number"])] + ([str(t["rank"])] if len(objs) > 1 else [])
            cells += [fmt_value(v) for v in t["objective"]]
            cells += [fmt_value(t["metrics"].get(m, "")) for m in shown]
            cells += [f"{t['params']:,}", f"{t['flops']:,}", short_choices(t["choices"], 80)]
            table.add_row(*cells)
        out.print(table)
    except (ValueError, TypeError) as e:  # a stored value that does not decode
        raise unreadable(db, e) from e
    finally:
        h.close()


def _trial_json(t: dict[str, Any]) -> dict[str, Any]:
    keep = ("number", "rank", "state", "objective", "metrics", "choices", "params", "flops",
            "arch_hash", "duration_s")
    return {k: t[k] for k in keep}

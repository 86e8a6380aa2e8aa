"""`autoarch curves DB --trial N`: a trial's epochs (its learning curve)."""

from __future__ import annotations

import typer
from rich.table import Table

from autoarch.dsl.errors import CommandError

from ._common import print_json
from ._console import out
from ._runs import fmt_value

COLUMNS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "wall_s")


def curves(
    db: str = typer.Argument(..., help="history database written by `autoarch search`"),
    trial: int = typer.Option(..., "--trial", "-t", help="the trial's number in the run"),
    run: str | None = typer.Option(None, "--run", "-r", help="run name (default: the latest)"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """The epochs of one trial: losses, accuracies, learning rate, seconds, and the other
    numbers an objective function reported. A duplicate shows its original's epochs."""
    from autoarch.search.history import History, loads, unreadable

    h = History(db, readonly=True)
    try:
        r = h.get_run(run)
        found = [t for t in h.trials(r["id"]) if t["number"] == trial]
        if not found:
            raise CommandError(f"run {r['name']} in {db} has no trial #{trial}",
                               hint=f"`autoarch history {db} --run {r['name']}` lists them")
        t = found[0]
        source = t
        if t["duplicate_of"] is not None:
            source = next(s for s in h.trials(r["id"]) if s["number"] == t["duplicate_of"])
        rows = h.epochs(source["id"])
        epochs = [{**{k: e.get(k) for k in ("epoch", *COLUMNS)},
                   **(loads(e.get("metrics")) or {})} for e in rows]
        if as_json:
            print_json({"run": r["name"], "trial": trial, "state": t["state"],
                        "epochs_of": source["number"], "epochs": epochs})
            return
        if not epochs:
            why = {"invalid": "it was invalid, never trained", "running": "it is running"}
            raise CommandError(f"trial #{trial} of run {r['name']} has no epochs"
                               + (f" ({why[t['state']]})" if t["state"] in why else ""))
        note = (f" (a duplicate of #{source['number']}: its epochs)"
                if source is not t else "")
        out.print(f"run {r['name']}, trial #{trial}, {t['state']}{note}", markup=False)
        extra = sorted({k for e in epochs for k in e} - {"epoch", *COLUMNS})
        cols = [c for c in COLUMNS if any(e.get(c) is not None for e in epochs)] + extra
        table = Table(title_justify="left")
        table.add_column("epoch", justify="right")
        for c in cols:
            table.add_column(c, justify="right")
        for e in epochs:
            table.add_row(str(e["epoch"]), *("" if e.get(c) is None else fmt_value(e[c])
                                             for c in cols))
        out.print(table)
    except (ValueError, TypeError) as e:  # a stored value that does not decode
        raise unreadable(db, e) from e
    finally:
        h.close()

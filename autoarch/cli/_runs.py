"""Shared by `search`, `history` and `best`: how runs and trials are shown."""

from __future__ import annotations

import json
from typing import Any

from rich.table import Table


def fmt_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def fmt_objective(objectives: list[Any], values: list[float]) -> str:
    return ", ".join(f"{o.metric} {fmt_value(v)}" for o, v in zip(objectives, values,
                                                                    strict=False))


def short_choices(choices: dict[str, Any], width: int = 100) -> str:
    """``a.b.c=1`` shown as ``c=1`` where the last part is unambiguous."""
    tails = [k.rsplit(".", 1)[-1] for k in choices]
    parts = []
    for (k, v), tail in zip(choices.items(), tails, strict=True):
        key = tail if tails.count(tail) == 1 else k
        parts.append(f"{key}={fmt_value(v)}")
    text = " ".join(parts)
    return text if len(text) <= width else text[:width - 1] + "…"


def _parsed(v: Any) -> Any:
    return json.loads(v) if isinstance(v, str) else v


def best_table(rows: list[dict[str, Any]], objectives: list[Any]) -> Table:
    table = Table(title="best" if len(objectives) == 1 else "Pareto front", title_justify="left")
    table.add_column("trial", justify="right")
    for o in objectives:
        table.add_column(str(o), justify="right")
    table.add_column("params", justify="right")
    table.add_column("flops", justify="right")
    table.add_column("choices", overflow="fold")
    for r in rows:  # history rows, their JSON columns as text or parsed
        values = _parsed(r["objective"])
        choices = _parsed(r["choices"]) or {}
        table.add_row(str(r["number"]), *(fmt_value(v) for v in values),
                      f"{r['params']:,}", f"{r['flops']:,}",
                      "\n".join(f"{k} = {fmt_value(v)}" for k, v in choices.items()))
    return table

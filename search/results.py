"""What a search returns and how the best trials are chosen, from the history rows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .history import History, loads
from .options import Objective


@dataclass
class TrialOutcome:
    """One proposal of the run, as recorded."""

    number: int
    state: str
    choices: dict[str, Any]
    arch_hash: str | None = None
    params: int | None = None
    flops: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    objective: list[float] | None = None
    error: str | None = None
    duplicate_of: int | None = None
    duration_s: float = 0.0


@dataclass
class SearchResult:
    run: str
    run_id: int
    db: Path
    objectives: list[Objective]
    counted: int
    requested: int
    #: the proposals made by this call, in order (invalid ones included)
    outcomes: list[TrialOutcome]
    #: why the loop stopped early (timeout, grid exhausted), or None
    stopped: str | None
    #: the run's best trials (the Pareto front for several objectives): history rows
    #: with their JSON columns (choices, train_config, metrics, objective) parsed
    best: list[dict[str, Any]]
    study: Any = None


def parsed(row: Mapping[str, Any]) -> dict[str, Any]:
    """A trials row with its JSON columns as Python values."""
    out = dict(row)
    for key in ("choices", "train_config", "metrics", "objective"):
        if isinstance(out.get(key), str):
            out[key] = loads(out[key])
    return out


def best_trials(h: History, run_id: int, objectives: list[Objective]) -> list[dict[str, Any]]:
    """The run's best complete trial, or its Pareto front (ties: earliest first)."""
    return best_of([r for r in h.trials(run_id, ["complete"]) if r["duplicate_of"] is None],
                   objectives)


def best_of(rows: list[dict[str, Any]], objectives: list[Objective]) -> list[dict[str, Any]]:
    """The best of complete trial rows (in trial order), or their Pareto front (ties:
    earliest first)."""
    if not rows:
        return []
    vals = {r["id"]: loads(r["objective"]) for r in rows}
    if len(objectives) == 1:
        o = objectives[0]
        best = rows[0]
        for r in rows[1:]:
            if o.better(vals[r["id"]][0], vals[best["id"]][0]):
                best = r
        return [best]
    return [r for r in rows if not any(dominates(objectives, vals[s["id"]], vals[r["id"]])
                                       for s in rows)]


def dominates(objectives: list[Objective], a: list[float], b: list[float]) -> bool:
    """Whether values ``a`` Pareto-dominate ``b``: no worse in each, better in one."""
    ge = all(x == y or o.better(x, y) for o, x, y in zip(objectives, a, b, strict=True))
    return ge and any(o.better(x, y) for o, x, y in zip(objectives, a, b, strict=True))


def ranked_trials(h: History, run_id: int, objectives: list[Objective]
                  ) -> list[dict[str, Any]]:
    """The run's complete trials (not duplicates), best first, each with its ``rank``:
    by the objective (ties: earliest first); for several, by Pareto front (rank 0 is the
    front, rank 1 the front of the rest, ...), then by the first objective."""
    rows = [dict(r) for r in h.trials(run_id, ["complete"]) if r["duplicate_of"] is None]
    vals = {r["id"]: loads(r["objective"]) for r in rows}
    first = objectives[0]
    sign = -1.0 if first.direction == "maximize" else 1.0

    def key(r: dict[str, Any]) -> tuple[float, int]:
        return sign * vals[r["id"]][0], r["number"]

    if len(objectives) == 1:
        ordered = sorted(rows, key=key)
        for i, r in enumerate(ordered):
            r["rank"] = i
        return ordered
    out: list[dict[str, Any]] = []
    rest, front_rank = rows, 0
    while rest:
        front = [r for r in rest if not any(dominates(objectives, vals[s["id"]], vals[r["id"]])
                                            for s in rest)]
        for r in sorted(front, key=key):
            r["rank"] = front_rank
            out.append(r)
        ids = {r["id"] for r in front}
        rest = [r for r in rest if r["id"] not in ids]
        front_rank += 1
    return out

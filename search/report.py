"""What `autoarch report` and `autoarch plot` show, read from a history database.

One function per part of a report, each returning plain data that
``search/plots.py`` draws (with plotly for the HTML report, with matplotlib for a
PNG) and that tests can check against the database itself:

- :func:`progress`: the best objective so far against the trial number;
- :func:`tradeoff`: the complete trials on their objectives and costs, the Pareto
  front marked;
- :func:`importance`: how much each decision explains the objective (Optuna's
  fANOVA, on the run's Optuna study);
- :func:`curves`: the per-epoch validation metric of the top trials;
- :func:`top_table`: the trials best first;
- :func:`failures`: how many trials ended in each state, and why they failed;
- :func:`architecture`: the best trial's IR graph (ops, shapes, params);
- :func:`supernet`: a one-shot run's supernet epochs and scored candidates.

A part that has nothing to show says why in its ``note``; nothing here raises for
a run that is empty, failed throughout or one-shot.
"""

from __future__ import annotations

import math
import re
import shutil
import tempfile
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..compiler.settings import EPOCH_METRICS
from .history import History, loads
from .options import Objective, objectives_of_text
from .results import best_trials, parsed, ranked_trials
from .study import journal_path

#: runs a report shows when none is named: the latest ones
MAX_RUNS = 8
#: complete trials the decision importance needs at the least
MIN_IMPORTANCE_TRIALS = 4
#: trials a reason lists by number
SHOWN_NUMBERS = 12
#: the states of the table's rows after the complete ones, in this order
_LATER_STATES = ("pruned", "failed", "invalid", "running")


@dataclass
class RunData:
    """One run's row and its trials (JSON columns parsed), read once."""

    row: dict[str, Any]
    objectives: list[Objective]
    trials: list[dict[str, Any]]

    @property
    def name(self) -> str:
        return str(self.row["name"])

    @property
    def id(self) -> int:
        return int(self.row["id"])

    def complete(self, *, duplicates: bool = True) -> list[dict[str, Any]]:
        """Complete trials with a finite value for each objective, by number."""
        return [t for t in self.trials if t["state"] == "complete" and _finite(t["objective"])
                and len(t["objective"]) == len(self.objectives)
                and (duplicates or t["duplicate_of"] is None)]


def load_run(h: History, row: dict[str, Any]) -> RunData:
    return RunData(row, objectives_of_text(row["objectives"]),
                   [parsed(t) for t in h.trials(row["id"])])


def select_runs(h: History, names: Sequence[str] | None) -> tuple[list[RunData], str | None]:
    """The runs named (in that order), or the latest :data:`MAX_RUNS`; and a note when
    runs were left out. A HistoryError for an unknown name or a database without runs."""
    if names:
        rows, seen = [], set()
        for n in names:
            r = h.get_run(n)
            if r["id"] not in seen:
                seen.add(r["id"])
                rows.append(r)
        return [load_run(h, r) for r in rows], None
    rows = h.runs()
    if not rows:
        h.get_run(None)  # the one-line "holds no runs yet"
    note = None
    if len(rows) > MAX_RUNS:
        note = (f"showing the latest {MAX_RUNS} of {len(rows)} runs; name others with "
                "--run")
        rows = rows[-MAX_RUNS:]
    return [load_run(h, r) for r in rows], note


def default_run(h: History, name: str | None) -> RunData:
    """The run named, else the latest with a complete trial, else the latest."""
    if name is not None:
        return load_run(h, h.get_run(name))
    row = h.latest_run(complete=True) or h.get_run(None)
    return load_run(h, row)


# -- best so far


@dataclass
class Progress:
    """One run's best value of one objective after each complete trial."""

    run: str
    objective: str
    numbers: list[int]
    values: list[float]
    best: list[float]


def progress(run: RunData) -> list[Progress]:
    """For each objective of the run: every complete trial's value, and the best so far."""
    done = run.complete()
    out = []
    for i, o in enumerate(run.objectives):
        numbers = [t["number"] for t in done]
        values = [float(t["objective"][i]) for t in done]
        best: list[float] = []
        for v in values:
            best.append(v if not best or o.better(v, best[-1]) else best[-1])
        out.append(Progress(run.name, str(o), numbers, values, best))
    return out


# -- trade-offs and the Pareto front


@dataclass
class Tradeoff:
    """Complete trials on every axis a trade-off can use: the objectives' metrics,
    then params and FLOPs. ``front`` marks the Pareto front (one objective: the best)."""

    run: str
    numbers: list[int]
    axes: dict[str, list[float]]
    front: list[bool]
    x: str
    y: str
    several: bool
    note: str | None = None


def tradeoff(h: History, run: RunData) -> Tradeoff:
    done = run.complete()
    axes: dict[str, list[float]] = {}
    for i, o in enumerate(run.objectives):
        axes[o.metric] = [float(t["objective"][i]) for t in done]
    for cost in ("params", "flops"):
        if cost not in axes:
            axes[cost] = [float(t[cost]) if t[cost] is not None else math.nan for t in done]
    best = {r["id"] for r in best_trials(h, run.id, run.objectives)}
    metrics = [o.metric for o in run.objectives]
    several = len(metrics) > 1
    y = metrics[0]
    x = metrics[1] if several else ("params" if y != "params" else "flops")
    note = None
    if not done:
        note = "no complete trial yet: nothing to plot"
    elif not several:
        note = (f"one objective: each complete trial's {y} against its {x}; the best trial "
                "is marked")
    return Tradeoff(run.name, [t["number"] for t in done], axes,
                    [t["id"] in best for t in done], x, y, several, note)


# -- decision importance


@dataclass
class Importance:
    """How much of each objective's variation each decision explains (sums to 1)."""

    run: str
    values: dict[str, dict[str, float]] = field(default_factory=dict)
    trials: int = 0
    note: str | None = None


def importance(db: str | Path, run: RunData) -> Importance:
    """fANOVA importances of the decisions, from the run's Optuna study.

    The study is read with plain Optuna from a copy of its journal (nothing is
    written beside the database). Only complete, feasible trials with finite values
    count: an invalid candidate is told to Optuna with the worst value, which says
    nothing about its decisions. Decisions that only some trials have (inside an
    alternative, or a repeat iteration) are left out, as Optuna does.
    """
    import optuna

    out = Importance(run.name)
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        directions, trials, why = _study_trials(Path(db), run.row)
    finally:
        optuna.logging.set_verbosity(verbosity)
    if directions is None:
        out.note = why
        return out
    trials = [t for t in trials
              if t.state == optuna.trial.TrialState.COMPLETE and t.values is not None
              and all(math.isfinite(v) for v in t.values) and _feasible(t.system_attrs)]
    out.trials = len(trials)
    if len(trials) < MIN_IMPORTANCE_TRIALS:
        out.note = (f"decision importance needs at least {MIN_IMPORTANCE_TRIALS} complete "
                    f"trials; the study has {len(trials)}")
        return out
    from optuna.search_space import intersection_search_space

    space = {k: d for k, d in intersection_search_space(trials).items() if not d.single()}
    if len(space) < 2:
        which = f" ({next(iter(space))})" if space else ""
        out.note = (f"{'only one decision' if space else 'no decision'}{which} varies in "
                    "every complete trial: there is nothing to compare it with")
        return out
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            copy = optuna.create_study(directions=directions)
            copy.add_trials(trials)
            evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
            for i, o in enumerate(run.objectives[:len(directions)]):
                found = optuna.importance.get_param_importances(
                    copy, evaluator=evaluator, target=lambda t, i=i: t.values[i])
                out.values[str(o)] = {k: float(v) for k, v in found.items()}
    except Exception as e:  # noqa: BLE001 - an analysis that cannot run is a note
        out.values = {}
        out.note = f"Optuna could not compute the importances ({type(e).__name__}: {e})"
    finally:
        optuna.logging.set_verbosity(verbosity)
    return out


def _study_trials(db: Path, row: dict[str, Any]) -> tuple[Any, list[Any], str]:
    """The directions and trials of the run's Optuna study, read from a copy of its
    journal; or None, [] and why not."""
    path = db.parent / (row.get("study_storage") or journal_path(db).name)
    if not path.is_file() and journal_path(db).is_file():
        path = journal_path(db)  # the database and its journal renamed together
    if not path.is_file():
        return None, [], f"no Optuna journal beside the database ({path.name} is missing)"
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    with tempfile.TemporaryDirectory(prefix="autoarch-report-") as tmp:
        copy = Path(tmp) / "journal.log"
        try:
            shutil.copyfile(path, copy)
            _drop_cut_line(copy)
            storage = JournalStorage(JournalFileBackend(str(copy)))
            name = row.get("study_name") or row["name"]
            if name not in optuna.get_all_study_names(storage):
                return None, [], f"the Optuna journal {path.name} has no study {name}"
            study = optuna.load_study(study_name=name, storage=storage)
            return study.directions, study.get_trials(deepcopy=True), ""
        except Exception as e:  # noqa: BLE001 - a journal we cannot read is a note
            return None, [], (f"the Optuna journal {path.name} could not be read "
                              f"({type(e).__name__})")


def _drop_cut_line(path: Path) -> None:
    """A last line a killed writer cut short is no operation: drop it (in the copy)."""
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        path.write_bytes(data[:data.rfind(b"\n") + 1])


def _feasible(attrs: dict[str, Any]) -> bool:
    """False for a trial told to Optuna as violating a constraint (either way of
    recording it: Optuna's ``constraints`` list, or a ``constraints:NAME`` value)."""
    for key, v in attrs.items():
        if key == "constraints" and isinstance(v, list | tuple):
            if any(c > 0 for c in v):
                return False
        elif key.startswith("constraints:") and isinstance(v, int | float) and v > 0:
            return False
    return True


# -- the top trials: table and learning curves


def ranking(h: History, run: RunData) -> list[dict[str, Any]]:
    """The run's trials best first, duplicates left out: complete trials as
    ``results.ranked_trials`` ranks them (several objectives: Pareto fronts first, each
    by the first objective), then pruned, failed, invalid and running ones by number."""
    by_id = {t["id"]: t for t in run.complete(duplicates=False)}
    out = [by_id[r["id"]] for r in ranked_trials(h, run.id, run.objectives) if r["id"] in by_id]
    ids = {t["id"] for t in out}
    for state in ("complete", *_LATER_STATES):
        out += [t for t in run.trials if t["state"] == state and t["id"] not in ids
                and t["duplicate_of"] is None]
    return out


@dataclass
class Table:
    """Rows of cells, one column per name; a cell is a number, a string or None."""

    columns: list[str]
    rows: list[list[Any]]
    note: str | None = None


def top_table(h: History, run: RunData, k: int) -> Table:
    top = ranking(h, run)[:k]
    metrics: list[str] = []
    shown = {o.metric for o in run.objectives} | {"params", "flops"}
    for t in top:
        for m in (t["metrics"] or {}):
            if m not in shown and m not in metrics:
                metrics.append(m)
    order = {m: i for i, m in enumerate(EPOCH_METRICS)}
    metrics.sort(key=lambda m: (order.get(m, len(order)), m))
    columns = ["rank", "trial", "state", *(str(o) for o in run.objectives), "params", "flops",
               *metrics, "choices"]
    rows = []
    for rank, t in enumerate(top, 1):
        values = t["objective"] or []
        objective = [values[i] if i < len(values) else None for i in range(len(run.objectives))]
        m = t["metrics"] or {}
        rows.append([rank, t["number"], t["state"], *objective, t["params"], t["flops"],
                     *(m.get(name) for name in metrics), choices_text(t["choices"] or {})])
    note = None if top else "no trials recorded yet"
    return Table(columns, rows, note)


def choices_text(choices: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in choices.items())


@dataclass
class Curves:
    """Per-epoch values of one metric for the top trials (best first)."""

    run: str
    metric: str | None
    series: list[tuple[int, list[int], list[float]]]
    note: str | None = None


def curves(h: History, run: RunData, k: int) -> Curves:
    top = [t for t in ranking(h, run) if t["state"] == "complete"][:k]
    epochs = {t["number"]: h.epochs(t["id"]) for t in top}
    metric = _curve_metric(run, [e for rows in epochs.values() for e in rows])
    series = []
    for t in top:
        points = [(int(e["epoch"]), _epoch_value(e, metric)) for e in epochs[t["number"]]]
        points = [(ep, v) for ep, v in points if v is not None and math.isfinite(v)]
        if points:
            series.append((t["number"], [p[0] for p in points], [p[1] for p in points]))
    note = None
    if not top:
        note = "no complete trial yet: no learning curves"
    elif metric is None or not series:
        note = "the top trials recorded no per-epoch metrics"
    return Curves(run.name, metric, series, note)


def _curve_metric(run: RunData, rows: list[dict[str, Any]]) -> str | None:
    """The objective's metric when epochs record it, else the first validation metric."""
    wanted = [o.metric for o in run.objectives] + list(EPOCH_METRICS)
    for m in wanted:
        if any(_epoch_value(e, m) is not None for e in rows):
            return m
    return None


def _epoch_value(row: dict[str, Any], metric: str | None) -> float | None:
    if metric is None:
        return None
    v = row.get(metric) if metric in EPOCH_METRICS else (loads(row.get("metrics")) or {}).get(
        metric)
    return float(v) if isinstance(v, int | float) else None


# -- failures


@dataclass
class FailureGroup:
    state: str
    reason: str
    count: int
    numbers: list[int]


@dataclass
class Failures:
    counts: dict[str, int]
    groups: list[FailureGroup]


def failures(run: RunData) -> Failures:
    """Trials per state, and the failed and invalid ones grouped by reason (the first
    line of the error, without the costs a constraint's reason lists)."""
    counts = Counter(t["state"] for t in run.trials)
    groups: dict[tuple[str, str], list[int]] = {}
    for t in run.trials:
        if t["state"] in ("failed", "invalid"):
            groups.setdefault((t["state"], reason_of(t["error"])), []).append(t["number"])
    return Failures(dict(sorted(counts.items())), sorted(
        (FailureGroup(s, r, len(ns), ns[:SHOWN_NUMBERS]) for (s, r), ns in groups.items()),
        key=lambda g: (g.state, -g.count, g.reason)))


def reason_of(error: str | None) -> str:
    if not error or not error.strip():
        return "no reason recorded"
    line = error.strip().splitlines()[0]
    return re.sub(r"\s*\([^()]*=[^()]*\)$", "", line) or line


# -- one-shot runs


@dataclass
class Supernet:
    """A one-shot run's supernet training, and the candidates scored on it."""

    epochs: list[dict[str, Any]]
    scores: list[dict[str, Any]]


def supernet(h: History, run: RunData) -> Supernet | None:
    """None for a run that trained no supernet."""
    epochs = h.supernet_epochs(run.id)
    scores = [parsed(s) for s in h.supernet_scores(run.id)]
    return Supernet(epochs, scores) if epochs or scores else None


# -- small helpers


def _finite(values: Any) -> bool:
    return isinstance(values, list) and bool(values) and all(
        isinstance(v, int | float) and math.isfinite(v) for v in values)


"""Tabular benchmarks: every candidate of a small space trained S times, and replays.

A **table** is a history database (:mod:`autoarch.search.history`) holding one grid
run per training seed, named ``tabulate-seed-<s>``: every candidate of the spec's
space trained with the spec's `train` settings and ``seed = s``, every metric and
epoch recorded. Built by :func:`~autoarch.search.tabulate.tabulate` (``autoarch
tabulate``), it is resumable
after a kill like any run (each seed's run resumes; nothing is trained twice), runs
on Ray with ``backend = ray``, and can be read with every tool that reads a history
(``autoarch top``, ``autoarch curves``, SQL).

:class:`Table` reads one back. A **replay** is a search whose trials are looked up in
a table instead of trained (``autoarch search x.spec --replay table.db``): the same
samplers, constraints, duplicates and history as a real run, each trial given the
record of one of the candidate's seeds (``draw = "seed"``: drawn from the search's
seed and the trial's number) or the mean over its seeds (``draw = "mean"``). Epochs
are replayed one by one, so pruners prune a replayed trial where they would have
pruned the real one. A replay's trials record ``objective_fn = table:<digest>:<draw>``
in their training settings, so a real run's results are never taken for a replay's
(nor the other way round).

See docs/tables.md.
"""

from __future__ import annotations

import hashlib
import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..dsl.errors import CommandError
from .history import History, dumps, loads

#: where the tables shipped with autoarch live (``Table("quickstart")`` opens one)
BUNDLED = Path(__file__).resolve().parent / "table_data"
#: the name of the run that holds a table's seed ``s``
RUN_PREFIX = "tabulate-seed-"
#: what a replay trial draws: one recorded seed, or the mean over the seeds
DRAWS = ("seed", "mean")
#: metrics that are averaged over seeds in a ``mean`` draw (numbers only)
_NOT_AVERAGED = ("epochs",)


class TableError(CommandError):
    """A table that cannot be built or read: one line, with what to do."""


# ---- reading --------------------------------------------------------------------------


@dataclass
class Record:
    """One candidate trained with one seed: its state, metrics and epoch rows."""

    seed: int
    state: str
    metrics: dict[str, Any]
    epochs: list[dict[str, Any]]
    error: str | None = None


class Table:
    """A table built by :func:`tabulate`, read into memory.

    Example:
        >>> table = autoarch.Table("quickstart.table.db")
        >>> best = max(table.mean_values().items(), key=lambda kv: kv[1])
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file() and (BUNDLED / f"{path}.db").is_file():
            self.path = BUNDLED / f"{path}.db"  # a table shipped with autoarch, by name
        if not self.path.is_file():
            shipped = ", ".join(bundled()) or "none"
            raise TableError(f"no table at {self.path}",
                             hint=f"build one with autoarch tabulate x.spec -o TABLE, or name "
                                  f"a shipped one ({shipped})")
        h = History(self.path, create=False, readonly=True)
        try:
            runs = sorted((r for r in h.runs() if r["name"].startswith(RUN_PREFIX)),
                          key=lambda r: int(r["name"][len(RUN_PREFIX):]))
            if not runs:
                raise TableError(f"{self.path} is a history but not a table: it has no "
                                 f"{RUN_PREFIX}<s> runs",
                                 hint="build one with autoarch tabulate x.spec -o TABLE")
            self.spec_text = runs[0]["spec_text"]
            self.spec_name = runs[0]["model"]
            self.seeds: list[int] = []
            #: arch hash -> the records of its seeds, in seed order
            self.records: dict[str, list[Record]] = {}
            #: arch hash -> the choices it was first tabulated under
            self.choices: dict[str, dict[str, Any]] = {}
            configs = set()
            for r in runs:
                seed = int(r["name"][len(RUN_PREFIX):])
                self.seeds.append(seed)
                self._read_run(h, r["id"], seed, configs)
        finally:
            h.close()
        #: the training settings every record shares, but the seed
        self.train_config = loads(configs.pop()) if len(configs) == 1 else None
        self.digest = hashlib.sha256(
            dumps(sorted((k, [(x.seed, x.state, x.metrics) for x in v])
                         for k, v in self.records.items())).encode()).hexdigest()[:12]

    def _read_run(self, h: History, run_id: int, seed: int, configs: set[str]) -> None:
        rows = h.trials(run_id)
        by_number = {r["number"]: r for r in rows}
        for r in rows:
            if r["state"] in ("invalid", "running") or r["arch_hash"] is None:
                continue
            if r["error"] and r["error"].startswith("interrupted"):
                continue
            source = by_number.get(r["duplicate_of"], r) if r["duplicate_of"] is not None else r
            recs = self.records.setdefault(r["arch_hash"], [])
            if any(x.seed == seed for x in recs):
                continue  # a duplicate of a candidate already read for this seed
            cfg = loads(r["train_config"]) or {}
            cfg.pop("seed", None)
            configs.add(dumps(cfg))
            epochs = [{k: v for k, v in e.items() if k not in ("trial_id",)}
                      for e in h.epochs(source["id"])]
            recs.append(Record(seed, r["state"], loads(r["metrics"]) or {}, epochs,
                               r["error"]))
            self.choices.setdefault(r["arch_hash"], loads(r["choices"]) or {})

    def spec(self) -> Any:
        """The spec the table was built from."""
        from ..compiler.spec import loads as load_spec

        return load_spec(self.spec_text, f"{self.spec_name}.spec")

    def __len__(self) -> int:
        return len(self.records)

    def __contains__(self, arch_hash: object) -> bool:
        return arch_hash in self.records

    def value(self, arch_hash: str, metric: str = "val_accuracy", seed: int | None = None
              ) -> float | None:
        """A candidate's ``metric``: of one seed, or the mean over its complete seeds
        (None when no seed completed)."""
        recs = [r for r in self.records.get(arch_hash, ()) if r.state == "complete"
                and (seed is None or r.seed == seed) and metric in r.metrics]
        vals = [float(r.metrics[metric]) for r in recs]
        return statistics.fmean(vals) if vals else None

    def mean_values(self, metric: str = "val_accuracy") -> dict[str, float]:
        """Every candidate's mean ``metric`` over its seeds (candidates with one)."""
        out = {}
        for h in self.records:
            v = self.value(h, metric)
            if v is not None:
                out[h] = v
        return out

    def replay(self, draw: str = "seed") -> ReplayObjective:
        """What trains a replayed search's trials (see the module)."""
        return ReplayObjective(self, draw)


def bundled() -> list[str]:
    """The names of the tables shipped with autoarch (docs/tables.md)."""
    return sorted(p.stem for p in BUNDLED.glob("*.db"))


# ---- replaying ------------------------------------------------------------------------


@dataclass
class _Epoch:
    """An epoch row as the trainer's ``EpochResult`` looks (what ``on_epoch`` takes)."""

    epoch: int
    train_loss: float | None
    train_accuracy: float | None
    val_loss: float | None
    val_accuracy: float | None
    wall_s: float | None
    lr: float | None
    extra: dict[str, Any] | None = None


@dataclass
class _Replayed:
    metrics: dict[str, Any]
    model: Any = None


class ReplayObjective:
    """Trains nothing: a candidate's result is looked up in a :class:`Table`.

    Used as a search's objective (``opts.objective``), so the driver records and
    tells the study exactly as for a trained trial.
    """

    fn = None  # (no function's source to record)

    def __init__(self, table: Table, draw: str = "seed"):
        if draw not in DRAWS:
            raise TableError(f"unknown draw {draw!r}; expected one of {', '.join(DRAWS)}")
        self.table, self.draw = table, draw
        self.name = f"table:{table.digest}:{draw}"
        self.seed = 0  # the search's seed, set by the search that replays

    def check(self, cfg: Mapping[str, Any]) -> None:
        """The search must train as the table did (all settings but the seed)."""
        from .evaluate import config_text

        want = self.table.train_config
        if want is None:
            return
        got = loads(config_text(cfg, None)) or {}
        got.pop("seed", None)
        differ = sorted(k for k in set(want) | set(got)
                        if k != "data_fingerprint" and want.get(k) != got.get(k))
        if differ:
            k = differ[0]
            raise TableError(f"this search trains with {k} = {got.get(k)}, the table "
                             f"{self.table.path.name} was built with {k} = {want.get(k)}",
                             hint="replay with the table's settings (drop --epochs/--data), "
                                  "or tabulate these settings")

    def run(self, graph: Any, cfg: Mapping[str, Any], base_dir: Any, *, number: int | None = None,
            on_epoch: Callable[[Any], None] | None = None, deadline: float | None = None
            ) -> _Replayed:
        from .trainer import TrainingFailed

        recs = self.table.records.get(graph.hash)
        if not recs:
            raise TrainingFailed(f"candidate {graph.hash[:12]} is not in the table "
                                 f"{self.table.path.name}")
        if self.draw == "seed":
            from .strategies._common import trial_rng

            rec = recs[trial_rng(self.seed, number or 0, "replay").randrange(len(recs))]
            if rec.state != "complete":
                raise TrainingFailed(rec.error or f"seed {rec.seed} {rec.state} in the table")
            metrics, epochs = dict(rec.metrics), rec.epochs
        else:
            done = [r for r in recs if r.state == "complete"]
            if not done:
                raise TrainingFailed(recs[0].error or "no seed completed in the table")
            metrics, epochs = _mean(done)
        for ep in epochs:
            if on_epoch is not None:
                on_epoch(_Epoch(ep["epoch"], ep.get("train_loss"), ep.get("train_accuracy"),
                                ep.get("val_loss"), ep.get("val_accuracy"), ep.get("wall_s"),
                                ep.get("lr"), loads(ep.get("metrics")) if isinstance(
                                    ep.get("metrics"), str) else ep.get("metrics")))
        return _Replayed(metrics)


def _mean(recs: list[Record]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Metrics and epoch rows averaged over seeds (numbers only; epochs all seeds have)."""
    metrics: dict[str, Any] = {}
    for k, v in recs[0].metrics.items():
        vals = [r.metrics.get(k) for r in recs]
        if k not in _NOT_AVERAGED and all(isinstance(x, int | float) and not isinstance(
                x, bool) for x in vals):
            metrics[k] = statistics.fmean(vals)
        else:
            metrics[k] = v
    n = min(len(r.epochs) for r in recs)
    epochs = []
    for i in range(n):
        row = dict(recs[0].epochs[i])
        for k in list(row):
            vals = [r.epochs[i].get(k) for r in recs]
            if k not in ("epoch", "metrics") and all(isinstance(x, int | float) for x in vals):
                row[k] = statistics.fmean(vals)
        epochs.append(row)
    return metrics, epochs


def replay_options(spec: Any, opts: Any, table: str | Path | Table, draw: str = "seed") -> None:
    """Make ``opts`` (a search's options) replay ``table``: checked here, before the run
    is written."""
    from .evaluate import trial_config

    if opts.objective is not None:
        raise TableError("a search replays a table or trains with an objective function, "
                         "not both")
    if opts.backend != "local":
        raise TableError("a replay trains nothing, so it runs in this process",
                         hint="drop --backend ray (or set backend = local)")
    if opts.strategy == "oneshot":
        raise TableError("a one-shot search trains a supernet; a table holds trained "
                         "candidates", hint="replay a multi-trial strategy")
    t = table if isinstance(table, Table) else Table(table)
    objective = t.replay(draw)
    objective.seed = opts.seed
    objective.check(trial_config(spec.build(spec.space().sample(seed=0)), opts.overrides))
    opts.objective = objective

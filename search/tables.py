"""Tabular benchmarks: every candidate of a small space trained S times, and replays.

A **table** is a history database (:mod:`autoarch.search.history`) holding one grid
run per training seed, named ``tabulate-seed-<s>``: every candidate of the spec's
space trained with the spec's `train` settings and ``seed = s``, every metric and
epoch recorded. Built by :func:`tabulate` (``autoarch tabulate``), it is resumable
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
import math
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..dsl.errors import CommandError
from .history import History, dumps, loads

#: where the tables shipped with autoarch live (``Table("quickstart")`` opens one)
BUNDLED = Path(__file__).resolve().parent / "table_data"
#: the name of the run that holds a table's seed ``s``
RUN_PREFIX = "tabulate-seed-"
#: at most this many trainings (candidates x seeds) unless ``limit`` says more
DEFAULT_LIMIT = 20_000
#: what a replay trial draws: one recorded seed, or the mean over the seeds
DRAWS = ("seed", "mean")
#: metrics that are averaged over seeds in a ``mean`` draw (numbers only)
_NOT_AVERAGED = ("epochs",)


class TableError(CommandError):
    """A table that cannot be built or read: one line, with what to do."""


# ---- building -------------------------------------------------------------------------


@dataclass
class TabulateResult:
    """What :func:`tabulate` did: the table's file, its size, and each seed's run."""

    db: Path
    candidates: int
    seeds: list[int]
    runs: list[Any] = field(default_factory=list)

    def __str__(self) -> str:
        seeds = f"{len(self.seeds)} seed" + ("s" if len(self.seeds) != 1 else "")
        return (f"table {self.db}: {self.candidates} candidates x {seeds} "
                f"(seeds {', '.join(map(str, self.seeds))})")


def space_size(spec: Any) -> int:
    """The number of candidates of a discrete space; a TableError for a continuous one."""
    space = spec.space()
    if space.continuous:
        d = space.continuous[0]
        raise TableError(f"tabulate needs a discrete space; decision {d.name} is continuous",
                         hint="give float() a step or use choice(...)")
    n = space.count()
    assert n is not None
    return n


def estimate_seconds(spec: Any, cfg: Mapping[str, Any], data: Any, samples: int = 12) -> float:
    """A rough CPU time of one training: mean FLOPs of a few sampled candidates times
    the examples seen (3x for a training step, 1x for validation), at the rate this
    machine multiplies matrices, plus a per-step overhead."""
    import torch

    space = spec.space()
    flops = []
    for i in range(samples):
        try:
            flops.append(spec.build(space.sample(seed=i)).flops)
        except Exception:  # noqa: BLE001 - an invalid sample says nothing about time
            continue
    mean_flops = statistics.fmean(flops) if flops else 1e6
    a = torch.randn(256, 256)
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < 0.05:
        a @ a
        n += 1
    rate = n * 2 * 256**3 / (time.perf_counter() - start)
    n_train, n_val = _sizes(data)
    steps = math.ceil(n_train / int(cfg["batch"]))
    per_epoch = (3 * n_train + n_val) * mean_flops / rate + steps * 2e-3
    return int(cfg["epochs"]) * per_epoch


def _sizes(data: Any) -> tuple[int, int]:
    try:
        return len(data.y_train), len(data.y_val)
    except Exception:  # noqa: BLE001 - torch datasets without a length: a guess
        return 10_000, 2_000


def tabulate(spec: Any, *, seeds: int | list[int] = 3, db: str | Path = "table.db",
             epochs: int | None = None, data: Any = None, backend: str | None = None,
             workers: int | None = None, limit: int = DEFAULT_LIMIT,
             reporter: Any = None) -> TabulateResult:
    """Train every candidate of ``spec``'s space once per seed into the table ``db``.

    ``seeds`` is a count (seeds 0..S-1) or a list of training seeds. ``epochs`` and
    ``data`` replace the spec's `train` settings (as in a search). A space of more
    than ``limit`` trainings (candidates x seeds) is refused with its size and the
    estimated CPU time. Running it again resumes: each seed's run continues where it
    stopped, nothing trained twice; the settings must be the same.

    Raises:
        TableError: a continuous space, a space too large, bad seeds.
        SpecError: a mistake in the spec or the arguments.
    """
    from .driver import Driver, Reporter
    from .engine import run
    from .options import options_of, overrides_of

    seed_list = _seed_list(seeds)
    n = space_size(spec)
    trainings = n * len(seed_list)
    base = overrides_of(epochs, data)
    if trainings > limit:
        from .evaluate import trial_config
        from .run_setup import _data

        probe_cfg = trial_config(spec.build(spec.space().sample(seed=0)), base)
        guess = estimate_seconds(spec, probe_cfg, _data(probe_cfg, _base_dir(spec),
                                                         lambda _: None))
        raise TableError(
            f"the space has {n:,} candidates x {len(seed_list)} seeds = {trainings:,} "
            f"trainings, about {_hours(guess * trainings)} of CPU time at ~{guess:.2g} s each; "
            f"tabulate trains at most {limit:,}",
            hint="narrow the space (fewer choices), use fewer --seeds or --epochs, or raise "
                 "--limit")
    if Path(db).exists() and Path(db).stat().st_size:
        _check_existing(spec, Path(db), base)
    out = TabulateResult(Path(db), n, seed_list)
    for s in seed_list:
        overrides = type(base)(epochs=base.epochs, data=base.data, seed=s)
        opts = options_of(spec, strategy="grid", trials=n, seed=0, timeout=None,
                          pruner="none", backend=backend, workers=workers,
                          cpus_per_trial=None, gpus_per_trial=None, supernet_epochs=None,
                          path_sampler=None, evaluate=None, retrain=None, then=None,
                          objective=None, overrides=overrides)
        rep = reporter or Reporter()
        rep.note(f"seed {s}: {n} candidates")
        out.runs.append(run(Driver(spec, opts, Path(db), f"{RUN_PREFIX}{s}", rep)))
    return out


def _check_existing(spec: Any, db: Path, overrides: Any) -> None:
    """Adding to a table: it must be one, built from this spec with these settings."""
    from .evaluate import trial_config
    from .history import HistoryError

    try:
        table = Table(db)
    except TableError:
        h = History(db, create=False, readonly=True)  # (a HistoryError if not ours)
        empty = not h.runs()
        h.close()
        if empty:
            return
        raise TableError(f"{db} is a history database with runs of its own, not a table",
                         hint="give tabulate another -o") from None
    except HistoryError as e:
        raise TableError(e.message, hint="give tabulate another -o") from None
    if table.spec_text != spec.source:
        raise TableError(f"the table {db} was built from another spec ({table.spec_name}); "
                         "a table holds one space", hint="give tabulate another -o")
    try:
        table.replay().check(trial_config(spec.build(spec.space().sample(seed=0)), overrides))
    except TableError as e:
        raise TableError(e.message.replace("this search trains", "this tabulate trains"),
                         hint="tabulate with the table's settings, or give another -o"
                         ) from None


def _seed_list(seeds: int | list[int]) -> list[int]:
    if isinstance(seeds, bool) or not isinstance(seeds, int | list | tuple):
        raise TableError(f"seeds must be a count or a list of seeds, got {seeds!r}")
    if isinstance(seeds, int):
        if seeds < 1:
            raise TableError(f"--seeds must be at least 1, got {seeds}")
        return list(range(seeds))
    out = [int(s) for s in seeds]
    if not out or len(set(out)) != len(out) or min(out) < 0:
        raise TableError(f"seeds must be distinct non-negative numbers, got {list(seeds)}")
    return out


def _base_dir(spec: Any) -> Path:
    return Path(spec.filename).parent if spec.filename else Path(".")


def _hours(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:,.1f} h"


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

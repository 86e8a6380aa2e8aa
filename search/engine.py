"""The search loop: propose with an Optuna sampler, check on the IR, train, record.

One driver process asks the Optuna study for a trial, elaborates the spec with the
trial as decider (``spec.build_with(OptunaDecider(trial))``), checks shapes,
``require`` and ``constraint`` lines on the IR, skips candidates already trained
in the run, trains the rest and tells the study. Every proposal becomes a row of
the history database (see :mod:`autoarch.search.history`), which is the source
of truth for the run's budget: a run of N trials ends with N trials that ran to
their end (``complete``, ``failed`` or ``pruned``); ``invalid`` proposals and
trials ``interrupted`` by a killed process are kept but not counted, and the
candidates of interrupted trials are evaluated again when the run resumes.
"""

from __future__ import annotations

import hashlib
import io
import math
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..compiler.config import defaults
from ..compiler.deciders import OptunaDecider, RandomDecider
from ..compiler.graph import Graph
from ..compiler.spec import Spec
from ..compiler.values import Symbol, to_json
from ..dsl.errors import SpecError
from .history import INTERRUPTED, History, dumps, loads

#: consecutive invalid proposals after which the search gives up
MAX_INVALID_STREAK = 500
#: random candidates probed before the search to see that some satisfy the constraints
PROBE_SAMPLES = 2000
#: metrics known from the IR before training
GRAPH_METRICS = ("params", "trainable_params", "flops", "memory")
#: metrics measured after every epoch (what a pruner may watch)
EPOCH_METRICS = ("val_accuracy", "val_loss", "train_loss", "train_accuracy")


class SearchError(SpecError):
    """The search itself cannot run (as opposed to a trial failing)."""


@dataclass(frozen=True)
class Objective:
    direction: str  # "maximize" | "minimize"
    metric: str

    def __str__(self) -> str:
        return f"{self.direction}({self.metric})"

    def better(self, a: float, b: float) -> bool:
        return a > b if self.direction == "maximize" else a < b

    @property
    def worst(self) -> float:
        return -math.inf if self.direction == "maximize" else math.inf


def objectives_of(value: Any) -> list[Objective]:
    items = value if isinstance(value, tuple) else (value,)
    return [Objective(it.name, it.args[0].name) for it in items]


def objectives_of_text(text: str) -> list[Objective]:
    """Objectives as a run row stores them (``["maximize(val_accuracy)"]``)."""
    out = []
    for item in loads(text):
        direction, _, rest = item.partition("(")
        out.append(Objective(direction, rest.rstrip(")")))
    return out


@dataclass
class Options:
    """What one search does; the spec's `search` block, overridden by arguments."""

    strategy: str
    trials: int
    objectives: list[Objective]
    seed: int
    timeout: float | None
    pruner: str
    backend: str
    workers: int
    epochs: int | None = None


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
    #: the run's best trials (the Pareto front for several objectives), as history rows
    best: list[dict[str, Any]]
    study: Any = None


class Reporter:
    """Receives progress; the CLI draws a progress bar from it. Default: silent."""

    def start(self, run: str, requested: int, counted: int, resumed: bool) -> None: ...

    def trial(self, outcome: TrialOutcome, counted: int, best: list[float] | None) -> None: ...

    def note(self, text: str) -> None: ...


class _Pruned(Exception):
    pass


@dataclass
class _Job:
    """A checked candidate waiting to be trained."""

    trial: Any
    trial_id: int
    out: TrialOutcome
    graph: Graph
    cfg: dict[str, Any]
    t0: float


def search(spec: Spec, *, strategy: str | None = None, trials: int | None = None,
           epochs: int | None = None, db: str | Path = "autoarch.db", name: str | None = None,
           seed: int | None = None, timeout: float | None = None, pruner: str | None = None,
           backend: str | None = None, workers: int | None = None,
           reporter: Reporter | None = None) -> SearchResult:
    """Search ``spec``'s space; every argument left None comes from the spec's `search`.

    Running again with the same ``db`` and ``name`` resumes that run.

    Example:
        >>> result = autoarch.search(spec, strategy="tpe", trials=20, db="runs.db")
        >>> result.best[0]["metrics"]
    """
    return _Search(spec, _options(spec, strategy=strategy, trials=trials, epochs=epochs,
                                  seed=seed, timeout=timeout, pruner=pruner, backend=backend,
                                  workers=workers),
                   Path(db), name, reporter or Reporter()).run()


def _options(spec: Spec, **given: Any) -> Options:
    from ..compiler.config import check_setting

    cfg = spec.search_config()
    for key, value in given.items():
        if value is None or key == "epochs":
            continue
        if key in ("strategy", "pruner", "backend"):
            value = Symbol(value)
        cfg[key] = check_setting("search", key, value, None, None)  # type: ignore[arg-type]
    opts = Options(strategy=cfg["strategy"].name, trials=cfg["trials"],
                   objectives=objectives_of(cfg["objective"]), seed=cfg["seed"],
                   timeout=cfg["timeout"], pruner=cfg["pruner"].name,
                   backend=cfg["backend"].name, workers=cfg["workers"],
                   epochs=given.get("epochs"))
    if opts.epochs is not None and opts.epochs < 1:
        raise SearchError(f"--epochs must be at least 1, got {opts.epochs}")
    if opts.pruner != "none":
        if len(opts.objectives) > 1:
            raise SearchError("a pruner needs a single objective; this search has "
                              f"{len(opts.objectives)}", hint="set pruner = none")
        if opts.objectives[0].metric not in EPOCH_METRICS:
            raise SearchError(f"a pruner watches a metric measured every epoch, not "
                              f"{opts.objectives[0].metric}",
                              hint="one of " + ", ".join(EPOCH_METRICS))
    if opts.backend == "ray" and opts.pruner != "none":
        raise SearchError("a pruner runs with the local backend only; Ray trials report "
                          "their epochs when they end", hint="set pruner = none, or "
                          "backend = local")
    return opts


def spec_hash(spec: Spec) -> str:
    return hashlib.sha256(spec.source.encode()).hexdigest()[:16]


def train_config_of(graph: Graph) -> dict[str, Any]:
    return {**defaults("train"), **graph.train}


class _Search:
    def __init__(self, spec: Spec, opts: Options, db: Path, name: str | None,
                 reporter: Reporter):
        self.spec, self.opts, self.reporter = spec, opts, reporter
        self.history = History(db)
        self.db = db
        self.name = name
        self.base_dir = Path(spec.filename).parent if spec.filename else Path(".")
        self.outcomes: list[TrialOutcome] = []

    # -- setup

    def run(self) -> SearchResult:
        try:
            return self._run()
        finally:
            self.history.close()

    def _run(self) -> SearchResult:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        from . import strategies

        opts, h = self.opts, self.history
        sampler = strategies.make_sampler(opts.strategy, self.spec, seed=opts.seed,
                                          n_objectives=len(opts.objectives),
                                          trials=opts.trials)
        self._preflight()
        row = h.run(self.name) if self.name else None
        resumed = row is not None
        if row is None:
            self.name = self.name or self._fresh_name()
            storage = str(self.db) + ".optuna.log"
            run_id = h.create_run(
                name=self.name, model=self.spec.name, spec_file=self.spec.filename,
                spec_text=self.spec.source, spec_hash=spec_hash(self.spec),
                strategy=opts.strategy, objectives=dumps([str(o) for o in opts.objectives]),
                config=dumps({"pruner": opts.pruner, "timeout": opts.timeout,
                              "backend": opts.backend, "workers": opts.workers}),
                trials_requested=opts.trials, seed=opts.seed, epochs=opts.epochs,
                study_name=self.name, study_storage=Path(storage).name,
                autoarch_version=_version())
        else:
            run_id = row["id"]
            self._check_resume(row)
            storage = str(self.db.parent / row["study_storage"])
            h.update_run(run_id, trials_requested=opts.trials, status="running",
                         finished_at=None)
        self.run_id = run_id
        study = optuna.create_study(
            study_name=self.name, storage=_journal(storage), sampler=sampler,
            pruner=_pruner(opts.pruner), load_if_exists=True,
            directions=[o.direction for o in opts.objectives])
        self.study = study
        if resumed:
            self._recover(study)
        self.reporter.start(self.name, opts.trials, h.counted(run_id), resumed)
        stopped = None
        try:
            stopped = self._loop(study, sampler)
        except KeyboardInterrupt:
            h.update_run(run_id, status="interrupted")
            raise
        except BaseException:
            h.update_run(run_id, status="failed")
            raise
        h.update_run(run_id, status="finished" if stopped is None or "exhausted" in stopped
                     else "stopped", finished_at=_now())
        return SearchResult(run=self.name, run_id=run_id, db=self.db,
                            objectives=opts.objectives, counted=h.counted(run_id),
                            requested=opts.trials, outcomes=self.outcomes, stopped=stopped,
                            best=best_trials(h, run_id, opts.objectives), study=study)

    def _fresh_name(self) -> str:
        taken = {r["name"] for r in self.history.runs()}
        n = 1
        while f"{self.spec.name}-{n}" in taken:
            n += 1
        return f"{self.spec.name}-{n}"

    def _check_resume(self, row: Mapping[str, Any]) -> None:
        if row["spec_hash"] != spec_hash(self.spec):
            raise SearchError(f"run '{self.name}' in {self.db} was made from a different spec "
                              f"({row['spec_file']}); a run resumes only with its own spec",
                              hint="give this search another --name")
        if row["strategy"] != self.opts.strategy:
            raise SearchError(f"run '{self.name}' uses strategy {row['strategy']}, not "
                              f"{self.opts.strategy}", hint="resume it with its own strategy, "
                              "or give this search another --name")
        if loads(row["objectives"]) != [str(o) for o in self.opts.objectives]:
            raise SearchError(f"run '{self.name}' optimises {', '.join(loads(row['objectives']))}"
                              "; a resumed run keeps its objectives")

    def _recover(self, study: Any) -> None:
        """After a kill: running trials become failed ("interrupted") and are tried again."""
        from optuna.trial import TrialState

        for r in self.history.interrupt_running(self.run_id):
            study.enqueue_trial(loads(r["choices"]) or {})
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            study.tell(t.number, state=TrialState.FAIL)

    def _preflight(self) -> None:
        """Before anything runs: some candidate satisfies the constraints; the data fit."""
        from ..dsl.errors import CandidateError

        reasons: dict[str, int] = {}
        graph = None
        for i in range(PROBE_SAMPLES):
            try:
                g = self.spec.build_with(RandomDecider(self.opts.seed * 7919 + i))
            except CandidateError as e:
                reasons[e.message] = reasons.get(e.message, 0) + 1
                continue
            broken = self.spec.violated_constraints(g)
            if not broken:
                graph = g
                break
            for b in broken:
                reasons[f"violates {b}"] = reasons.get(f"violates {b}", 0) + 1
        if graph is None:
            top = sorted(reasons.items(), key=lambda kv: -kv[1])[:3]
            raise SearchError(
                f"no valid candidate among {PROBE_SAMPLES} random samples: the constraints "
                "and requirements leave nothing to search",
                hint="; ".join(f"{n}x {r}" for r, n in top) + "; relax a `constraint`")
        cfg = train_config_of(graph)
        data = self._data(cfg)
        for o in self.opts.objectives:
            if o.metric.endswith("accuracy") and data.task != "classification":
                raise SearchError(f"{o} needs a classification data set; {data.name} is "
                                  f"{data.task}", hint="use objective = minimize(val_loss)")

    def _data(self, cfg: Mapping[str, Any]) -> Any:
        from .data import load_data

        return load_data(cfg["data"], val_split=cfg["val_split"], seed=0,
                         base_dir=self.base_dir)

    # -- the loop

    def _loop(self, study: Any, sampler: Any) -> str | None:
        opts, h = self.opts, self.history
        start = time.monotonic()
        self.streak = 0
        pool = None
        if opts.backend == "ray":
            from .ray_backend import RayPool

            pool = RayPool(opts.workers)
        stopped = None
        try:
            while True:
                busy = pool.busy if pool else 0
                if h.counted(self.run_id) + busy >= opts.trials:
                    if not busy:
                        break
                    self._collect(study, pool, block=True)
                    continue
                if opts.timeout is not None and time.monotonic() - start > opts.timeout:
                    stopped = f"timeout after {opts.timeout:g} s"
                    break
                exhausted = getattr(sampler, "exhausted", None)
                if exhausted is not None and exhausted(study):
                    stopped = "grid exhausted: every candidate was tried"
                    break
                if pool is not None:
                    self._collect(study, pool, block=busy >= pool.size)
                    if pool.busy >= pool.size:
                        continue
                item = self._propose(study)
                if isinstance(item, _Job):
                    if pool is not None:
                        pool.submit(item, self.spec, self.opts.epochs, self.base_dir)
                        continue
                    item = self._run_here(study, item)
                self._done(item)
            while pool is not None and pool.busy:  # a timeout lets running trials end
                self._collect(study, pool, block=True)
        except KeyboardInterrupt:
            for job in pool.drop() if pool is not None else ():
                self._interrupted(study, job)
            raise
        finally:
            if pool is not None:
                pool.close()
        return stopped

    def _done(self, outcome: TrialOutcome) -> None:
        self.outcomes.append(outcome)
        self.streak = self.streak + 1 if outcome.state == "invalid" else 0
        self.reporter.trial(outcome, self.history.counted(self.run_id), self._best_value())
        if self.streak >= MAX_INVALID_STREAK:
            raise SearchError(f"{self.streak} proposals in a row were invalid; the "
                              "constraints leave too little to search",
                              hint=f"last reason: {outcome.error}")

    def _collect(self, study: Any, pool: Any, *, block: bool) -> None:
        for job, payload in pool.finished(block=block):
            for ep in payload.get("epochs", ()):
                self.history.add_epoch(job.trial_id, **ep)
            if payload["ok"]:
                self._done(self._finish(study, job, metrics=payload["metrics"],
                                        model=payload["model"]))
            else:
                self._done(self._finish(study, job, error=payload["error"],
                                        tb=payload.get("traceback")))

    def _best_value(self) -> list[float] | None:
        best = best_trials(self.history, self.run_id, self.opts.objectives)
        return loads(best[0]["objective"]) if best else None

    def _propose(self, study: Any) -> TrialOutcome | _Job:
        """Ask for a trial and check it: an outcome (invalid, duplicate) or a job to train."""
        from ..dsl.errors import CandidateError

        h = self.history
        trial = study.ask()
        t0 = time.monotonic()
        try:
            graph = self.spec.build_with(OptunaDecider(trial))
        except CandidateError as e:
            return self._invalid(study, trial, dict(trial.params), None, _reason(e))
        choices = dict(graph.choices)
        broken = self.spec.violated_constraints(graph)
        arch = h.add_candidate(graph, self.run_id)
        if broken:
            costs = graph.costs()
            return self._invalid(study, trial, choices, graph, "violates " + "; ".join(
                broken) + " (" + ", ".join(f"{k} = {costs[k]:,}" for k in GRAPH_METRICS) + ")",
                arch)
        cfg = train_config_of(graph)
        cfg_text = dumps({k: to_json(v) for k, v in cfg.items()})
        base = dict(choices=dumps(_jsonable(choices)), train_config=cfg_text, arch_hash=arch,
                    params=graph.params, flops=graph.flops)
        earlier = h.evaluated(self.run_id, arch, cfg_text)
        trial_id = h.start_trial(self.run_id, trial.number, **base)
        out = TrialOutcome(number=trial.number, state="running", choices=choices,
                           arch_hash=arch, params=graph.params, flops=graph.flops)
        if earlier is not None:
            return self._duplicate(study, trial, trial_id, earlier, out, t0)
        return _Job(trial, trial_id, out, graph, cfg, t0)

    def _run_here(self, study: Any, job: _Job) -> TrialOutcome:
        """Train in this process (the local backend), with per-epoch pruning."""
        try:
            result = self._train(job.graph, job.cfg, job.trial, job.trial_id)
        except _Pruned:
            return self._finish(study, job, pruned=True)
        except KeyboardInterrupt:
            self._interrupted(study, job)
            raise
        except Exception as e:  # noqa: BLE001 - any failure in training ends the trial only
            return self._finish(study, job, error=_failure(e),
                                tb=None if isinstance(e, SpecError)
                                else traceback.format_exc(limit=20))
        return self._finish(study, job, metrics=result.metrics, model=result.model)

    def _interrupted(self, study: Any, job: _Job) -> None:
        from optuna.trial import TrialState

        self.history.finish_trial(job.trial_id, "failed", error=INTERRUPTED)
        study.tell(job.trial, state=TrialState.FAIL)
        study.enqueue_trial(job.out.choices)

    def _finish(self, study: Any, job: _Job, *, metrics: dict[str, Any] | None = None,
                model: Any = None, error: str | None = None, tb: str | None = None,
                pruned: bool = False) -> TrialOutcome:
        """Record a trained trial's end in the history, then tell the study."""
        from optuna.trial import TrialState

        h, out, trial, tid = self.history, job.out, job.trial, job.trial_id
        if pruned:
            out.state, out.metrics = "pruned", self._partial_metrics(tid, job.graph)
            h.finish_trial(tid, "pruned", metrics=out.metrics)
            study.tell(trial, state=TrialState.PRUNED)
        elif error is not None:
            out.state, out.error = "failed", error
            h.finish_trial(tid, "failed", error=error, traceback=tb)
            study.tell(trial, state=TrialState.FAIL)
        else:
            out.metrics = {**job.graph.costs(), **(metrics or {})}
            values = [float(out.metrics[o.metric]) for o in self.opts.objectives]
            if not all(math.isfinite(v) for v in values):
                out.state, out.error = "failed", f"objective is not finite: {values}"
                h.finish_trial(tid, "failed", metrics=out.metrics, error=out.error)
                study.tell(trial, state=TrialState.FAIL)
            else:
                out.state, out.objective = "complete", values
                h.finish_trial(tid, "complete", metrics=out.metrics, objective=values)
                self._keep_weights(tid, model, job.graph, job.cfg)
                study.tell(trial, values)
        out.duration_s = time.monotonic() - job.t0
        return out

    def _train(self, graph: Graph, cfg: Mapping[str, Any], trial: Any, trial_id: int) -> Any:
        from ..backends.torch import lower_graph
        from .trainer import train

        data = self._data(cfg)
        model = lower_graph(graph, seed=cfg["seed"])
        watch = self.opts.objectives[0].metric
        prune = self.opts.pruner != "none"

        def on_epoch(ep: Any) -> None:
            self.history.add_epoch(trial_id, epoch=ep.epoch, train_loss=ep.train_loss,
                                   train_accuracy=ep.train_accuracy, val_loss=ep.val_loss,
                                   val_accuracy=ep.val_accuracy, lr=ep.lr, wall_s=ep.wall_s)
            if prune:
                value = getattr(ep, watch)
                if value is not None and math.isfinite(value):
                    trial.report(float(value), ep.epoch)
                    if trial.should_prune():
                        raise _Pruned

        return train(model, data, dict(cfg), epochs=self.opts.epochs, on_epoch=on_epoch)

    def _partial_metrics(self, trial_id: int, graph: Graph) -> dict[str, Any]:
        eps = self.history.epochs(trial_id)
        last = eps[-1] if eps else {}
        return {**graph.costs(), **{k: last.get(k) for k in EPOCH_METRICS if k in last},
                "epochs": len(eps)}

    def _invalid(self, study: Any, trial: Any, choices: dict[str, Any], graph: Graph | None,
                 reason: str, arch: str | None = None) -> TrialOutcome:
        h = self.history
        trial_id = h.start_trial(self.run_id, trial.number, choices=dumps(_jsonable(choices)),
                                 arch_hash=arch, params=graph.params if graph else None,
                                 flops=graph.flops if graph else None)
        h.finish_trial(trial_id, "invalid", error=reason, duration_s=0.0)
        trial.set_constraint("valid", 1.0)  # infeasible: the sampler learns to avoid it
        study.tell(trial, [o.worst for o in self.opts.objectives])
        return TrialOutcome(number=trial.number, state="invalid", choices=choices,
                            arch_hash=arch, params=graph.params if graph else None,
                            flops=graph.flops if graph else None, error=reason)

    def _duplicate(self, study: Any, trial: Any, trial_id: int, earlier: Mapping[str, Any],
                   out: TrialOutcome, t0: float) -> TrialOutcome:
        from optuna.trial import TrialState

        out.state, out.duplicate_of = earlier["state"], earlier["number"]
        out.metrics = loads(earlier["metrics"]) or {}
        out.objective = loads(earlier["objective"])
        out.error = earlier["error"]
        self.history.finish_trial(trial_id, out.state, metrics=earlier["metrics"],
                                  objective=earlier["objective"], error=earlier["error"],
                                  duplicate_of=earlier["number"])
        if out.state == "complete":
            study.tell(trial, out.objective)
        else:
            if out.state == "pruned":
                for ep in self.history.epochs(earlier["id"]):
                    value = ep.get(self.opts.objectives[0].metric)
                    if value is not None:
                        trial.report(float(value), ep["epoch"])
            study.tell(trial, state=TrialState.PRUNED if out.state == "pruned"
                       else TrialState.FAIL)
        out.duration_s = time.monotonic() - t0
        return out

    def _keep_weights(self, trial_id: int, model: Any, graph: Graph,
                      cfg: Mapping[str, Any]) -> None:
        h = self.history
        best = {r["id"] for r in best_trials(h, self.run_id, self.opts.objectives)}
        if trial_id in best and model is not None:
            data = model if isinstance(model, bytes) else model_bytes(
                model, self.spec, graph.choices, cfg["seed"])
            h.save_weights(trial_id, self.run_id, data)
        h.keep_weights(self.run_id, best)


def best_trials(h: History, run_id: int, objectives: list[Objective]) -> list[dict[str, Any]]:
    """The run's best complete trial, or its Pareto front (ties: earliest first)."""
    rows = [r for r in h.trials(run_id, ["complete"]) if r["duplicate_of"] is None]
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

    def dominates(a: list[float], b: list[float]) -> bool:
        ge = all(x == y or o.better(x, y) for o, x, y in zip(objectives, a, b, strict=True))
        return ge and any(o.better(x, y) for o, x, y in zip(objectives, a, b, strict=True))

    return [r for r in rows if not any(dominates(vals[s["id"]], vals[r["id"]]) for s in rows)]


def model_bytes(model: Any, spec: Spec, choices: Mapping[str, Any], seed: int | None) -> bytes:
    """The file ``autoarch.save_model`` would write, as bytes."""
    from ..backends.torch import save_model

    buf = io.BytesIO()
    save_model(model, spec, dict(choices), buf, seed=seed)
    return buf.getvalue()


def _journal(path: str) -> Any:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(path))


def _pruner(name: str) -> Any:
    import optuna

    if name == "asha":
        return optuna.pruners.SuccessiveHalvingPruner()
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
    return optuna.pruners.NopPruner()


def _reason(e: SpecError) -> str:
    where = f"{Path(e.filename).name}:{e.line}:{e.column}: " if e.span else ""
    return where + e.message


def _failure(e: BaseException) -> str:
    from .trainer import TrainingFailed

    if isinstance(e, TrainingFailed):
        return e.reason
    if isinstance(e, SpecError):
        return _reason(e)
    return f"{type(e).__name__}: {e}"


def _jsonable(choices: Mapping[str, Any]) -> dict[str, Any]:
    return {k: to_json(v) for k, v in choices.items()}


def _now() -> str:
    from .history import now

    return now()


def _version() -> str:
    from .. import __version__

    return __version__



"""Ray Tune: autoarch's search as a Tune searcher, its training as a Tune trainable.

Two pieces, usable in any ``tune.Tuner``:

- :class:`SpecSearcher` proposes checked candidates of a spec with an autoarch
  strategy (the same Optuna samplers, ``require`` / constraint checks and duplicate
  detection as ``autoarch search``). Invalid candidates and duplicates are recorded
  in the history and never become Tune trials; a candidate whose twin is training
  now waits for it and is recorded as its duplicate. Its :attr:`SpecSearcher.callback`
  (a ``tune.Callback``: add it to ``RunConfig(callbacks=...)``) records every
  epoch as it is reported and every trial's end, from the driver: no worker opens
  the database.
- :func:`trainable` builds a candidate from a trial's config, trains it with the
  spec's `train` settings, reports every epoch with ``tune.report`` (``epoch``,
  ``train_loss``, ``val_loss``, ``val_accuracy`` ...; the last report carries the
  final metrics and a checkpoint of the trained weights) and ships the spec's data
  files with it, so workers need no shared file system.

``backend = ray`` runs ``autoarch search`` on a Tuner built from those two
(:func:`run_on_tune`), with ``pruner = asha | median | hyperband`` as Tune's
schedulers and ``cpus_per_trial`` / ``gpus_per_trial`` as each trial's resources.
The history stays the source of truth: a run whose driver was killed resumes from
it (trials left running are recorded interrupted and tried again), on a new Tuner.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

try:
    from ray import tune
    from ray.tune.search import Searcher
except ImportError as e:  # pragma: no cover - exercised by the no-ray test via the CLI
    raise ImportError('autoarch.search.tune needs Ray Tune: pip install "autoarch[ray]"'
                      ) from e

from ..compiler.spec import Spec, to_jsonable
from .evaluate import Overrides, epoch_row, failure_reason, model_bytes, trial_config

#: the key of a trial's config that :class:`SpecSearcher` fills in
CONFIG_KEY = "autoarch"
#: a report's keys that say how the trial ended (besides the epoch's metrics)
FINAL, FAILED, DEADLINE = "autoarch_final", "autoarch_error", "autoarch_deadline"
#: in every report of :func:`trainable`: the epochs the trial is to run
OURS = "autoarch_epochs"
#: the file of a checkpoint that holds the trained model (as ``autoarch.save_model``)
MODEL_FILE = "model.pt"


# ---- the trainable ---------------------------------------------------------------


def trainable(spec: Spec, *, epochs: int | None = None, data: Any = None,
              deadline: float | None = None, objective: Any = None,
              train_seed: int | None = None) -> Any:
    """A Tune function trainable that trains the spec's candidates.

    A trial's config is either what :class:`SpecSearcher` suggests, or Tune's own
    search space keyed by decision names (``{"digits.width": tune.choice([16, 32])}``,
    every decision the candidate meets given). ``epochs`` and ``data`` replace the spec's
    `train` settings, as ``autoarch search --epochs / --data`` do. The csv / npz
    files the spec trains on are read here, once, and travel to the workers with
    the trainable, as does an ``autoarch.Dataset`` given as ``data``. ``objective``
    is a picklable function ``fn(model, trial)`` that trains instead of the built-in
    trainer (as ``autoarch.search(objective=fn)``; pass the same to
    :class:`SpecSearcher`). ``train_seed`` replaces the spec's training seed (a
    table's runs, docs/tables.md).
    """
    import dataclasses

    from .objective import UserObjective
    from .options import objectives_of, overrides_of

    overrides = dataclasses.replace(overrides_of(epochs, data), seed=train_seed)
    if objective is not None and not isinstance(objective, UserObjective):
        objective = UserObjective(objective, objectives_of(spec.search_config()["objective"]))
    base_dir = Path(spec.filename).parent.resolve() if spec.filename else Path(".").resolve()
    files = shipped_files(spec, overrides, base_dir)
    from ..compiler.ops.user import user_ops

    return tune.with_parameters(_run_trial, source=spec.source, filename=spec.filename or "",
                                overrides=overrides, base_dir=str(base_dir), files=files,
                                deadline=deadline, objective=objective, ops=user_ops())


def shipped_files(spec: Spec, overrides: Overrides, base_dir: Path) -> dict[str, bytes]:
    """The data files the spec's candidates train on, by their path on this machine."""
    from ..compiler.deciders import FirstDecider
    from .data import DataError, data_file

    graph = spec.build_with(FirstDecider())
    path = data_file(trial_config(graph, overrides)["data"], base_dir)
    if path is None:
        return {}
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    return {str(path.resolve()): path.read_bytes()}


def _local_copy(path: str, content: bytes) -> Path:
    """This node's copy of a shipped file, written once per content."""
    digest = hashlib.sha256(content).hexdigest()[:16]
    folder = Path(tempfile.gettempdir()) / "autoarch-data" / digest
    target = folder / Path(path).name
    if not target.exists():
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{target.name}.{os.getpid()}.tmp"
        tmp.write_bytes(content)
        os.replace(tmp, target)
    return target


_SPECS: dict[tuple[str, str], Spec] = {}


def _run_trial(config: Mapping[str, Any], *, source: str, filename: str, overrides: Overrides,
               base_dir: str, files: Mapping[str, bytes], deadline: float | None,
               objective: Any = None, ops: Any = ()) -> None:
    """One trial, in a Ray worker: build, train, report every epoch, checkpoint. ``ops``:
    the user ops registered in the driver, registered here before the spec is read."""
    import optuna

    from ..compiler.spec import loads
    from ..dsl.errors import SpecError
    from .data import data_file, with_data_file
    from .evaluate import train_candidate
    from .trainer import DeadlineReached

    started, waited = time.perf_counter(), [0.0]
    if ops:
        from ..compiler.ops.user import ensure_registered

        ensure_registered(list(ops))
    spec = _SPECS.get((source, filename))
    if spec is None:
        spec = _SPECS[(source, filename)] = loads(source, filename or "<spec>")
    info = config.get(CONFIG_KEY)
    choices = json.loads(info["choices"]) if info else dict(config)
    last = {"epoch": 0}
    try:
        graph = spec.build(choices)
        cfg = trial_config(graph, overrides)
        path = data_file(cfg["data"], base_dir)
        if path is not None and str(path.resolve()) in files:
            cfg["data"] = with_data_file(cfg["data"],
                                         _local_copy(str(path), files[str(path.resolve())]))
    except (SpecError, FileNotFoundError, OSError) as e:
        if info is None:
            raise  # Tune's own search space: the user's mistake, shown by Tune
        tune.report({FAILED: failure_reason(e), "epoch": 0, **_blank()})
        return
    epochs = int(cfg["epochs"])

    def on_epoch(ep: Any) -> None:
        row = epoch_row(ep)
        last.update(row)
        # the last epoch is reported with the final metrics (an objective function's
        # epochs are not known in advance: each is reported)
        if ep.epoch < epochs or objective is not None:
            t0 = time.perf_counter()
            tune.report({**_numbers(row), OURS: epochs})  # (waits for the driver)
            waited[0] += time.perf_counter() - t0

    try:
        result = train_candidate(graph, cfg, base_dir, on_epoch=on_epoch, deadline=deadline,
                                 objective=objective,
                                 number=info.get("number") if info else None)
    except optuna.TrialPruned:  # the objective function's own: recorded pruned, as a
        tune.report({**_blank(), **_numbers(last), OURS: epochs})  # trial stopped early
        return
    except DeadlineReached:
        tune.report({**_blank(), **_numbers(last), OURS: epochs, DEADLINE: True})
        return
    except Exception as e:  # noqa: BLE001 - recorded as the trial's failure
        tune.report({**_blank(), **_numbers(last), OURS: epochs, FAILED: failure_reason(e),
                     "autoarch_traceback": None if isinstance(e, SpecError)
                     else traceback.format_exc(limit=20)})
        return
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, MODEL_FILE).write_bytes(
            model_bytes(result.model, spec, graph.choices, cfg["seed"]))
        metrics = {**result.metrics, **_worker(),
                   "worker_s": time.perf_counter() - started - waited[0]}
        tune.report({**_numbers(last), OURS: epochs, FINAL: json.dumps(metrics)},
                    checkpoint=tune.Checkpoint.from_directory(folder))


def _blank() -> dict[str, float]:
    """Every epoch metric, not measured: a report a scheduler can read without error."""
    from ..compiler.settings import EPOCH_METRICS

    return dict.fromkeys(EPOCH_METRICS, math.nan)


def _numbers(row: Mapping[str, Any]) -> dict[str, Any]:
    """An epoch row for Tune (a metric not measured, such as a regression's accuracy,
    as nan: schedulers compare numbers)."""
    return {k: (math.nan if v is None else v) for k, v in row.items()}


def _worker() -> dict[str, Any]:
    """Where the trial ran: this process, its Ray node and the resources Ray gave it
    (with ``worker_s`` in the final metrics: the seconds the trial computed in its worker,
    building, lowering, training and saving, without its waits in ``tune.report``)."""
    import ray

    ctx = ray.get_runtime_context()
    return {"worker_pid": os.getpid(), "worker_node": ctx.get_node_id(),
            "worker_resources": dict(ctx.get_assigned_resources())}


# ---- the searcher ----------------------------------------------------------------


class SpecSearcher(Searcher):
    """A Tune searcher that proposes a spec's checked candidates and records them.

    Args:
        spec: the spec whose space is searched.
        strategy, trials, seed, timeout, epochs, data, objective: as
            :func:`autoarch.search` (None: the spec's `search` block; give the
            trainable the same ``epochs``, ``data`` and ``objective``). The searcher proposes until ``trials``
            trials are counted in the run, then tells Tune it is finished.
        db, name: the history database and the run's name; the same name resumes.

    Add :attr:`callback` to the Tuner's ``RunConfig(callbacks=[...])``: it records
    the trials. When the Tuner ends, :attr:`result` holds the run's
    :class:`~autoarch.search.SearchResult`.

    Example:
        >>> searcher = SpecSearcher(spec, strategy="tpe", trials=20, db="runs.db")
        >>> tuner = tune.Tuner(trainable(spec), tune_config=tune.TuneConfig(
        ...     search_alg=searcher, num_samples=-1),
        ...     run_config=tune.RunConfig(callbacks=[searcher.callback]))
        >>> tuner.fit(); searcher.result.best[0]["metrics"]
    """

    def __init__(self, spec: Spec, *, strategy: str | None = None, trials: int | None = None,
                 seed: int | None = None, timeout: float | None = None,
                 epochs: int | None = None, data: Any = None, objective: Any = None,
                 db: str | Path = "autoarch.db", name: str | None = None,
                 reporter: Any = None, _driver: Any = None) -> None:
        super().__init__()
        #: what a copy needs to open the run again (Tune pickles its searcher)
        self._args = {"source": spec.source, "filename": spec.filename, "db": str(db),
                      "name": name, "strategy": strategy, "trials": trials, "seed": seed,
                      "timeout": timeout, "epochs": epochs, "data": data,
                      "objective": objective}
        self.result: Any = None
        self.stopped: str | None = None
        #: Tune trial id -> the job it trains
        self.jobs: dict[str, Any] = {}
        self.callback = HistoryCallback(self)
        self._attached = self.__dict__.get("_attached", False)  # the callback's setup ran
        self._stack: contextlib.ExitStack | None = None
        if _driver is not None:  # autoarch search --backend ray: the run is set up
            self.driver, self.study, self.sampler = _driver
            return
        from .driver import Driver, Reporter
        from .options import options_of, overrides_of

        opts = options_of(spec, strategy=strategy, trials=trials, seed=seed, timeout=timeout,
                          objective=objective, overrides=overrides_of(epochs, data))
        opts.backend = "ray"  # trials train on Tune; Tune's schedulers prune
        self.driver = Driver(spec, opts, Path(db), name, reporter or Reporter())
        self._stack = contextlib.ExitStack()
        try:
            self.study, self.sampler = self.driver.begin(self._stack)
        except BaseException:
            if not self._stack.__exit__(*sys.exc_info()):
                raise

    def __getstate__(self) -> dict[str, Any]:
        """Tune pickles its searcher with the experiment's state. The run's state is its
        history, so a copy keeps how to open the run again: the spec's text, the
        settings, the database and the run's name."""
        return {"_args": {**self._args, "name": self.driver.record.name}}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)  # opened again by restore() (Tuner.restore calls it)

    def _reopen(self) -> None:
        from ..compiler.spec import loads

        args = dict(self._args)
        spec = loads(args.pop("source"), args.pop("filename") or "<spec>")
        self.__init__(spec, **args)  # type: ignore[misc] - resumes the run by its name

    @classmethod
    def attached(cls, driver: Any, study: Any, sampler: Any) -> SpecSearcher:
        """The searcher of a run ``autoarch search`` has set up (``backend = ray``)."""
        return cls(driver.spec, _driver=(driver, study, sampler))

    # -- Tune's side

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        if "driver" not in self.__dict__:  # an unpickled copy that was not restored
            self._reopen()
        if not self._attached:
            raise RuntimeError("SpecSearcher records trials through its callback: pass "
                               "RunConfig(callbacks=[searcher.callback]) to the Tuner")
        if self.stopped is not None or self.result is not None:
            return Searcher.FINISHED
        d = self.driver
        while True:
            if d.full(len(self.jobs)):
                if self.jobs or d.followers:
                    return None  # wait for the running trials
                return self._finished(None)
            stop = d.should_stop(self.study, self.sampler)
            if stop is not None:
                if self.jobs:
                    return None
                return self._finished(f"timeout after {d.opts.timeout:g} s"
                                      if stop == "timeout" else stop)
            job = d.propose(self.study)
            if job is not None:
                self.jobs[trial_id] = job
                return {CONFIG_KEY: {"choices": json.dumps(to_jsonable(job.out.choices)),
                                     "number": job.out.number}}

    def _finished(self, why: str | None) -> str:
        self.stopped = why if why is not None else self.stopped
        self.finish()
        return Searcher.FINISHED

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        pass  # recorded by the callback, which sees how the trial ended

    def save(self, checkpoint_path: str) -> None:
        """The run's history is the searcher's state: saved is where it lives."""
        Path(checkpoint_path).write_text(json.dumps(
            {"db": str(self.driver.db), "run": self.driver.record.name}))

    def restore(self, checkpoint_path: str) -> None:
        """Open the saved run again (a copy unpickled by ``Tuner.restore``): it resumes
        from its history; trials left running are recorded interrupted and tried
        again, so none is lost or counted twice."""
        saved = json.loads(Path(checkpoint_path).read_text())
        if "driver" in self.__dict__:
            if saved != {"db": str(self.driver.db), "run": self.driver.record.name}:
                raise ValueError(f"this searcher records run {self.driver.record.name} in "
                                 f"{self.driver.db}; the checkpoint is of run "
                                 f"{saved['run']} in {saved['db']}")
            return
        self._args.update(db=saved["db"], name=saved["run"])
        self._reopen()

    # -- the run's end

    def finish(self) -> Any:
        """End the run (once): trials still open are recorded interrupted; the result."""
        if self.result is not None:
            return self.result
        d = self.driver
        if self.jobs:
            d.interrupt_all(self.study, list(self.jobs.values()))
            self.jobs.clear()
        if self._stack is None:  # autoarch search closes the run itself
            self.result = True
            return None
        if self.stopped is None and d.history.counted(d.run_id) < d.opts.trials:
            self.stopped = "the Tuner ended before the trials asked for"
        try:
            self.result = d.close(self.study, self.stopped)
        finally:
            self._stack.close()
        return self.result


class HistoryCallback(tune.Callback):
    """Records a :class:`SpecSearcher`'s trials in the history as Tune reports them.

    A trial of :func:`trainable` ends complete (its last report has the final
    metrics and a checkpoint), failed, interrupted by the search's timeout, or
    ``pruned`` when it stopped before its last epoch (a scheduler stopped it). A
    trial of a trainable of your own ends complete with the numbers it last
    reported (it must report the objective's metrics), or failed if it raised;
    each report with an epoch metric (``val_loss``, ``val_accuracy`` ...) is an
    epoch row, numbered by ``epoch`` or else Tune's ``training_iteration``.
    """

    def __init__(self, searcher: SpecSearcher) -> None:
        self.searcher = searcher
        self.checkpoints: dict[str, Any] = {}
        self.last: dict[str, dict[str, Any]] = {}
        #: the epochs reported to the study, by Tune trial id
        self.reported: dict[str, set[int]] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {"searcher": self.searcher}  # (pickled with it, in the Tuner's state)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["searcher"])  # type: ignore[misc]

    def setup(self, **info: Any) -> None:
        self.searcher._attached = True

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict,
                        **info: Any) -> None:
        from ..compiler.settings import EPOCH_METRICS

        job = self.searcher.jobs.get(trial.trial_id)
        if job is None:
            return
        self.last[trial.trial_id] = dict(result)
        if FAILED in result or DEADLINE in result:
            return
        epoch = result.get("epoch") or result.get("training_iteration")
        row = {k: _number(result.get(k)) for k in (*EPOCH_METRICS, "lr", "wall_s")}
        extra = result.get("metrics")  # an objective function's other numbers (JSON)
        if not epoch or (all(v is None for v in row.values()) and not isinstance(extra, str)):
            return
        row["metrics"] = extra if isinstance(extra, str) else None
        row["wall_s"] = row["wall_s"] if row["wall_s"] is not None else _number(
            result.get("time_this_iter_s"))
        d = self.searcher.driver
        d.history.add_epoch(job.trial_id, epoch=int(epoch), **row)
        value = row.get(d.opts.objectives[0].metric)
        steps = self.reported.setdefault(trial.trial_id, set())
        if len(d.opts.objectives) == 1 and value is not None and int(epoch) not in steps:
            steps.add(int(epoch))
            job.trial.report(float(value), int(epoch))  # the study's curve of the trial

    def on_checkpoint(self, iteration: int, trials: list, trial: Any, checkpoint: Any,
                      **info: Any) -> None:
        self.checkpoints[trial.trial_id] = checkpoint

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._settle(trial, self._payload(trial))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        text = trial.get_error() or ""
        lines = [x for x in str(text).splitlines() if x.strip()]
        why = lines[-1].strip() if lines else "the trial's Ray worker failed"
        self.checkpoints.pop(trial.trial_id, None)
        self.last.pop(trial.trial_id, None)
        self._settle(trial, {"ok": False, "error": f"Ray trial failed: {why}"[:2000],
                             "traceback": str(text)[-8000:] or None})

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self.searcher.finish()

    def _payload(self, trial: Any) -> dict[str, Any]:
        from ray.tune.result import AUTO_RESULT_KEYS

        last = self.last.pop(trial.trial_id, {})
        checkpoint = self.checkpoints.pop(trial.trial_id, None) or trial.checkpoint
        if FAILED in last:
            return {"ok": False, "error": last[FAILED],
                    "traceback": last.get("autoarch_traceback")}
        if DEADLINE in last:
            return {"ok": False, "deadline": True}
        if FINAL in last:
            metrics = json.loads(last[FINAL])
        elif OURS in last:  # autoarch's trainable, stopped before its last epoch
            return {"ok": False, "pruned": True}
        else:  # a trainable of the user's: what it reported last
            metrics = {k: v for k, v in last.items() if k not in AUTO_RESULT_KEYS
                       and k not in ("done", "trial_id", "experiment_tag")
                       and _number(v) is not None}
            from ..compiler.settings import COST_METRICS

            missing = [o.metric for o in self.searcher.driver.opts.objectives
                       if o.metric not in metrics and o.metric not in COST_METRICS]
            if missing:
                return {"ok": False, "error": "the trainable's last report has no "
                                              + ", ".join(missing) + " (the objective)"}
        model = None
        if checkpoint is not None:
            with checkpoint.as_directory() as folder:
                if Path(folder, MODEL_FILE).is_file():
                    model = Path(folder, MODEL_FILE).read_bytes()
        return {"ok": True, "metrics": metrics, "model": model}

    def _settle(self, trial: Any, payload: dict[str, Any]) -> None:
        self.reported.pop(trial.trial_id, None)
        s = self.searcher
        job = s.jobs.pop(trial.trial_id, None)
        if job is not None:
            s.driver.settle(s.study, job, payload)


def _number(v: Any) -> float | None:
    """A reported value as a number for the history (None: not a number, or nan)."""
    if isinstance(v, bool) or not isinstance(v, int | float) or math.isnan(v):
        return None
    return v


# ---- autoarch search --backend ray -------------------------------------------------


def scheduler_of(pruner: str, metric: str, direction: str, epochs: int) -> Any:
    """Tune's scheduler for a `pruner` setting (None for none), on the epoch count."""
    from ray.tune.schedulers import ASHAScheduler, HyperBandScheduler, MedianStoppingRule

    mode = "max" if direction == "maximize" else "min"
    if pruner == "asha":
        return ASHAScheduler(time_attr="epoch", metric=metric, mode=mode, max_t=epochs,
                             grace_period=1, reduction_factor=3)
    if pruner == "median":
        return MedianStoppingRule(time_attr="epoch", metric=metric, mode=mode,
                                  grace_period=1, min_samples_required=3)
    if pruner == "hyperband":
        return HyperBandScheduler(time_attr="epoch", metric=metric, mode=mode, max_t=epochs)
    return None


@contextlib.contextmanager
def ray_for(opts: Any) -> Any:
    """Ray, for a search with ``opts``: the cluster ``RAY_ADDRESS`` names, the one this
    process already joined, or a private local instance sized for ``opts.workers``
    trials; checked to have the resources a trial asks for."""
    import ray

    from .options import SearchError

    owns = False
    if not ray.is_initialized():
        address = os.environ.get("RAY_ADDRESS")
        if address:
            _reachable(address)
        try:
            if address:
                ray.init(address=address, log_to_driver=False, logging_level="warning")
            else:
                ray.init(address="local",
                         num_cpus=max(1, math.ceil(opts.workers * opts.cpus_per_trial)),
                         include_dashboard=False, log_to_driver=False,
                         logging_level="warning")
        except Exception as e:  # noqa: BLE001 - Ray's many ways to fail, as one line
            first = next((ln for ln in str(e).splitlines() if ln.strip()), type(e).__name__)
            raise SearchError(f"Ray could not start{f' at {address}' if address else ''}: "
                              f"{first.strip()}", hint="check RAY_ADDRESS and `ray status`"
                              if address else "see Ray's logs under RAY_TMPDIR (or /tmp/ray)"
                              ) from None
        owns = True
    try:
        _check_resources(ray, opts.cpus_per_trial, opts.gpus_per_trial)
        yield ray
    finally:
        if owns:
            ray.shutdown()


def _reachable(address: str) -> None:
    """A ``host:port`` address must answer (Ray itself would retry for minutes)."""
    import socket

    from .options import SearchError

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # "auto", or a form Ray resolves itself
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as e:
        raise SearchError(f"nothing answers at RAY_ADDRESS={address} ({e.strerror or e})",
                          hint="start the head with `ray start --head`, or unset RAY_ADDRESS "
                               "to run on a private local Ray") from None


def _check_resources(ray: Any, cpus: float, gpus: float) -> None:
    from .options import SearchError

    have = ray.cluster_resources()
    for name, want, setting in (("CPU", cpus, "cpus_per_trial"), ("GPU", gpus, "gpus_per_trial")):
        if want > have.get(name, 0.0):
            raise SearchError(f"{setting} = {want:g}, but the Ray cluster has "
                              f"{have.get(name, 0.0):g} {name}s: no trial could start",
                              hint=f"lower {setting}, or add nodes with {name}s")


#: while autoarch runs a Tuner: Ctrl-C stops the search as it does locally (not Tune's
#: own handler, which would end the running trials as if complete), and Tune prints
#: nothing (the search has its own progress)
_TUNE_ENV = {"TUNE_DISABLE_SIGINT_HANDLER": "1", "RAY_AIR_NEW_OUTPUT": "0",
             "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0"}


@contextlib.contextmanager
def _quiet_tune() -> Any:
    import logging

    saved = {k: os.environ.get(k) for k in _TUNE_ENV}
    os.environ.update(_TUNE_ENV)
    logger = logging.getLogger("ray.tune")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_on_tune(driver: Any, study: Any, sampler: Any) -> str | None:
    """The search loop of ``backend = ray`` (Ray is up: :func:`ray_for`): a Tuner with
    a :class:`SpecSearcher` proposing through ``driver`` and its callback recording;
    why it stopped."""
    opts = driver.opts
    o = opts.objectives[0]
    searcher = SpecSearcher.attached(driver, study, sampler)
    train = trainable(driver.spec, epochs=opts.overrides.epochs, data=opts.overrides.data,
                      deadline=driver.deadline, objective=opts.objective,
                      train_seed=opts.overrides.seed)
    resources = {"cpu": opts.cpus_per_trial, "gpu": opts.gpus_per_trial}
    epochs = int(trial_config(driver.probe, opts.overrides)["epochs"])
    storage = tempfile.mkdtemp(prefix="autoarch-tune-")
    try:
        with _quiet_tune():
            tune.Tuner(
                tune.with_resources(train, resources),
                tune_config=tune.TuneConfig(
                    search_alg=searcher, num_samples=-1,
                    max_concurrent_trials=opts.workers, reuse_actors=True,
                    scheduler=scheduler_of(opts.pruner, o.metric, o.direction, epochs)),
                run_config=tune.RunConfig(
                    name=driver.record.name, storage_path=storage, verbose=0,
                    callbacks=[searcher.callback],
                    failure_config=tune.FailureConfig(max_failures=0))).fit()
    except KeyboardInterrupt:
        driver.interrupt_all(study, list(searcher.jobs.values()))
        searcher.jobs.clear()
        raise
    finally:
        shutil.rmtree(storage, ignore_errors=True)
    searcher.finish()
    return searcher.stopped

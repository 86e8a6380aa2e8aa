"""Setting a search run up before its loop: the checks, the run row, resuming.

- :func:`preflight` runs before anything is written: some random candidate
  satisfies the constraints, and the data fit the model (shapes, task).
- :class:`RunRecord` is the run's row in the history: it locks the run (named, or
  a fresh name), creates it or resumes it, and keeps its data fingerprints. A
  resume checks that the spec and the settings are the run's own, records the
  trials a killed process left running (:meth:`RunRecord.recover`), makes the
  Optuna study agree with the history and queues the interrupted candidates again.

The steps of the loop are :mod:`autoarch.search.driver`; the loops,
:mod:`autoarch.search.engine` (in-process) and :mod:`autoarch.search.tune`.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ..compiler.deciders import RandomDecider
from ..compiler.graph import Graph
from ..compiler.spec import Spec
from ..dsl.errors import Span
from .evaluate import trial_config
from .history import INTERRUPTED, History, dumps, loads
from .options import Options, SearchError, spec_hash
from .study import StudyFiles

#: random candidates probed before the search to see that some satisfy the constraints
PROBE_SAMPLES = 2000

#: error of a trial whose process died while it trained (kill -9, out of memory)
CRASHED = INTERRUPTED + ": the process died during this trial"


class SearchInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped the search; the run is saved and resumes by its name."""

    def __init__(self, run: str | None, db: Path, signal_name: str = "SIGINT"):
        super().__init__(run)
        self.run, self.db, self.signal_name = run, db, signal_name


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread by the handler the search installs."""


def on_sigterm() -> Any:
    """SIGTERM stops the search as Ctrl-C does (main thread only); the old handler."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum: int, frame: Any) -> None:
        raise Terminated

    return signal.signal(signal.SIGTERM, handler)


def preflight(spec: Spec, opts: Options, base_dir: Path,
              note: Callable[[str], None]) -> Graph:
    """Before anything is written: some candidate satisfies the constraints, and the
    data fit the model (shapes, task). The first valid candidate found."""
    from ..dsl.errors import CandidateError

    reasons: dict[str, int] = {}
    graph = None
    for i in range(PROBE_SAMPLES):
        try:
            g = spec.build_with(RandomDecider(opts.seed * 7919 + i))
        except CandidateError as e:
            reasons[e.message] = reasons.get(e.message, 0) + 1
            continue
        broken = spec.violated_constraints(g)
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
    cfg = trial_config(graph, opts.overrides)
    if opts.objective is not None and opts.overrides.data is None and "data" not in graph.train:
        return graph  # the objective function brings its own data
    data = _data(cfg, base_dir, note)
    _check_shapes(spec, graph, data)
    why = getattr(data, "task_reason", None)
    for o in opts.objectives:
        if o.metric.endswith("accuracy") and data.task != "classification":
            raise SearchError(f"{o} needs a classification data set; {data.name} is "
                              f"{data.task}" + (f" ({why})" if why else ""),
                              hint="use objective = minimize(val_loss)")
    return graph


def _check_shapes(spec: Spec, graph: Graph, data: Any) -> None:
    """The model's declared shapes against the data's: a located error if they differ."""
    want_in, want_out = tuple(data.input_shape), tuple(data.output_shape)
    if graph.input_shape == want_in and graph.output_shape == want_out:
        return
    model = spec.program.model
    exprs = model.input_shape if graph.input_shape != want_in else model.output_shape
    span = model.span
    if exprs:
        first, last = exprs[0].span, exprs[-1].span
        span = Span(first.filename, first.line, first.column, last.end_line,
                    last.end_column)
    what = (f"{want_out[0]} classes" if data.task == "classification"
            else "regression targets")
    raise SearchError(
        f"model {model.name} takes {list(graph.input_shape)} -> "
        f"{list(graph.output_shape)}, but data set {data.name} has inputs "
        f"{list(want_in)} and {list(want_out)} outputs ({what})", span,
        hint=f"declare the model as ({model.input_name}: {list(want_in)}) -> "
             f"{list(want_out)}, or pick data that fit it with `train {{ data = ... }}` "
             "or --data (e.g. synthetic(shape = [...], classes = k))"
    ).with_source(spec.source)


def _data(cfg: Mapping[str, Any], base_dir: Path, note: Callable[[str], None]) -> Any:
    from .evaluate import load_trial_data

    def progress(done: int, total: int) -> None:
        note(f"reading {cfg['data']}: {done / max(total, 1):.0%} of {total / 1e6:.0f} MB")

    return load_trial_data(cfg, base_dir, progress)


class RunRecord:
    """The run's row in the history: locked, created or resumed; its data fingerprints.

    ``id`` is set once the run is this search's to mark failed or interrupted.
    """

    def __init__(self, history: History, spec: Spec, opts: Options, db: Path,
                 name: str | None, base_dir: Path):
        self.history, self.spec, self.opts = history, spec, opts
        self.db, self.name, self.base_dir = db, name, base_dir
        self.id: int | None = None
        self._resume_id: int | None = None
        self.config: dict[str, Any] = {}
        self._fingerprints: dict[str, str] = {}

    @contextlib.contextmanager
    def guarded(self, files: StudyFiles) -> Iterator[None]:
        """Around the whole run: Ctrl-C or SIGTERM marks it interrupted (raising
        :class:`SearchInterrupted`), any other error marks it failed; the history is
        closed, and journals are removed again when no run was recorded."""
        terminate = on_sigterm()
        ok = False
        try:
            yield
            ok = True
        except KeyboardInterrupt as e:
            if self.id is not None:
                self.history.update_run(self.id, status="interrupted")
            raise SearchInterrupted(self.name, self.db, "SIGTERM" if isinstance(
                e, Terminated) else "SIGINT") from None
        except BaseException:
            if self.id is not None:
                self.history.update_run(self.id, status="failed")
            raise
        finally:
            if terminate is not None:
                signal.signal(signal.SIGTERM, terminate)
            try:
                files.close()  # the journal's last lines
            except OSError:
                if ok:  # (else the run's own error says more; a resume mends the journal)
                    raise
            finally:
                self.history.close(discard_if_unused=True)
            if self.id is None:  # nothing was recorded
                for path in files.created:
                    path.unlink(missing_ok=True)

    def open(self) -> dict[str, Any] | None:
        """Lock the run (named, or a fresh name); its row when it exists (a resume)."""
        from .history import HistoryError

        h = self.history
        if self.name is not None:
            h.lock_run(self.name)
            return h.run(self.name)
        taken = {r["name"] for r in h.runs()}
        n = 1
        while True:
            name = f"{self.spec.name}-{n}"
            n += 1
            if name in taken:
                continue
            try:
                h.lock_run(name)
            except HistoryError:  # another process is creating it
                continue
            if h.run(name) is None:
                self.name = name
                return None
            h.unlock_run(name)

    def start(self, row: Mapping[str, Any] | None, probe: Graph, files: StudyFiles,
              note: Callable[[str], None], **study_args: Any) -> Any:
        """Create the run (``row`` None) or resume it, with its Optuna study; the study.

        ``row`` is what :meth:`open` returned; ``study_args`` go to Optuna
        (``sampler``, ``pruner``, ``directions``).
        """
        from .study import new_study, resume_study

        h, opts = self.history, self.opts
        if row is None:
            study, study_name, storage = new_study(files, self.name, **study_args)
            self.create(study_name, storage, probe)
        else:
            self.resume(row, probe)
            self._note_objective_change(note)
            study, storage = resume_study(files, h, row, self.spec, opts.objectives,
                                          opts.objectives[0].metric, **study_args)
            counted = h.counted(row["id"])
            h.update_run(row["id"], trials_requested=max(opts.trials, counted),
                         status="running", finished_at=None, study_storage=storage)
            if counted > opts.trials:
                note(f"run {self.name} already has {counted} trials done; "
                     f"--trials {opts.trials} asks for no more")
            self.enqueue_retries(study)
        for text in files.notes:
            note(text)
        return study

    def create(self, study_name: str, storage: str, probe: Graph) -> None:
        """Insert the new run's row, with the data fingerprint of the probed candidate."""
        opts = self.opts
        self.config = {"pruner": opts.pruner, "timeout": opts.timeout,
                       "backend": opts.backend, "workers": opts.workers,
                       "cpus_per_trial": opts.cpus_per_trial,
                       "gpus_per_trial": opts.gpus_per_trial,
                       **opts.overrides.to_json(), "oneshot": opts.oneshot(),
                       "data_fingerprints": {}}
        if opts.objective is not None:
            from .objective import source_digest

            self.config["objective_fn"] = opts.objective.name
            self.config["objective_source"] = source_digest(opts.objective.fn)
        self.id = self.history.create_run(
            name=self.name, model=self.spec.name, spec_file=self.spec.filename,
            spec_text=self.spec.source, spec_hash=spec_hash(self.spec),
            strategy=opts.strategy, objectives=dumps([str(o) for o in opts.objectives]),
            config=dumps(self.config), trials_requested=opts.trials, seed=opts.seed,
            epochs=opts.epochs, study_name=study_name, study_storage=storage,
            autoarch_version=_version())
        self.fingerprint(trial_config(probe, opts.overrides))

    def resume(self, row: Mapping[str, Any], probe: Graph) -> None:
        """Take over an existing run: the same spec, settings and data; trials a killed
        process left running are recorded (:meth:`recover`)."""
        self.config = loads(row["config"]) or {}
        self.config.setdefault("data_fingerprints", {})
        self._check_resume(row)
        self._resume_id = row["id"]
        self.fingerprint(trial_config(probe, self.opts.overrides))
        self.id = row["id"]  # from here on, a failure marks the run failed
        self.recover()

    def _check_resume(self, row: Mapping[str, Any]) -> None:
        if row["spec_hash"] != spec_hash(self.spec):
            raise SearchError(f"run '{self.name}' in {self.db} was made from a different spec "
                              f"({row['spec_file']}); a run resumes only with its own spec",
                              hint="give this search another --name")
        cfg = self.config
        was = {"strategy": row["strategy"], "objectives": loads(row["objectives"]),
               "seed": row["seed"], "pruner": cfg.get("pruner", "none"),
               "epochs": cfg.get("epochs", row["epochs"]), "data": cfg.get("data"),
               "objective_fn": cfg.get("objective_fn")}
        now = self.opts.settings()
        then_os, now_os = cfg.get("oneshot") or {}, now.pop("oneshot") or {}
        for k in {**then_os, **now_os}:  # a one-shot run's own settings, one by one
            was[k], now[k] = then_os.get(k), now_os.get(k)
        differ = [k for k in was if was[k] != now[k]]
        if differ:
            said = "; ".join(f"{_setting(k, was[k])} then, {_setting(k, now[k])} now"
                             for k in differ)
            raise SearchError(f"run '{self.name}' in {self.db} was made with other settings "
                              f"({said}); a resumed run keeps its settings, so that its "
                              "trials stay comparable",
                              hint="resume with the run's settings, or give this search "
                                   "another --name")

    def _note_objective_change(self, note: Callable[[str], None]) -> None:
        """The objective function kept its name but its code changed since the run began:
        said, since earlier trials were scored by the old code."""
        objective = self.opts.objective
        if objective is None:
            return
        from .objective import source_digest

        was, now = self.config.get("objective_source"), source_digest(objective.fn)
        if was is not None and now is not None and was != now:
            note(f"the code of objective function {objective.name} changed since run "
                 f"'{self.name}' began; its earlier trials were scored by the old code "
                 "(give the search another --name to start afresh)")

    def recover(self) -> None:
        """After a kill: trials left running are recorded interrupted (tried once more).

        A candidate whose process died while training it a second time is recorded
        failed instead, so a candidate that kills the process (out of memory) cannot
        stall a run that is resumed again and again.
        """
        h = self.history
        assert self.id is not None
        crashed = {_candidate(r) for r in h.trials(self.id, ["failed"])
                   if r["error"] == CRASHED}
        with h.transaction():
            for r in h.trials(self.id, ["running"]):
                if _candidate(r) in crashed:
                    h.finish_trial(r["id"], "failed", error=(
                        "the process died while training this candidate twice (killed, or "
                        "out of memory?); not tried again"))
                else:
                    h.finish_trial(r["id"], "failed", error=CRASHED)

    def enqueue_retries(self, study: Any) -> None:
        """Candidates whose latest trial was interrupted are evaluated next (once each)."""
        from optuna.trial import TrialState

        assert self.id is not None
        latest: dict[Any, dict[str, Any]] = {}
        for r in self.history.trials(self.id):
            if r["arch_hash"] is not None:
                latest[_candidate(r)] = r
        waiting = [t.params for t in study.get_trials(deepcopy=False,
                                                      states=(TrialState.WAITING,))]
        for r in latest.values():
            if r["state"] == "failed" and (r["error"] or "").startswith(INTERRUPTED):
                choices = loads(r["choices"]) or {}
                if choices in waiting:
                    waiting.remove(choices)
                else:
                    study.enqueue_trial(choices)

    def prepare(self, study: Any, note: Callable[[str], None], deadline: float | None) -> None:
        """Run the strategy's ``prepare`` hook, if it has one (one-shot trains its supernet
        and scores candidates there), and queue the candidates it returns, once each."""
        from .strategies import prepare_of

        prepare = prepare_of(self.opts.strategy)
        if prepare is None:
            return
        assert self.id is not None
        chosen = prepare(self.spec, self.opts, self.history, self.id, self.name, self.db, note,
                         deadline)
        known = [t.params for t in study.get_trials(deepcopy=False)]
        for choices in chosen:
            if choices not in known:
                study.enqueue_trial(choices)

    def fingerprint(self, cfg: Mapping[str, Any]) -> str:
        """The data's fingerprint; a SearchError when the run's data changed since."""
        from .data import fingerprint

        key = str(cfg["data"])
        fp = self._fingerprints.get(key)
        if fp is not None:
            return fp
        fp = fingerprint(cfg["data"], base_dir=self.base_dir)
        known = self.config["data_fingerprints"]
        if key not in known:
            known[key] = fp
            run_id = self.id if self.id is not None else self._resume_id
            assert run_id is not None
            self.history.update_run(run_id, config=dumps(self.config))
        elif known[key] != fp:
            raise SearchError(f"the data {key} changed since run '{self.name}' started (its "
                              "contents differ); the run's scores were measured on the old "
                              "data", hint="restore the data, or give this search another "
                                           "--name")
        self._fingerprints[key] = fp
        return fp


def _candidate(row: Mapping[str, Any]) -> tuple[Any, Any]:
    """What makes two trials the same evaluation: architecture and training settings."""
    return row["arch_hash"], row["train_config"]


def _setting(key: str, value: Any) -> str:
    if key == "objectives":
        return ", ".join(value)
    if key == "epochs":
        return f"--epochs {value}" if value is not None else "the spec's epochs"
    if key == "data":
        return f"--data {value}" if value is not None else "the spec's data"
    if key == "objective_fn":
        return f"objective function {value}" if value is not None else "the built-in trainer"
    if key in ("supernet_epochs", "path_sampler", "evaluate", "retrain", "then"):
        return f"{key} = {value}"
    return f"{key} {value}"


def optuna_pruner(name: str) -> Any:
    """The Optuna pruner of a `pruner` setting."""
    import optuna

    if name == "asha":
        return optuna.pruners.SuccessiveHalvingPruner()
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner()
    return optuna.pruners.NopPruner()


def _version() -> str:
    from .._version import __version__

    return __version__

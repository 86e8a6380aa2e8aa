"""The steps of a search, driven by a loop: propose and check, record, tell.

:class:`Driver` holds one run: ``begin`` checks the search and creates or resumes
the run with its Optuna study; ``propose`` asks the study for a trial, elaborates
the spec with it as decider (``spec.build_with(OptunaDecider(trial))``), checks
shapes, ``require`` and ``constraint`` lines on the IR and skips candidates already
trained in the run (or training now: the proposal waits for its twin), returning
the job to train; ``settle`` records how a job ended and tells the study; ``close``
ends the run. Every proposal becomes a row of the history database (see
:mod:`autoarch.search.history`), which is the source of truth for the run's
budget: a run of N trials ends with N trials that ran to their end (``complete``,
``failed`` or ``pruned``); ``invalid`` proposals and trials ``interrupted`` by a
killed process are kept but not counted, and the candidates of interrupted trials
are evaluated again when the run resumes.

Two loops drive these steps: the in-process one (:mod:`autoarch.search.engine`)
and Ray Tune's (:mod:`autoarch.search.tune`).
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..compiler.deciders import OptunaDecider
from ..compiler.graph import Graph
from ..compiler.settings import COST_METRICS, EPOCH_METRICS
from ..compiler.spec import Spec, to_jsonable
from ..dsl.errors import SpecError
from .evaluate import config_text, epoch_row, located_reason, model_bytes, trial_config
from .history import INTERRUPTED, History, counts, dumps, loads, now
from .options import Options, SearchError
from .results import SearchResult, TrialOutcome, best_of, best_trials, parsed
from .run_setup import RunRecord, optuna_pruner, preflight
from .study import StudyFiles, mark_infeasible, trial_attrs, worst_values

#: consecutive invalid proposals after which the search gives up
MAX_INVALID_STREAK = 500
#: error of a trial stopped by the search's timeout (kept, not counted, tried again)
TIMED_OUT = INTERRUPTED + ": the search's timeout was reached"


class Reporter:
    """Receives progress; the CLI draws a progress bar from it. Default: silent."""

    def start(self, run: str, requested: int, counted: int, resumed: bool) -> None: ...

    def trial(self, outcome: TrialOutcome, counted: int, best: list[float] | None) -> None: ...

    def note(self, text: str) -> None: ...


@dataclass
class _Job:
    """A checked candidate waiting to be trained."""

    trial: Any
    trial_id: int
    out: TrialOutcome
    graph: Graph
    cfg: dict[str, Any]
    t0: float
    #: called by an in-process executor after every epoch: records it, may prune
    on_epoch: Any = None
    #: (architecture hash, training settings): what makes two trials the same
    key: tuple[str, str] = ("", "")
    #: the user's objective function that trains it (None: the built-in trainer)
    objective: Any = None
    #: epoch rows recorded with the trial's end, in its commit: its last epoch (the
    #: others are written as they end, for all to see), or all that an executor
    #: hands back at the end
    unwritten: list[dict[str, Any]] = field(default_factory=list)


class Driver:
    """One run of a search: its steps, for a loop to drive (see the module)."""

    def __init__(self, spec: Spec, opts: Options, db: Path, name: str | None,
                 reporter: Reporter):
        self.spec, self.opts, self.reporter = spec, opts, reporter
        self.db = db
        self.name = name
        self.base_dir = Path(spec.filename).parent if spec.filename else Path(".")
        self.outcomes: list[TrialOutcome] = []
        self.run_id: int | None = None  # the run's id once the loop starts
        self.deadline: float | None = None
        #: the run's best trials, kept from one completed trial to the next
        self._best: list[dict[str, Any]] | None = None
        self.history: History | None = None
        self.requested = 0
        self.timed_out = False
        self.streak = 0  # invalid proposals in a row
        #: the jobs training now, by key; the proposals waiting for each (by trial id)
        self.inflight: dict[tuple[str, str], _Job] = {}
        self.followers: dict[int, list[_Job]] = {}
        #: the objective values of the run's complete trials (what invalid ones are told)
        self._seen: list[list[float]] | None = None
        #: the run's trials counted (read once, then kept: this process alone writes the run)
        self._counted: int | None = None
        #: whether the run's kept weights were pruned to its best since it (re)started
        self._weights_pruned = False
        #: whether the last trial trained took as long as the journal's batches: trials
        #: due to the journal are then written before the next one trains
        self._slow = True

    # -- setup
    def begin(self, stack: contextlib.ExitStack) -> tuple[Any, Any]:
        """Check, then create or resume the run: its study and sampler. ``stack`` holds
        the run's guard (lock, signals, the run's status on an error) until it closes."""
        self.files = StudyFiles(self.db)  # (its setting checked before anything is written)
        self.probe = preflight(self.spec, self.opts, self.base_dir, self.reporter.note)
        self.history = History(self.db)
        self.record = RunRecord(self.history, self.spec, self.opts, self.db, self.name,
                                self.base_dir)
        guard = self.record.guarded(self.files)
        guard.__enter__()
        stack.push(guard.__exit__)
        return self.open(self.probe)

    def open(self, probe: Graph) -> tuple[Any, Any]:
        """Create or resume the run and its study, then prepare the strategy: the study
        and its sampler, ready for :meth:`propose` and :meth:`settle`."""
        import optuna

        from . import strategies

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        opts, h, record = self.opts, self.history, self.record
        assert h is not None
        row = record.open()
        resumed = row is not None
        sampler = strategies.make_sampler(opts.strategy, self.spec, seed=opts.seed,
                                          n_objectives=len(opts.objectives),
                                          trials=opts.trials)
        # on Ray, Tune's schedulers stop trials early (search/tune.py), not Optuna
        pruner = optuna_pruner("none" if opts.backend == "ray" else opts.pruner)
        study = record.start(row, probe, self.files, self.reporter.note, sampler=sampler,
                             pruner=pruner, directions=[o.direction for o in opts.objectives])
        with warnings.catch_warnings():  # (experimental in Optuna: stable since 3.2)
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([o.metric for o in opts.objectives])  # named axes
        run_id = self.run_id = record.id
        assert run_id is not None
        self.requested = max(opts.trials, h.counted(run_id))
        self.reporter.start(record.name, self.requested, h.counted(run_id), resumed)
        if opts.timeout is not None:
            self.deadline = time.time() + opts.timeout
        record.prepare(study, self.reporter.note, self.deadline)  # one-shot's supernet
        return study, sampler

    def close(self, study: Any, stopped: str | None) -> SearchResult:
        """Mark the run finished (or stopped: a timeout) and say what it found."""
        h, run_id = self.history, self.run_id
        assert h is not None and run_id is not None
        h.update_run(run_id, status="finished" if stopped is None or "exhausted" in stopped
                     else "stopped", finished_at=now())
        return SearchResult(run=self.record.name, run_id=run_id, db=self.db,
                            objectives=self.opts.objectives, counted=h.counted(run_id),
                            requested=self.requested, outcomes=self.outcomes, stopped=stopped,
                            best=[parsed(r) for r in best_trials(h, run_id,
                                                                 self.opts.objectives)],
                            study=self.files.mirror.journal if self.files.mirror else study)

    # -- the loop

    def full(self, busy: int) -> bool:
        """Whether the trials counted, running (``busy``) and waiting for a twin fill
        the budget."""
        assert self.history is not None and self.run_id is not None
        waiting = sum(len(f) for f in self.followers.values())
        return self.counted() + busy + waiting >= self.opts.trials

    def counted(self) -> int:
        """The run's trials that ran to their end (the history's count, read once and
        kept up to date as trials end)."""
        assert self.history is not None and self.run_id is not None
        if self._counted is None:
            self._counted = self.history.counted(self.run_id)
        return self._counted

    def should_stop(self, study: Any, sampler: Any) -> str | None:
        """Why no more trials may start: "timeout", or the sampler exhausted; else None."""
        if self.timed_out or (self.deadline is not None and time.time() > self.deadline):
            return "timeout"
        exhausted = getattr(sampler, "exhausted", None)
        if exhausted is not None and exhausted(study):
            return "grid exhausted: every candidate was tried"
        return None

    def propose(self, study: Any) -> _Job | None:
        """Propose until a candidate needs training: its job. Invalid proposals and
        duplicates of finished trials are recorded on the way; a candidate whose twin
        is training now waits for it (None) and is recorded as its duplicate."""
        item = self._propose(study)
        if isinstance(item, TrialOutcome):
            self._done(item)  # (the whole trial goes to the journal there, in one line)
            return None
        if self.opts.backend != "local":
            # trained elsewhere: its parameters and attributes to the journal before it
            # trains (one trained here when an epoch ends, see _on_epoch)
            self.files.record(item.trial.number)
        elif self._slow and self.files.due:
            self.files.write()  # (trials take a while: the journal waits for none)
        twin = self.inflight.get(item.key)
        if twin is not None:
            self.followers.setdefault(twin.trial_id, []).append(item)
            return None
        self.inflight[item.key] = item
        return item

    def interrupt_all(self, study: Any, jobs: list[_Job]) -> None:
        """Ctrl-C: the running jobs and those waiting for them are interrupted."""
        for job in jobs:
            self._interrupted(study, job)
            for f in self.followers.pop(job.trial_id, []):
                self._interrupted(study, f)
        for waiting in self.followers.values():
            for f in waiting:
                self._interrupted(study, f)
        self.followers.clear()
        self.inflight.clear()

    def _done(self, outcome: TrialOutcome) -> None:
        assert self.history is not None and self.run_id is not None
        self.outcomes.append(outcome)
        self.files.record(outcome.number)  # the trial's end: due to the journal
        self.streak = self.streak + 1 if outcome.state == "invalid" else 0
        if self._counted is not None and counts(outcome.state, outcome.error):
            self._counted += 1
        self.reporter.trial(outcome, self.counted(), self._best_value())
        if self.streak >= MAX_INVALID_STREAK:
            raise SearchError(f"{self.streak} proposals in a row were invalid; the "
                              "constraints leave too little to search",
                              hint=f"last reason: {outcome.error}")

    def settle(self, study: Any, job: _Job, payload: Mapping[str, Any]) -> None:
        """Record how a job ended (a payload as :mod:`~autoarch.search.executors`
        describes it) and tell the study; then the same for the proposals that waited
        for it, as its duplicates."""
        assert self.history is not None
        job.unwritten.extend(payload.get("epochs", ()))
        if payload["ok"]:
            out = self._finish(study, job, metrics=payload["metrics"], model=payload["model"])
        elif payload.get("pruned"):
            out = self._finish(study, job, pruned=True)
        elif payload.get("deadline"):
            out = self._interrupted(study, job, TIMED_OUT)
            self.timed_out = True
        else:
            out = self._finish(study, job, error=payload["error"], tb=payload.get("traceback"))
        self.inflight.pop(job.key, None)
        self._slow = (out.duration_s or 0.0) >= self.files.every_s
        self._done(out)
        waiting = self.followers.pop(job.trial_id, [])
        if not waiting:
            return
        row = self.history.trial(job.trial_id)
        for f in waiting:
            if out.error and out.error.startswith(INTERRUPTED):
                self._done(self._interrupted(study, f, out.error))
            else:
                self._record_duplicate(f.trial_id, row, f.out)
                self._done(self._tell_duplicate(study, f.trial, row, f.out, f.t0))

    def _best_value(self) -> list[float] | None:
        assert self.history is not None and self.run_id is not None
        if self._best is None:  # set again whenever a trial completes (_keep_weights)
            self._best = best_trials(self.history, self.run_id, self.opts.objectives)
        return loads(self._best[0]["objective"]) if self._best else None

    def _propose(self, study: Any) -> TrialOutcome | _Job:
        """Ask for a trial and check it: an outcome (invalid, duplicate) or a job to train."""
        from ..dsl.errors import CandidateError

        h = self.history
        assert h is not None and self.run_id is not None
        trial = study.ask()
        t0 = time.monotonic()
        try:
            graph = self.spec.build_with(OptunaDecider(trial))
        except CandidateError as e:
            return self._invalid(study, trial, dict(trial.params), None, located_reason(e))
        choices = dict(graph.choices)
        broken = self.spec.violated_constraints(graph)
        try:
            self.spec.check_params(graph)
        except SpecError as e:
            broken.append(f"the size limit: {e.message}")
        arch = graph.hash
        if broken:
            costs = graph.costs()
            return self._invalid(study, trial, choices, graph, "violates " + "; ".join(
                broken) + " (" + ", ".join(f"{k} = {costs[k]:,}" for k in COST_METRICS) + ")",
                arch)
        cfg = trial_config(graph, self.opts.overrides)
        objective = self.opts.objective
        cfg_text = config_text(cfg, self.record.fingerprint(cfg),
                               None if objective is None else objective.name)
        base = dict(choices=dumps(to_jsonable(choices)), train_config=cfg_text, arch_hash=arch,
                    params=graph.params, flops=graph.flops)
        out = TrialOutcome(number=trial.number, state="running", choices=choices,
                           arch_hash=arch, params=graph.params, flops=graph.flops)
        # the candidate and the trial's start (a duplicate's whole row): one commit
        with h.transaction():
            h.add_candidate(graph, self.run_id)
            earlier = h.evaluated(self.run_id, arch, cfg_text)
            trial_id = h.start_trial(self.run_id, trial.number, **base)
            if earlier is not None:
                self._record_duplicate(trial_id, earlier, out)
        self._label(trial, trial_id, graph)
        if earlier is not None:
            return self._tell_duplicate(study, trial, earlier, out, t0)
        job = _Job(trial, trial_id, out, graph, cfg, t0, None, (arch, cfg_text), objective)
        if self.opts.backend == "local":
            job.on_epoch = self._on_epoch(job)
        return job

    def _on_epoch(self, job: _Job) -> Any:
        """Record each epoch as it ends (the last one with the trial's end); report it
        to the pruner, which may stop the trial.

        The trial is due to the journal as each epoch but its last ends (its
        parameters, attributes and curve so far, for whoever watches the study:
        optuna-dashboard), and when it ends; the journal is written at most once a
        second (``StudyFiles.record``), so a short trial goes in once, whole. What a kill
        keeps from the journal, the history has and a resume adds (study.py, ``_mend``)."""
        from .objective import TrialPruned

        history, files, watch = self.history, self.files, self.opts.objectives[0].metric
        prune = self.opts.pruner != "none"
        single = len(self.opts.objectives) == 1  # (Optuna keeps curves of one objective)
        trial, trial_id, last = job.trial, job.trial_id, int(job.cfg["epochs"])
        assert history is not None

        def on_epoch(ep: Any) -> None:
            if ep.epoch >= last:  # the trial ends next: its row goes in that commit
                job.unwritten.append(epoch_row(ep))
            else:
                history.add_epoch(trial_id, **epoch_row(ep))
            value = getattr(ep, watch, None)
            if single and value is not None and math.isfinite(value):
                trial.report(float(value), ep.epoch)  # the study's curve, pruner or not
                if prune and trial.should_prune():
                    raise TrialPruned(f"pruned after epoch {ep.epoch}")
            if ep.epoch < last:
                files.record(trial.number)

        return on_epoch

    def _interrupted(self, study: Any, job: _Job, why: str = INTERRUPTED) -> TrialOutcome:
        """The trial stopped before its end (Ctrl-C, SIGTERM, the timeout): kept, not
        counted; its candidate is evaluated again when the run resumes."""
        from optuna.trial import TrialState

        h = self.history
        assert h is not None
        with h.transaction():
            self._write_epochs(job)
            h.finish_trial(job.trial_id, "failed", error=why)
        study.tell(job.trial, state=TrialState.FAIL)
        job.out.state, job.out.error = "failed", why
        job.out.duration_s = time.monotonic() - job.t0
        return job.out

    def _finish(self, study: Any, job: _Job, *, metrics: dict[str, Any] | None = None,
                model: Any = None, error: str | None = None, tb: str | None = None,
                pruned: bool = False) -> TrialOutcome:
        """Record a trained trial's end in the history, then tell the study."""
        from optuna.trial import TrialState

        h, out, trial, tid = self.history, job.out, job.trial, job.trial_id
        assert h is not None
        # the trial's end, its last epoch and the weights kept: one commit, then the study
        with h.transaction():
            self._write_epochs(job)
            if pruned:
                out.state, out.metrics = "pruned", self._partial_metrics(tid, job.graph)
                h.finish_trial(tid, "pruned", metrics=out.metrics)
            elif error is not None:
                out.state, out.error = "failed", error
                h.finish_trial(tid, "failed", error=error, traceback=tb)
            else:
                out.metrics = {**job.graph.costs(), **(metrics or {})}
                values = [float(out.metrics[o.metric]) for o in self.opts.objectives]
                if not all(math.isfinite(v) for v in values):
                    out.state, out.error = "failed", f"objective is not finite: {values}"
                    h.finish_trial(tid, "failed", metrics=out.metrics, error=out.error)
                else:
                    out.state, out.objective = "complete", values
                    h.finish_trial(tid, "complete", metrics=out.metrics, objective=values)
                    self._keep_weights(tid, model, job.graph, job.cfg)
        if out.state == "complete":
            self._seen_values().append(out.objective)  # type: ignore[arg-type]
            study.tell(trial, out.objective)
        elif out.state == "pruned":
            study.tell(trial, state=TrialState.PRUNED)
        else:
            if error is not None:
                trial.set_user_attr("reason", error[:500])
            study.tell(trial, state=TrialState.FAIL)
        out.duration_s = time.monotonic() - job.t0
        return out

    def _write_epochs(self, job: _Job) -> None:
        """The job's epoch rows not written yet (in the commit of the trial's end)."""
        assert self.history is not None
        for row in job.unwritten:
            self.history.add_epoch(job.trial_id, **row)
        job.unwritten.clear()

    def _partial_metrics(self, trial_id: int, graph: Graph) -> dict[str, Any]:
        assert self.history is not None
        eps = self.history.epochs(trial_id)
        last = eps[-1] if eps else {}
        return {**graph.costs(), **{k: last.get(k) for k in EPOCH_METRICS if k in last},
                "epochs": len(eps)}

    def _invalid(self, study: Any, trial: Any, choices: dict[str, Any], graph: Graph | None,
                 reason: str, arch: str | None = None) -> TrialOutcome:
        h = self.history
        assert h is not None and self.run_id is not None
        with h.transaction():  # the candidate and the whole trial: one commit
            if graph is not None:
                h.add_candidate(graph, self.run_id)
            trial_id = h.start_trial(self.run_id, trial.number,
                                     choices=dumps(to_jsonable(choices)), arch_hash=arch,
                                     params=graph.params if graph else None,
                                     flops=graph.flops if graph else None)
            h.finish_trial(trial_id, "invalid", error=reason, duration_s=0.0)
        self._label(trial, trial_id, graph, reason=reason[:500])
        mark_infeasible(study, trial._trial_id)  # the sampler learns to avoid it
        study.tell(trial, worst_values(self._seen_values(), self.opts.objectives))
        return TrialOutcome(number=trial.number, state="invalid", choices=choices,
                            arch_hash=arch, params=graph.params if graph else None,
                            flops=graph.flops if graph else None, error=reason)

    def _record_duplicate(self, trial_id: int, earlier: Mapping[str, Any],
                          out: TrialOutcome) -> None:
        """A proposal of a candidate trained before (``earlier``, its first trial that
        ran to the end): its row takes the earlier result."""
        assert self.history is not None
        out.state, out.duplicate_of = earlier["state"], earlier["number"]
        out.metrics = loads(earlier["metrics"]) or {}
        out.objective = loads(earlier["objective"])
        out.error = earlier["error"]
        self.history.finish_trial(trial_id, out.state, metrics=earlier["metrics"],
                                  objective=earlier["objective"], error=earlier["error"],
                                  duplicate_of=earlier["number"])

    def _tell_duplicate(self, study: Any, trial: Any, earlier: Mapping[str, Any],
                        out: TrialOutcome, t0: float) -> TrialOutcome:
        """Tell the study a recorded duplicate's result, with the earlier trial's curve."""
        from optuna.trial import TrialState

        assert self.history is not None
        trial.set_user_attr("duplicate_of", earlier["number"])
        if out.state in ("complete", "pruned") and len(self.opts.objectives) == 1:
            for ep in self.history.epochs(earlier["id"]):  # its curve is the earlier one's
                value = ep.get(self.opts.objectives[0].metric)
                if value is not None and math.isfinite(value):
                    trial.report(float(value), ep["epoch"])
        if out.state == "complete":
            self._seen_values().append(out.objective)
            study.tell(trial, out.objective)
        else:
            if out.error:
                trial.set_user_attr("reason", out.error[:500])
            study.tell(trial, state=TrialState.PRUNED if out.state == "pruned"
                       else TrialState.FAIL)
        out.duration_s = time.monotonic() - t0
        return out

    def _seen_values(self) -> list[list[float]]:
        """The objectives of the run's complete trials so far (read once, then kept)."""
        if self._seen is None:
            assert self.history is not None and self.run_id is not None
            self._seen = [loads(r["objective"]) for r in self.history.trials(
                self.run_id, ["complete"])]
        return self._seen

    def _label(self, trial: Any, trial_id: int, graph: Graph | None, **extra: Any) -> None:
        """The trial's user attributes in the study: costs, architecture, history row."""
        attrs = trial_attrs(trial_id, *(
            (graph.hash, graph.params, graph.flops, graph.memory) if graph is not None
            else (None, None, None, None)))
        for k, v in {**attrs, **extra}.items():
            trial.set_user_attr(k, v)

    def _keep_weights(self, trial_id: int, model: Any, graph: Graph,
                      cfg: Mapping[str, Any]) -> None:
        """A trial completed (recorded, not a duplicate): the run's best, its weights
        kept if it is among them, and the weights of trials no longer best deleted."""
        h = self.history
        assert h is not None and self.run_id is not None
        before = None if self._best is None else {r["id"] for r in self._best}
        if self._best is None or not self._weights_pruned:
            self._best = best_trials(h, self.run_id, self.opts.objectives)
        else:  # the best of the rows before, and this one: no scan of the run's trials
            self._best = best_trials_with(self._best, h.trial(trial_id), self.opts.objectives)
        best = {r["id"] for r in self._best}
        if trial_id in best and model is not None:
            data = model if isinstance(model, bytes) else model_bytes(
                model, self.spec, graph.choices, cfg["seed"])
            h.save_weights(trial_id, self.run_id, data)
        if best != before or not self._weights_pruned:
            h.keep_weights(self.run_id, best)
            self._weights_pruned = True


def best_trials_with(best: list[dict[str, Any]], row: dict[str, Any],
                     objectives: list[Any]) -> list[dict[str, Any]]:
    """:func:`~autoarch.search.results.best_trials` of the rows that gave ``best`` and
    one more complete row: the same as scanning them all, since a row that was not
    best (dominated, or beaten) stays so. Ties: earliest first, as there."""
    return best_of(sorted([*best, row], key=lambda r: r["number"]), objectives)

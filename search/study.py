"""The Optuna study of a run: opened from its journal, checked against the history.

The SQLite history is the source of truth; the study (an Optuna journal file
beside the database, ``<db>.optuna.log``) is what the samplers read. When a run
resumes, the study is made to agree with the history:

- a trial the study still holds ``RUNNING`` is told what the history recorded
  (a kill between the history write and the journal write leaves exactly that);
- a journal that is missing, unreadable (emptied, cut mid-line, not a journal) or
  that disagrees with the history in a way a tell cannot mend is **rebuilt from the
  history**: every recorded trial is added again under its own number (gaps
  filled with failed trials, so numbers keep lining up), with its parameters,
  distributions (found by replaying the choices through the spec), values,
  feasibility and intermediate values. A damaged journal file is moved aside
  first (``<journal>.damaged-<time>``), never overwritten.

The journal's path is stored relative to the database (``runs.study_storage``),
so a database renamed together with its journal still finds it.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .history import History, loads

#: the Optuna system attribute our samplers and Optuna's read for feasibility
CONSTRAINTS_KEY = "constraints"
#: Optuna's key of the constraint an invalid candidate breaks (``trial.set_constraint``)
INVALID_KEY = CONSTRAINTS_KEY + ":valid"


def mark_infeasible(study: Any, trial_id: int) -> None:
    """Record a trial (Optuna's id) infeasible: ``trial.set_constraint("valid", 1)`` as
    Optuna 5 keeps it, and the list form (``constraints = [1.0]``) that optuna-dashboard
    and Optuna's ``constraints_func`` samplers read."""
    study._storage.set_trial_system_attr(trial_id, INVALID_KEY, 1.0)
    study._storage.set_trial_system_attr(trial_id, CONSTRAINTS_KEY, [1.0])


def worst_values(seen: Sequence[Sequence[float]], objectives: Sequence[Any]) -> list[float]:
    """What an invalid candidate is told: per objective, the worst value of the trials
    completed before it (0 before any completed). Infeasible through its constraint
    (``trial.set_constraint("valid", 1)``), it ranks below every feasible trial whatever
    its values, in Optuna's samplers and ours; finite values keep plots (optuna-dashboard's)
    readable where -inf would not."""
    if not seen:
        return [0.0] * len(objectives)
    return [float(min(v[i] for v in seen) if o.direction == "maximize"
                  else max(v[i] for v in seen)) for i, o in enumerate(objectives)]


def trial_attrs(trial_id: int, arch_hash: str | None, params: int | None,
                flops: int | None, memory: int | None) -> dict[str, Any]:
    """The user attributes of a trial in the study: its costs, architecture and row."""
    attrs = {"history_trial_id": trial_id, "arch_hash": arch_hash, "params": params,
             "flops": flops, "memory": memory}
    return {k: v for k, v in attrs.items() if v is not None}


def journal_path(db: Path) -> Path:
    """Where a database's journal lives: beside it, named after it."""
    return db.with_name(db.name + ".optuna.log")


def _storage(path: Path) -> Any:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock

    class Backend(JournalFileBackend):
        """Optuna's file journal without the ``fsync`` after each line.

        Each operation is still one line appended under the journal lock and
        flushed to the operating system, so a killed process loses nothing it
        wrote. Only a power cut can lose the last lines, and those the history
        holds (committed by SQLite): ``resume_study`` finds the trials missing
        and rebuilds the study from the history. The fsync cost about a third of
        the search loop's own time per trial (eight appends per trial).
        """

        def __init__(self, file: str) -> None:
            self.file, self.lock = file, JournalFileSymlinkLock(file)
            super().__init__(file, lock_obj=self.lock)

        def append_logs(self, logs: list[dict[str, Any]]) -> None:
            text = "".join(json.dumps(log, separators=(",", ":")) + "\n" for log in logs)
            self.lock.acquire()
            try:
                with open(self.file, "ab") as f:
                    f.write(text.encode("utf-8"))
            finally:
                self.lock.release()

    return JournalStorage(Backend(str(path)))


class StudyFiles:
    """Opens journals, moving a damaged one aside; collects what it did as notes."""

    def __init__(self, db: Path):
        self.db = db
        self.notes: list[str] = []
        #: journals this object created (removed again if the run is never recorded)
        self.created: list[Path] = []

    def open(self, path: Path) -> Any:
        if not path.exists():
            self.created.append(path)
        if path.exists() and path.is_file():
            self._repair_tail(path)
            try:
                return _storage(path)
            except Exception as e:  # noqa: BLE001 - any unreadable journal is set aside
                aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
                os.replace(path, aside)
                self.notes.append(f"the Optuna journal {path.name} could not be read "
                                  f"({type(e).__name__}); moved it to {aside.name} and "
                                  "rebuilt the study from the history")
        elif path.exists():
            from ..dsl.errors import CommandError

            raise CommandError(f"{path} is not a file; autoarch keeps the run's Optuna "
                               "journal there", hint="move it away")
        return _storage(path)


    def _repair_tail(self, path: Path) -> None:
        """Drop a last line cut short by a kill: an operation that never completed.

        Optuna appends each operation as one line under its journal lock; holding
        that lock, a last line without its newline can only be a writer that died
        mid-write. Left there, the next append would make the journal unreadable.
        """
        from optuna.storages.journal import JournalFileSymlinkLock

        lock = JournalFileSymlinkLock(str(path))
        lock.acquire()
        try:
            with open(path, "rb+") as f:
                end = f.seek(0, os.SEEK_END)
                if end == 0:
                    return
                f.seek(end - 1)
                if f.read(1) == b"\n":
                    return
                pos = end
                while pos > 0:  # find the last complete line, reading backwards
                    step = min(1 << 16, pos)
                    f.seek(pos - step)
                    chunk = f.read(step)
                    i = chunk.rfind(b"\n")
                    if i >= 0:
                        pos = pos - step + i + 1
                        break
                    pos -= step
                f.truncate(pos)
            self.notes.append(f"the Optuna journal {path.name} ended in a line cut short "
                              f"(a killed write); dropped its last {end - pos} bytes")
        finally:
            lock.release()


def new_study(files: StudyFiles, name: str, **kwargs: Any) -> tuple[Any, str, str]:
    """A fresh study for a new run: ``(study, study name, journal name)``.

    A study of the same name already in the journal belongs to no run of this
    database (the database was deleted or replaced): it is left alone and this
    run's study takes a new name.
    """
    import optuna

    path = journal_path(files.db)
    storage = files.open(path)
    taken = set(optuna.get_all_study_names(storage))
    study_name, k = name, 1
    while study_name in taken:
        k += 1
        study_name = f"{name}.{k}"
    study = optuna.create_study(study_name=study_name, storage=storage, **kwargs)
    return study, study_name, path.name


def resume_study(files: StudyFiles, history: History, run: Mapping[str, Any], spec: Any,
                 objectives: Sequence[Any], watch: str, **kwargs: Any) -> tuple[Any, str]:
    """The run's study, made to agree with the history: ``(study, journal name)``."""
    import optuna

    path = files.db.parent / (run["study_storage"] or journal_path(files.db).name)
    if not path.exists() and journal_path(files.db).exists():
        path = journal_path(files.db)  # the database and its journal were renamed together
    elif not path.exists():
        files.notes.append(f"the Optuna journal {path.name} is missing; rebuilt the study "
                           "from the history")
        path = journal_path(files.db)
    storage = files.open(path)
    name = run["study_name"]
    rows = {r["number"]: r for r in history.trials(run["id"])}
    study = None
    if name in optuna.get_all_study_names(storage):
        study = optuna.load_study(study_name=name, storage=storage, **_load_args(kwargs))
        if _mend(study, rows, objectives):
            return study, path.name
        files.notes.append(f"the Optuna study {name} disagreed with the history; rebuilt it "
                           "from the history")
        optuna.delete_study(study_name=name, storage=storage)
    study = optuna.create_study(study_name=name, storage=storage, **kwargs)
    _rebuild(study, history, rows, spec, objectives, watch)
    return study, path.name


def _load_args(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if k in ("sampler", "pruner")}


def _expected(row: Mapping[str, Any], seen: Sequence[Sequence[float]],
              objectives: Sequence[Any]) -> tuple[Any, list[float] | None]:
    """The Optuna state and values a history row stands for (``seen``: the objectives of
    the trials completed before it)."""
    from optuna.trial import TrialState

    state = row["state"]
    if state == "complete":
        return TrialState.COMPLETE, [float(v) for v in loads(row["objective"])]
    if state == "invalid":
        return TrialState.COMPLETE, worst_values(seen, objectives)
    if state == "pruned":
        return TrialState.PRUNED, None
    return TrialState.FAIL, None


def _same(a: Sequence[float] | None, b: Sequence[float] | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return len(a) == len(b) and all(x == y or (math.isnan(x) and math.isnan(y))
                                    for x, y in zip(a, b, strict=True))


def _mend(study: Any, rows: Mapping[int, Mapping[str, Any]], objectives: Sequence[Any]) -> bool:
    """Tell trials the study holds running; False when only a rebuild can make it agree."""
    from optuna.trial import TrialState

    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    for number in rows:
        if number not in trials:
            return False
    seen: list[list[float]] = []
    for number, t in sorted(trials.items()):
        row = rows.get(number)
        if row is None:
            if t.state == TrialState.RUNNING:
                study.tell(number, state=TrialState.FAIL)
            elif t.state in (TrialState.COMPLETE, TrialState.PRUNED):
                return False  # a result the history does not know
            continue
        state, values = _expected(row, seen, objectives)
        if row["state"] == "complete":
            seen.append(values)  # type: ignore[arg-type]
        if t.state == TrialState.RUNNING:
            if row["state"] == "invalid":
                mark_infeasible(study, t._trial_id)
            if state == TrialState.COMPLETE:
                study.tell(number, values)
            else:
                study.tell(number, state=state)
        elif row["state"] == "invalid":
            # told when it was proposed, from the trials completed by then (with several
            # workers, not always those numbered before it): infeasible is what counts
            if max(t.constraints.values(), default=0.0) <= 0.0:
                return False
        elif t.state != state or (state == TrialState.COMPLETE and not _same(t.values, values)):
            return False
    return True


def replay(spec: Any, choices: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Optuna parameters and distributions of a recorded candidate.

    The choices are run through the spec with a ``FixedTrial`` as the decider, so
    the distributions are exactly those the trial was sampled from. A candidate
    that failed to build stops at the same decision it stopped at before.
    """
    import optuna

    from ..compiler.deciders import OptunaDecider
    from ..dsl.errors import SpecError

    trial = optuna.trial.FixedTrial(dict(choices))
    try:
        spec.build_with(OptunaDecider(trial))
    except (SpecError, ValueError):
        pass
    params = {k: v for k, v in trial.params.items() if k in trial.distributions}
    return params, dict(trial.distributions)


def _rebuild(study: Any, history: History, rows: Mapping[int, Mapping[str, Any]], spec: Any,
             objectives: Sequence[Any], watch: str) -> None:
    import optuna
    from optuna.trial import TrialState

    top = max(rows, default=-1)
    seen: list[list[float]] = []
    memory = history.memory_of_candidates()
    for number in range(top + 1):
        row = rows.get(number)
        if row is None or row["state"] == "running":
            study.add_trial(optuna.trial.create_trial(state=TrialState.FAIL))
            continue
        state, values = _expected(row, seen, objectives)
        if row["state"] == "complete":
            seen.append(values)  # type: ignore[arg-type]
        params, dists = replay(spec, loads(row["choices"]) or {})
        attrs = {INVALID_KEY: 1.0, CONSTRAINTS_KEY: [1.0]} if row["state"] == "invalid" else {}
        steps = {}
        if len(objectives) == 1 and row["state"] in ("complete", "pruned"):
            source = row["id"]
            if row["duplicate_of"] is not None:  # its epochs are the earlier trial's
                source = rows.get(row["duplicate_of"], row)["id"]
            for ep in history.epochs(source):
                v = ep.get(watch)
                if v is not None and math.isfinite(v):
                    steps[int(ep["epoch"])] = float(v)
        study.add_trial(optuna.trial.create_trial(
            state=state, values=values, params=params, distributions=dists,
            system_attrs=attrs, intermediate_values=steps,
            user_attrs=row_attrs(row, memory.get(row["arch_hash"]))))


def row_attrs(row: Mapping[str, Any], memory: int | None) -> dict[str, Any]:
    """A history row's user attributes in the study (:func:`trial_attrs`, and the
    reason of an invalid or failed trial, the trial it duplicates)."""
    attrs = trial_attrs(row["id"], row["arch_hash"], row["params"], row["flops"], memory)
    if row["duplicate_of"] is not None:
        attrs["duplicate_of"] = row["duplicate_of"]
    if row["state"] in ("invalid", "failed") and row["error"]:
        attrs["reason"] = row["error"][:500]
    return attrs

"""The Optuna study of a run: opened from its journal, checked against the history.

The SQLite history is the source of truth; the study (an Optuna journal file
beside the database, ``<db>.optuna.log``) is what the samplers read. When a run
resumes, the study is made to agree with the history:

- a trial the study still holds ``RUNNING`` is told what the history recorded,
  with the parameters, attributes and curve the journal lacks (a kill between the
  history write and the journal write leaves exactly that: the journal's last
  lines are written behind);
- trials the history recorded after the journal's last are added from the history
  (a kill between the history's commit and the journal's write leaves those);
- a journal that is missing, unreadable (emptied, cut mid-line, not a journal) or
  that disagrees with the history in a way a tell cannot mend is **rebuilt from the
  history**: every recorded trial is added again under its own number (gaps
  filled with failed trials, so numbers keep lining up), with its parameters,
  distributions (found by replaying the choices through the spec), values,
  feasibility and intermediate values. A damaged journal file is moved aside
  first (``<journal>.damaged-<time>``), never overwritten.

The journal's path is stored relative to the database (``runs.study_storage``),
so a database renamed together with its journal still finds it. During a run the
samplers, the pruner and the search work on a copy of the study in memory, and the
journal is written from it (:class:`StudyMirror`) in batches, at most once a second
(:class:`StudyFiles`): each trial once whole, then what changed, a batch's lines in
one append (:class:`JournalFile`).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
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


#: Optuna's journal operations that number what they create (studies, trials): written
#: to the file at once, after any lines another process appended, so that the file,
#: replayed, gives every study and trial the id it has here
_NUMBERING_OPS = (0, 1, 4)  # CREATE_STUDY, DELETE_STUDY, CREATE_TRIAL
#: the operation that sets a trial's state (a finished state: the trial's result)
_SET_STATE_OP = 6


#: a journal line as Optuna's file backend writes it (one encoder for every line)
_line = json.JSONEncoder(separators=(",", ":")).encode


def _finishes(log: Mapping[str, Any]) -> bool:
    if log["op_code"] != _SET_STATE_OP:
        return False
    from optuna.trial import TrialState

    return TrialState(log["state"]).is_finished()


class JournalFile:
    """The run's journal file, behind Optuna's ``JournalStorage``: written behind,
    never read back (only other processes' lines are read).

    Optuna's own file backend reads the file again on every read of the study and
    appends under its lock (a symbolic link made and removed) once per operation,
    about fifteen times a trial: that was nearly all of a search's own time per
    trial. Here the storage applies its operations at once, as Optuna's does, and
    their lines go to the file in batches, each one ``write`` in append mode:

    - an operation that numbers what it creates (a study, a trial) is written at
      once, under Optuna's journal lock (which Optuna's writers take too: another run
      of the same database shares the file, and optuna-dashboard may write to it),
      after reading the lines others appended before it, so that the file, replayed,
      numbers it as this process did;
    - a trial's result (a finished state) is written at once, with what came before
      it; :meth:`flush` writes the rest (after each trial :class:`StudyMirror`
      writes, and when the run ends);
    - inside :meth:`holding` (a search writes its trials so, in batches: see
      :class:`StudyFiles`) the lock is taken once, the lines others appended are
      read first, and the batch's lines go to the file in one write at its end.

    Lines that create nothing are appended without the lock (one ``write`` of whole
    lines in append mode, which no other append splits): they only change this run's
    own trials, so where other processes' lines fall among them changes nothing. The
    file is read again only under the lock, skipping the ranges this process wrote.
    ``batching`` False writes every operation at once (after the run: what a user
    does with ``result.study`` is written as it happens).
    """

    def __init__(self, path: str) -> None:
        self.path, self.lock = path, _lock(path)
        if not os.path.exists(path):
            open(path, "ab").close()
        self.batching = True
        self._guard = threading.RLock()  # (Ray Tune's callbacks may run in other threads)
        self._end = 0  # bytes of the file applied here (read, or written from here)
        self._mine: list[tuple[int, int]] = []  # byte ranges written here beyond _end
        self._new: list[dict[str, Any]] = []  # lines for the storage to apply next
        self._pending: list[dict[str, Any]] = []  # applied here, not in the file yet
        self._holding = False  # the journal lock held across operations (holding())

    # BaseJournalBackend (registered in _storage)
    def read_logs(self, log_number_from: int) -> list[dict[str, Any]]:
        if log_number_from and not self._new:  # (the storage reads before each access)
            return []
        with self._guard:
            if log_number_from == 0:  # the storage's first read: the whole file
                self._read()
            logs, self._new = self._new, []
            return logs

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        with self._guard:
            self._pending.extend(logs)
            if logs[0]["op_code"] in _NUMBERING_OPS:
                self._flush(locked=True)  # (queues others' lines before this one)
            elif not self.batching or any(map(_finishes, logs)):
                self._flush(locked=False)
            self._new.extend(logs)

    def flush(self, locked: bool = False) -> None:
        """Append what this process wrote since the last flush, in one write; under
        the journal lock, after reading the lines others appended (``locked``)."""
        with self._guard:
            if self._pending:
                self._flush(locked)

    @contextlib.contextmanager
    def holding(self) -> Iterator[None]:
        """Optuna's journal lock held across the operations of the block (a batch of
        trials): the lines others appended are read first, and no one appends while it
        is held, so this process's lines, numbering ones too, go to the file in one
        write when the block ends (also when it raises: they are applied here already,
        and must take in the file the places they took here)."""
        with self._guard:
            if self._holding:
                yield
                return
            self.lock.acquire()
            self._holding = True
            try:
                self._read()
                yield
            finally:
                try:
                    if self._pending:
                        data = b"".join(_line(log).encode("utf-8") + b"\n"
                                        for log in self._pending)
                        self._end = self._append(data)[1]
                        self._mine, self._pending = [], []
                finally:
                    self._holding = False
                    self.lock.release()

    def _flush(self, locked: bool) -> None:
        if self._holding:  # (written when the hold ends)
            return
        data = "".join([_line(log) + "\n" for log in self._pending]).encode("utf-8")
        if not locked:
            start, end = self._append(data)
            if start == self._end:
                self._end = end
            else:  # others' lines lie between: read under the lock, later
                self._mine.append((start, end))
            self._pending = []
            return
        self.lock.acquire()
        try:
            self._read()
            self._end = self._append(data)[1]
            self._mine = []
        finally:
            self.lock.release()
        self._pending = []

    def _append(self, data: bytes) -> tuple[int, int]:
        """Write ``data`` at the end of the file: the byte range it took."""
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            end = os.lseek(fd, 0, os.SEEK_CUR)
        finally:
            os.close(fd)
        return end - len(data), end

    def _read(self) -> None:
        """Queue the complete lines others appended since the last look."""
        try:
            size = os.stat(self.path).st_size
        except FileNotFoundError:
            return
        if size <= self._end:
            return
        with open(self.path, "rb") as f:
            f.seek(self._end)
            data = f.read(size - self._end)
        cut = data.rfind(b"\n") + 1  # a last line still being written is read next time
        pos = self._end
        for line in data[:cut].splitlines(keepends=True):
            if not any(a <= pos < b for a, b in self._mine):
                self._new.append(json.loads(line))
            pos += len(line)
        self._end += cut
        self._mine = [(a, b) for a, b in self._mine if b > self._end]


def _lock(path: str) -> Any:
    """Optuna's journal lock (a symbolic link beside the file, which its writers
    take too), released by removing the link: Optuna's release renames it to a fresh
    random name first, which costs more than the rest of a flush together."""
    from optuna.storages.journal import JournalFileSymlinkLock

    class Lock(JournalFileSymlinkLock):
        def release(self) -> None:
            try:
                os.unlink(self._lock_file)
            except OSError:
                raise RuntimeError("Error: did not possess lock") from None

    return Lock(path)


def _register() -> None:
    from optuna.storages.journal import BaseJournalBackend

    BaseJournalBackend.register(JournalFile)


def _storage(path: Path) -> tuple[Any, JournalFile]:
    from optuna.storages import JournalStorage

    _register()
    backend = JournalFile(str(path))
    return JournalStorage(backend), backend


class StudyMirror:
    """The run's study in memory, and its study in the journal, written from it.

    Optuna's ``JournalStorage`` writes a line and replays it for every parameter,
    attribute and result, and reads the journal again before every access: about
    fifteen operations a trial, each far dearer than in memory. Here the samplers,
    the pruner and the search work on an ``InMemoryStorage`` study, and
    :meth:`record` writes a trial to the journal study through Optuna's storage API:
    the first time whole, as one trial created from it (``create_new_trial`` with the
    trial as its template), later what changed (its attributes, curve and result).
    The search has a trial recorded (in batches, :class:`StudyFiles`) as an epoch
    before its last ends and when it ends (a short trial once, whole), a trial a Ray
    worker trains when it is proposed and when it ends: the journal holds every ended
    trial's result, and a running trial's parameters, attributes and the epochs it
    finished (the history, which holds them too, fills in on resume what a kill kept
    from the journal: ``_mend``). Trials are recorded in
    the order they were asked, so each takes in the journal the number it has here
    (other runs sharing the file number their own studies' trials).
    """

    def __init__(self, journal: Any, **study_args: Any):
        import optuna

        #: the study in the journal (what ``result.study`` is: what is done with it after
        #: the run is written as it happens)
        self.journal = journal
        self._storage, self._jid = journal._storage, journal._study_id
        memory = optuna.storages.InMemoryStorage()
        self.study = optuna.create_study(storage=memory, study_name=journal.study_name,
                                         directions=journal.directions, **study_args)
        self._memory, self._mid = memory, self.study._study_id
        self._user = dict(self._storage.get_study_user_attrs(self._jid))
        self._system = dict(self._storage.get_study_system_attrs(self._jid))
        for key, value in self._user.items():
            memory.set_study_user_attr(self._mid, key, value)
        for key, value in self._system.items():
            memory.set_study_system_attr(self._mid, key, value)
        #: what the journal holds of each trial (:func:`_held`), and its id there
        self._held: list[_Held] = []
        self._ids: list[int] = []
        for t in journal.get_trials(deepcopy=False):
            memory.create_new_trial(self._mid, template_trial=t)
            self._held.append(_held(t))
            self._ids.append(t._trial_id)
        self._guard = threading.Lock()  # (Ray Tune's callbacks may run in other threads)

    def record(self, numbers: Iterable[int] | None = None,
               backends: Sequence[JournalFile] = ()) -> None:
        """Write the trials ``numbers`` (and any before them the journal lacks; every
        trial when None) and the study's attributes to the journal as they are in
        memory now, under one hold of the lock of each of ``backends``."""
        with self._guard, contextlib.ExitStack() as held:  # (this order, always)
            for backend in backends:
                held.enter_context(backend.holding())
            self._record_study()
            if numbers is None:
                for t in self._memory.get_all_trials(self._mid, deepcopy=False):
                    self._record(t)
                return
            for number in sorted(numbers):
                for n in range(len(self._held), number):  # (asked before, numbered first)
                    self._record(self._trial(n))
                self._record(self._trial(number))

    def _trial(self, number: int) -> Any:
        memory = self._memory
        return memory.get_trial(memory.get_trial_id_from_study_id_trial_number(self._mid,
                                                                               number))

    def _record(self, t: Any) -> None:
        storage, n = self._storage, t.number
        if n == len(self._held):  # a new trial: created whole, under its number
            tid = storage.create_new_trial(self._jid, template_trial=t)
            numbered = storage.get_trial(tid).number
            if numbered != n:
                raise RuntimeError(f"trial {n} took number {numbered} in the journal")
            self._held.append(_held(t))
            self._ids.append(tid)
            return
        now, held, tid = _held(t), self._held[n], self._ids[n]
        if now == held:
            return
        for name in now.params - held.params:
            dist = t.distributions[name]
            storage.set_trial_param(tid, name, dist.to_internal_repr(t.params[name]), dist)
        for key, value in now.user_attrs.items():
            if held.user_attrs.get(key, _MISSING) != value:
                storage.set_trial_user_attr(tid, key, value)
        for key, value in now.system_attrs.items():
            if held.system_attrs.get(key, _MISSING) != value:
                storage.set_trial_system_attr(tid, key, value)
        for step, value in now.intermediate_values.items():
            if held.intermediate_values.get(step, _MISSING) != value:
                storage.set_trial_intermediate_value(tid, step, value)
        if (now.state, now.values) != (held.state, held.values):
            storage.set_trial_state_values(tid, t.state, t.values)
        self._held[n] = now

    def _record_study(self) -> None:
        for key, value in self._memory.get_study_user_attrs(self._mid).items():
            if self._user.get(key, _MISSING) != value:
                self._storage.set_study_user_attr(self._jid, key, value)
                self._user[key] = value
        for key, value in self._memory.get_study_system_attrs(self._mid).items():
            if self._system.get(key, _MISSING) != value:
                self._storage.set_study_system_attr(self._jid, key, value)
                self._system[key] = value


_MISSING = object()


@dataclass(frozen=True)
class _Held:
    """What the journal holds of a trial: copies (Optuna's ``Trial`` changes its
    cached ``FrozenTrial``, which in memory is the stored one, in place)."""

    params: frozenset[str]
    user_attrs: dict[str, Any]
    system_attrs: dict[str, Any]
    intermediate_values: dict[int, float]
    state: Any
    values: tuple[float, ...] | None


def _held(t: Any) -> _Held:
    return _Held(frozenset(t.params), dict(t.user_attrs), dict(t.system_attrs),
                 dict(t.intermediate_values), t.state,
                 None if t.values is None else tuple(t.values))


#: the environment variable that sets how often a search writes its trials to the
#: journal (seconds; 0: each trial as soon as it is recorded)
JOURNAL_EVERY_ENV = "AUTOARCH_JOURNAL_EVERY_S"


def journal_every_s() -> float:
    """Seconds between a search's writes to the journal: ``$AUTOARCH_JOURNAL_EVERY_S``,
    else 1. A trial that ends waits at most that long, or until the next has trained."""
    text = os.environ.get(JOURNAL_EVERY_ENV, "").strip()
    if not text:
        return 1.0
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        from ..dsl.errors import CommandError

        raise CommandError(f"{JOURNAL_EVERY_ENV} must be a number of seconds >= 0, not "
                           f"'{text}'", hint=f"unset it (1 s) or set e.g. "
                           f"{JOURNAL_EVERY_ENV}=0 to write each trial at once")
    return value


class StudyFiles:
    """Opens journals, moving a damaged one aside; collects what it did as notes; holds
    the run's :class:`StudyMirror`, and writes its trials to the journal in batches.

    The search says which trial is due (:meth:`record`): when it ends, and while it
    trains as an epoch ends. The trials due are written together at most once every
    :attr:`every_s` seconds (:func:`journal_every_s`), under one hold of the journal's
    lock, in one append: for short trials one line each, and one lock and one write
    for many, where writing each as it ended cost about 0.3 ms a trial, a sixth of
    the search's own time. The history is written first, always; what a kill keeps
    from the journal, a resume completes from it (:func:`resume_study`)."""

    def __init__(self, db: Path):
        self.db = db
        self.notes: list[str] = []
        #: journals this object created (removed again if the run is never recorded)
        self.created: list[Path] = []
        self._backends: list[JournalFile] = []
        self.mirror: StudyMirror | None = None
        self.every_s = journal_every_s()
        self._due: set[int] = set()  # trials to write to the journal
        self._written = -math.inf  # when they were last written (time.monotonic)

    def mirrored(self, journal: Any, **study_args: Any) -> Any:
        """The run's study in memory, a copy of ``journal`` (a study in a journal opened
        here), which :meth:`record` writes back."""
        self.mirror = StudyMirror(journal, **study_args)
        return self.mirror.study

    def record(self, number: int) -> None:
        """Trial ``number`` of the run's study is to go to its journal: written with the
        others due once :attr:`every_s` has passed since the last write (else by a later
        call, :meth:`write` or :meth:`close`)."""
        self._due.add(number)
        if time.monotonic() - self._written >= self.every_s:
            self.write()

    @property
    def due(self) -> bool:
        """Whether trials wait to be written to the journal."""
        return bool(self._due)

    def write(self) -> None:
        """Write the trials due to the journal now, under one hold of its lock."""
        if self.mirror is not None and self._due:
            self.mirror.record(self._due, self._backends)
        self._due.clear()
        self.flush()
        self._written = time.monotonic()

    def flush(self) -> None:
        """Write what the studies opened here hold and their journals do not yet."""
        for backend in self._backends:
            backend.flush()

    def close(self) -> None:
        """Record the run's study whole, flush; from here on every operation on the
        journal study is written as it happens."""
        if self.mirror is not None:
            self.mirror.record(None, self._backends)
        self._due.clear()
        for backend in self._backends:
            backend.batching = False
            backend.flush()

    def open(self, path: Path) -> Any:
        storage, backend = self._open(path)
        self._backends.append(backend)
        return storage

    def _open(self, path: Path) -> tuple[Any, JournalFile]:
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
    return files.mirrored(study, **_load_args(kwargs)), study_name, path.name


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
    recorded = _Recorded(history, spec, rows, len(objectives), watch)
    study = None
    if name in optuna.get_all_study_names(storage):
        study = optuna.load_study(study_name=name, storage=storage, **_load_args(kwargs))
        if _mend(study, rows, objectives, recorded):
            return files.mirrored(study, **_load_args(kwargs)), path.name
        files.notes.append(f"the Optuna study {name} disagreed with the history; rebuilt it "
                           "from the history")
        optuna.delete_study(study_name=name, storage=storage)
    study = optuna.create_study(study_name=name, storage=storage, **kwargs)
    _rebuild(study, rows, objectives, recorded)
    return files.mirrored(study, **_load_args(kwargs)), path.name


class _Recorded:
    """What the history holds of a run's trials, as a study holds it: parameters and
    distributions, user attributes, curve (what a rebuilt trial is made of, and what a
    mended one is given where its journal lacks it)."""

    def __init__(self, history: History, spec: Any, rows: Mapping[int, Mapping[str, Any]],
                 n_objectives: int, watch: str):
        self.history, self.spec, self.rows = history, spec, rows
        self.n_objectives, self.watch = n_objectives, watch
        self._memory: dict[str, int] | None = None

    def params(self, row: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        return replay(self.spec, loads(row["choices"]) or {})

    def attrs(self, row: Mapping[str, Any]) -> dict[str, Any]:
        if self._memory is None:
            self._memory = self.history.memory_of_candidates()
        return row_attrs(row, self._memory.get(row["arch_hash"]))

    def steps(self, row: Mapping[str, Any]) -> dict[int, float]:
        """The trial's curve: the watched metric by epoch (a duplicate's is the earlier
        trial's; Optuna keeps curves of one objective)."""
        steps: dict[int, float] = {}
        if self.n_objectives == 1 and row["state"] in ("complete", "pruned"):
            source = row["id"]
            if row["duplicate_of"] is not None:  # its epochs are the earlier trial's
                source = self.rows.get(row["duplicate_of"], row)["id"]
            for ep in self.history.epochs(source):
                v = ep.get(self.watch)
                if v is not None and math.isfinite(v):
                    steps[int(ep["epoch"])] = float(v)
        return steps


def _load_args(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The sampler and pruner of a study's arguments (the journal study and the one in
    memory share them; only the one in memory asks)."""
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


def _mend(study: Any, rows: Mapping[int, Mapping[str, Any]], objectives: Sequence[Any],
          recorded: _Recorded) -> bool:
    """Tell trials the study holds running (given first what the journal lacks of them),
    and add the trials the history recorded after the journal's last (a kill between
    the history's commit and the journal's write); False when only a rebuild can make
    it agree."""
    from optuna.trial import TrialState

    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
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
            _complete(study, t, row, recorded)
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
    _rebuild(study, rows, objectives, recorded, start=len(trials))
    return True


def _complete(study: Any, t: Any, row: Mapping[str, Any], recorded: _Recorded) -> None:
    """Give a running trial the parameters, user attributes and curve its row has and
    the journal lacks (lines a kill kept from the file)."""
    storage, tid = study._storage, t._trial_id
    params, dists = recorded.params(row)
    for name, value in params.items():
        if name not in t.params:
            storage.set_trial_param(tid, name, dists[name].to_internal_repr(value), dists[name])
    for key, value in recorded.attrs(row).items():
        if key not in t.user_attrs:
            storage.set_trial_user_attr(tid, key, value)
    for step, value in recorded.steps(row).items():
        if step not in t.intermediate_values:
            storage.set_trial_intermediate_value(tid, step, value)


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


def _rebuild(study: Any, rows: Mapping[int, Mapping[str, Any]], objectives: Sequence[Any],
             recorded: _Recorded, start: int = 0) -> None:
    """Add the history's trials numbered ``start`` and after to ``study`` (which holds
    those before), under their numbers."""
    import optuna
    from optuna.trial import TrialState

    top = max(rows, default=-1)
    seen: list[list[float]] = []
    for number in range(top + 1):
        row = rows.get(number)
        if row is None or row["state"] == "running":
            if number >= start:
                study.add_trial(optuna.trial.create_trial(state=TrialState.FAIL))
            continue
        state, values = _expected(row, seen, objectives)
        if row["state"] == "complete":
            seen.append(values)  # type: ignore[arg-type]
        if number < start:
            continue
        params, dists = recorded.params(row)
        attrs = {INVALID_KEY: 1.0, CONSTRAINTS_KEY: [1.0]} if row["state"] == "invalid" else {}
        study.add_trial(optuna.trial.create_trial(
            state=state, values=values, params=params, distributions=dists,
            system_attrs=attrs, intermediate_values=recorded.steps(row),
            user_attrs=recorded.attrs(row)))


def row_attrs(row: Mapping[str, Any], memory: int | None) -> dict[str, Any]:
    """A history row's user attributes in the study (:func:`trial_attrs`, and the
    reason of an invalid or failed trial, the trial it duplicates)."""
    attrs = trial_attrs(row["id"], row["arch_hash"], row["params"], row["flops"], memory)
    if row["duplicate_of"] is not None:
        attrs["duplicate_of"] = row["duplicate_of"]
    if row["state"] in ("invalid", "failed") and row["error"]:
        attrs["reason"] = row["error"][:500]
    return attrs

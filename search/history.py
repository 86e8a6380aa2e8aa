"""The history database: every run, candidate, trial and epoch, in one SQLite file.

Written through sqlite-utils by one writer per run (the search driver), in WAL mode
with foreign keys on, so readers (``autoarch history``, ``sqlite-utils``, Datasette)
can open it while a search runs. Tables:

``runs``        one row per search run (``name`` unique); the Optuna study lives in
                its own storage beside the database, named by ``study_name`` /
                ``study_storage``.
``candidates``  one row per architecture (``arch_hash``, the canonical graph hash):
                choices of its first sighting, the IR as JSON, params, FLOPs, memory.
``trials``      one row per proposal of the run: ``state`` is ``running``,
                ``complete``, ``failed``, ``invalid`` or ``pruned``; ``metrics`` and
                ``objective`` as JSON; ``error``; ``duplicate_of`` names the trial
                number whose result a re-proposed candidate reused.
``epochs``      per-epoch curves of each trained trial (``metrics``: a JSON object of
                the other numbers an objective function reported for the epoch).
``weights``     the kept weights (the best trial's, or the Pareto front's) as a
                file that ``torch.load(weights_only=True)`` reads.

The file is marked as ours by ``PRAGMA application_id`` (:data:`APPLICATION_ID`),
written with the schema in one transaction, so a process killed while creating it
leaves an empty file or a whole schema. A file that is not ours (another program's
SQLite database, a file that is not SQLite) is refused before anything is written.
Every problem with the file is a one-line :class:`HistoryError`.

A writer checkpoints (copies the WAL into the database file, which waits for two
fsyncs) in a thread of its own once the WAL holds :data:`CHECKPOINT_PAGES`, so
that a search's commits do not wait for the disk (:class:`_Checkpoints`).

A run is written by one process at a time: :meth:`History.lock_run` takes a POSIX
record lock in ``<db>.lock`` that the kernel drops when the process ends, however it
ends. Byte 0 of that file is held briefly while a run is claimed; byte 1 is held
shared by every writing History, so that the lock file (and an unused database,
``close(discard_if_unused=True)``) is deleted only by the last one to close.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import sqlite3
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, TypeVar
from urllib.parse import quote

import sqlite_utils
from sqlite_utils.db import NotFoundError, jsonify_if_needed

from ..dsl.errors import CommandError

SCHEMA_VERSION = 1
#: ``PRAGMA application_id`` of a history database: "AAhd"
APPLICATION_ID = 0x41416864
STATES = ("running", "complete", "failed", "invalid", "pruned")
#: states of trials that ran to their end: they count towards a run's budget
#: (``failed`` only when its error does not start with :data:`INTERRUPTED`)
FINISHED = ("complete", "failed", "pruned")
#: the error of a failed trial that did not run to its end starts with this
INTERRUPTED = "interrupted"
TABLES = frozenset({"runs", "candidates", "trials", "epochs", "weights"})

#: how long to wait for a busy database, or for another process's brief lock
BUSY_TIMEOUT_S = 30.0
#: a writer's WAL (in pages) past which a thread of its own copies it into the database
#: (SQLite's own checkpoint, in the commit, stays as the backstop at 4x that)
CHECKPOINT_PAGES = 1000
#: and at most this often (a reader holding an old snapshot holds the WAL back)
CHECKPOINT_EVERY_S = 1.0
_MAGIC = b"SQLite format 3\x00"
_CLAIM_BYTE, _OPEN_BYTE = 0, 1  # bytes of the lock file; runs lock bytes from 2 up
_RESTORE = "restore it from a backup or give --db a new file"


class HistoryError(CommandError):
    """A history database that cannot be used: missing, not ours, damaged, read-only,
    of a newer schema, or a run in use by another process. Prints as one line."""


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, allow_nan=True)


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def counts(state: str, error: str | None) -> bool:
    """Whether a trial that ended in ``state`` with ``error`` ran to its end, so counts
    towards its run's budget (what :meth:`History.counted` counts)."""
    return state in FINISHED and not (
        state == "failed" and (error or "").startswith(INTERRUPTED))


_SCHEMA = (
    """CREATE TABLE "runs" (
   "id" INTEGER PRIMARY KEY, "name" TEXT NOT NULL, "model" TEXT, "spec_file" TEXT,
   "spec_text" TEXT NOT NULL, "spec_hash" TEXT, "strategy" TEXT NOT NULL, "objectives" TEXT,
   "config" TEXT, "trials_requested" INTEGER, "seed" INTEGER, "epochs" INTEGER,
   "study_name" TEXT, "study_storage" TEXT, "started_at" TEXT, "finished_at" TEXT,
   "status" TEXT NOT NULL, "autoarch_version" TEXT)""",
    'CREATE UNIQUE INDEX "idx_runs_name" ON "runs" ("name")',
    """CREATE TABLE "candidates" (
   "arch_hash" TEXT PRIMARY KEY, "model" TEXT, "choices" TEXT, "graph" TEXT, "params" INTEGER,
   "trainable_params" INTEGER, "nonzero_params" INTEGER, "flops" INTEGER, "memory" INTEGER,
   "nodes" INTEGER, "first_run_id" INTEGER REFERENCES "runs"("id"), "first_seen_at" TEXT)""",
    f"""CREATE TABLE trials (
   id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL REFERENCES runs(id),
   number INTEGER NOT NULL, arch_hash TEXT REFERENCES candidates(arch_hash),
   choices TEXT, train_config TEXT,
   state TEXT NOT NULL CHECK (state IN ({", ".join(f"'{s}'" for s in STATES)})),
   metrics TEXT, objective TEXT, error TEXT, traceback TEXT,
   duplicate_of INTEGER, params INTEGER, flops INTEGER,
   started_at TEXT, finished_at TEXT, duration_s FLOAT)""",
    'CREATE UNIQUE INDEX "idx_trials_run_id_number" ON "trials" ("run_id", "number")',
    'CREATE INDEX "idx_trials_run_id_state" ON "trials" ("run_id", "state")',
    'CREATE INDEX "idx_trials_arch_hash" ON "trials" ("arch_hash")',
    """CREATE TABLE "epochs" (
   "trial_id" INTEGER REFERENCES "trials"("id"), "epoch" INTEGER, "train_loss" REAL,
   "train_accuracy" REAL, "val_loss" REAL, "val_accuracy" REAL, "lr" REAL, "wall_s" REAL,
   "metrics" TEXT, PRIMARY KEY ("trial_id", "epoch"))""",
    """CREATE TABLE "weights" (
   "trial_id" INTEGER PRIMARY KEY REFERENCES "trials"("id"),
   "run_id" INTEGER REFERENCES "runs"("id"), "data" BLOB, "saved_at" TEXT)""",
    """CREATE VIEW trial_summary AS
   SELECT runs.name AS run, trials.number, trials.state, trials.arch_hash,
          trials.params, trials.flops, trials.objective, trials.metrics,
          trials.duplicate_of, trials.error, trials.duration_s, trials.choices
   FROM trials JOIN runs ON runs.id = trials.run_id""",
)

#: metrics kept as columns by the view ``trial_metrics`` (from the ``metrics`` JSON)
VIEW_METRICS = ("val_accuracy", "val_loss", "train_loss", "train_accuracy", "test_accuracy",
                "test_loss", "train_time", "latency")

#: views for SQL by hand: a trial addressed by (run, number), its metrics as columns.
#: Created with the schema, and added to older files when a writer opens them.
_VIEWS = (
    """CREATE VIEW IF NOT EXISTS trial_metrics AS
   SELECT runs.name AS run, trials.number, trials.state,
          json_extract(trials.objective, '$[0]') AS objective,
          """ + ", ".join(f"json_extract(trials.metrics, '$.{m}') AS {m}"
                           for m in VIEW_METRICS) + """,
          trials.params, trials.flops, candidates.memory, trials.duplicate_of,
          trials.arch_hash, trials.duration_s, trials.error, trials.choices,
          trials.id AS trial_id, runs.id AS run_id
   FROM trials JOIN runs ON runs.id = trials.run_id
   LEFT JOIN candidates ON candidates.arch_hash = trials.arch_hash""",
    """CREATE VIEW IF NOT EXISTS epoch_metrics AS
   SELECT runs.name AS run, trials.number, epochs.epoch, epochs.train_loss,
          epochs.train_accuracy, epochs.val_loss, epochs.val_accuracy, epochs.lr,
          epochs.wall_s, epochs.metrics, trials.state, trials.id AS trial_id
   FROM epochs JOIN trials ON trials.id = epochs.trial_id
   JOIN runs ON runs.id = trials.run_id""",
)

#: one-shot runs (docs/oneshot.md): the supernet's epochs, and the candidates scored
#: on it (not trials: ``best`` and ``history`` rank trained candidates only). Added
#: to a schema-1 file when a writer opens it; a reader of an older file sees none.
_ONESHOT_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS supernet_epochs (
   run_id INTEGER NOT NULL REFERENCES runs(id), epoch INTEGER NOT NULL, train_loss REAL,
   val_loss REAL, val_accuracy REAL, lr REAL, wall_s REAL, paths INTEGER,
   PRIMARY KEY (run_id, epoch))""",
    """CREATE TABLE IF NOT EXISTS supernet_scores (
   run_id INTEGER NOT NULL REFERENCES runs(id), number INTEGER NOT NULL,
   arch_hash TEXT REFERENCES candidates(arch_hash), choices TEXT, metrics TEXT,
   objective TEXT, params INTEGER, flops INTEGER, scored_at TEXT,
   PRIMARY KEY (run_id, number))""",
)

_T = TypeVar("_T", bound=Callable[..., Any])


def _translated(method: _T) -> _T:
    """sqlite3 errors of ``method`` become one-line HistoryErrors naming the file."""

    @functools.wraps(method)
    def wrapper(self: History, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as e:
            if isinstance(e, sqlite3.ProgrammingError):  # a closed connection: our bug
                raise
            raise _error(self.path, e, readonly=self.readonly) from e

    return wrapper  # type: ignore[return-value]


class History:
    """The history database of ``path``.

    ``History(path)`` opens it for writing, creating it with its schema when it is
    missing or an empty file (``create=False``: refuse a missing file). An existing
    file must be ours; nothing is written to one that is not. ``readonly=True``
    never creates or writes anything (``autoarch history``, ``autoarch best``).

    Example:
        >>> h = History("autoarch.db")
        >>> lock = h.lock_run("tpe-1")   # held until h.close() or lock.release()
        >>> with h.transaction():
        ...     run_id = h.create_run(name="tpe-1", spec_text="...", strategy="tpe")
        >>> h.close(discard_if_unused=True)
    """

    def __init__(self, path: str | Path, *, create: bool = True, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        #: True when this object made the file (it did not exist before)
        self.created = False
        self._locks: dict[str, RunLock] = {}
        self._lockfile: _LockFile | None = None
        #: ``started_at`` of the trials started here and not finished yet (their duration
        #: is computed without reading the row back)
        self._started: dict[int, str] = {}
        self._checkpoints: _Checkpoints | None = None
        self._closed = False
        header = self._check_file(create=create and not readonly)
        conn = None
        try:
            if readonly:
                conn = _connect_readonly(self.path, header)
            else:
                self._lockfile = _LockFile.join(_lock_path(self.path), self.path)
                self.created = not self.path.exists()
                conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            conn.text_factory = _text
            conn.execute("PRAGMA foreign_keys = ON")
            self.db = sqlite_utils.Database(conn)
            self._open_schema()
            if not readonly:
                self._checkpoints = _Checkpoints.of(self)
        except BaseException as e:
            if conn is not None:
                conn.close()
            if self._lockfile is not None:
                self._lockfile.leave(self._own_files() if self.created else ())
            if isinstance(e, sqlite3.DatabaseError) and not isinstance(
                    e, sqlite3.ProgrammingError):
                raise _error(self.path, e, readonly=readonly) from e
            raise

    # -- opening

    def _check_file(self, *, create: bool) -> _Header | None:
        """Refuse what must not be opened, before anything is written: the header."""
        p = self.path
        if p.is_dir():
            raise HistoryError(f"{p} is a directory, not a history database",
                               hint="give the path of a database file")
        if not p.exists():
            if not create:
                raise HistoryError(f"no history database at {p}",
                                   hint=f"run `autoarch search FILE.spec --db {p}` first")
            folder = Path(os.path.abspath(p)).parent
            if not folder.is_dir():
                raise HistoryError(f"cannot create {p}: folder {folder} does not exist",
                                   hint="create the folder first, or give --db another path")
            self._check_folder(folder)
            return None
        try:
            header = _read_header(p)
        except OSError as e:
            raise HistoryError(f"cannot read {p}: {e.strerror or e}",
                               hint="check its permissions, or give --db another file") from None
        if header is None:  # an empty file
            if self.readonly:
                raise HistoryError(f"{p} is empty: no search has written to it",
                                   hint=f"run `autoarch search FILE.spec --db {p}` first")
        else:
            _check_ours(p, header, readonly=self.readonly)
        if not self.readonly:
            if not os.access(p, os.W_OK):
                raise HistoryError(f"{p} is read-only",
                                   hint="make it writable, or give --db a new file")
            self._check_folder(Path(os.path.abspath(p)).parent)
        return header

    def _check_folder(self, folder: Path) -> None:
        if not os.access(folder, os.W_OK | os.X_OK):
            raise HistoryError(f"cannot write beside {self.path}: folder {folder} is read-only "
                               "(SQLite keeps its -wal, -shm and lock files there)",
                               hint="make the folder writable, or give --db another path")

    def _open_schema(self) -> None:
        """Check the schema; a writer creates it in an empty file, in one transaction."""
        db = self.db
        if self.readonly:
            self._check_schema(db.execute("PRAGMA user_version").fetchone()[0],
                               self._tables())
            return
        with self.transaction():
            version = db.execute("PRAGMA user_version").fetchone()[0]
            tables = self._tables()
            if not tables and version == 0:
                for sql in (*_SCHEMA, *_ONESHOT_SCHEMA, *_VIEWS):
                    db.execute(sql)
                db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            else:
                self._check_schema(version, tables)
                if db.execute("PRAGMA application_id").fetchone()[0] != APPLICATION_ID:
                    # schema 1 from before the mark: its tables told us it is ours
                    db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        if not self._tables() >= {"supernet_epochs", "supernet_scores"}:
            with self.transaction():
                for sql in _ONESHOT_SCHEMA:
                    db.execute(sql)
        if "metrics" not in {r[1] for r in db.execute('PRAGMA table_info("epochs")')}:
            with self.transaction():  # a history from before user objectives' own metrics
                db.execute('ALTER TABLE "epochs" ADD COLUMN "metrics" TEXT')
        views = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'view'")}
        if not views >= {"trial_metrics", "epoch_metrics"}:
            with self.transaction():
                for sql in _VIEWS:
                    db.execute(sql)
        # WAL only after the schema: a rollback journal keeps a killed creation empty
        if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            with contextlib.suppress(sqlite3.OperationalError):  # busy: the next open retries
                db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        # a writer refuses a damaged file rather than add to it (readers fail on use)
        problem = db.execute("PRAGMA quick_check(1)").fetchone()[0]
        if problem != "ok":
            raise HistoryError(f"{self.path} is damaged ({problem})", hint=_RESTORE)

    def _tables(self) -> set[str]:
        return {r[0] for r in self.db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%'")}

    def _check_schema(self, version: int, tables: set[str]) -> None:
        if version > SCHEMA_VERSION:
            raise _newer(self.path, version)
        if not TABLES <= tables:
            missing = ", ".join(sorted(TABLES - tables))
            raise HistoryError(f"{self.path} is an incomplete history database (it lacks "
                               f"tables {missing})", hint=_RESTORE)

    def _own_files(self) -> list[Path]:
        return [self.path] + [Path(f"{self.path}{s}") for s in ("-wal", "-shm", "-journal")]

    def close(self, discard_if_unused: bool = False) -> None:
        """Close the database and release this object's run locks.

        With ``discard_if_unused``, a database this object created (``created``) that
        holds no run is deleted with its -wal, -shm and lock files, unless another
        History (of any process) has it open.
        """
        if self._closed:
            return
        self._closed = True
        discard = False
        if discard_if_unused and self.created and not self.readonly:
            with contextlib.suppress(sqlite3.Error):
                discard = self.db.execute("SELECT count(*) FROM runs").fetchone()[0] == 0
        for lock in list(self._locks.values()):
            lock.release()
        if self._checkpoints is not None:
            self._checkpoints.stop()  # (this connection, closing last, checkpoints the rest)
        self.db.conn.close()
        if self._lockfile is not None:
            self._lockfile.leave(self._own_files() if discard else ())
            self._lockfile = None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``; ``ROLLBACK`` when the block raises.

        A transaction inside another joins it: the outer one commits.
        """
        conn = self.db.conn
        if conn.in_transaction:
            yield
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.DatabaseError as e:
            raise _error(self.path, e, readonly=self.readonly) from e
        try:
            yield
        except BaseException:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.DatabaseError as e:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise _error(self.path, e, readonly=self.readonly) from e
        if self._checkpoints is not None:
            self._checkpoints.committed()

    # -- run locks

    @_translated
    def lock_run(self, name: str) -> RunLock:
        """Claim run ``name`` for this process until ``close()`` (or the lock's release).

        A HistoryError when another process (or another History of this one) holds it.
        """
        if self.readonly or self._lockfile is None:
            raise HistoryError(f"{self.path} was opened read-only; runs are locked to write")
        if name in self._locks:
            return self._locks[name]
        lf = self._lockfile
        offset = _run_offset(name)
        with lf.claiming():
            if offset in lf.runs:
                holder: int | None = os.getpid()
            elif _try_lock(lf.fd, fcntl.LOCK_EX, offset):
                lf.runs[offset] = name
                lock = self._locks[name] = RunLock(self, name, offset)
                return lock
            else:
                holder = _holder(lf.fd, offset)
        who = ("another History of this process" if holder == os.getpid()
               else "another process") + (f" (pid {holder})" if holder else "")
        raise HistoryError(f"run {name} in {self.path} is in use by {who}",
                           hint="wait for it to finish, or give another --name")

    def unlock_run(self, name: str) -> None:
        """Release this object's lock on run ``name`` (nothing when it holds none)."""
        lock = self._locks.get(name)
        if lock is not None:
            lock.release()

    # -- runs

    @_translated
    def run(self, name: str) -> dict[str, Any] | None:
        rows = list(self.db["runs"].rows_where("name = ?", [name]))
        return rows[0] if rows else None

    @_translated
    def runs(self) -> list[dict[str, Any]]:
        return list(self.db["runs"].rows_where(order_by="id"))

    @_translated
    def latest_run(self, *, complete: bool = False) -> dict[str, Any] | None:
        """The latest run; with ``complete``, the latest that has a complete trial."""
        where = ("EXISTS (SELECT 1 FROM trials WHERE trials.run_id = runs.id AND "
                 "trials.state = 'complete')") if complete else None
        rows = list(self.db["runs"].rows_where(where, order_by="id desc", limit=1))
        return rows[0] if rows else None

    def get_run(self, name: str | None) -> dict[str, Any]:
        """The run named ``name`` (the latest when None); a HistoryError when there is none."""
        row = self.latest_run() if name is None else self.run(name)
        if row is None:
            if name is None:
                raise HistoryError(f"{self.path} holds no runs yet",
                                   hint=f"run `autoarch search FILE.spec --db {self.path}`")
            from ..dsl.errors import suggest

            names = [r["name"] for r in self.runs()]
            if not names:
                raise HistoryError(f"{self.path} has no run named '{name}'; it holds no runs")
            raise HistoryError(f"{self.path} has no run named '{name}'",
                               hint=suggest(name, names, listing="runs"))
        return row

    @_translated
    def create_run(self, **fields: Any) -> int:
        """Insert the run row (``name`` must be new); its id."""
        fields.setdefault("started_at", now())
        fields.setdefault("status", "running")
        with self.transaction():
            if self.run(fields["name"]) is not None:
                raise HistoryError(f"run {fields['name']} already exists in {self.path}",
                                   hint="give another --name")
            return self.db["runs"].insert(fields).last_pk

    @_translated
    def update_run(self, run_id: int, **fields: Any) -> None:
        with self.transaction():
            self.db["runs"].update(run_id, fields)

    # -- candidates and trials

    @_translated
    def add_candidate(self, graph: Any, run_id: int) -> str:
        """Record the graph's architecture once; returns its hash."""
        from ..compiler.spec import to_jsonable

        h = graph.hash
        with self.transaction():
            if self.db.execute("SELECT 1 FROM candidates WHERE arch_hash = ?",
                               [h]).fetchone() is not None:
                return h  # seen before: its first sighting stays (and the IR is not encoded)
            self._insert("candidates", {
                "arch_hash": h, "model": graph.model, "choices": dumps(to_jsonable(graph.choices)),
                "graph": dumps(graph.to_json()), "params": graph.params,
                "trainable_params": graph.trainable_params,
                "nonzero_params": graph.nonzero_params, "flops": graph.flops,
                "memory": graph.memory, "nodes": len(graph), "first_run_id": run_id,
                "first_seen_at": now(),
            }, "INSERT OR IGNORE")
        return h

    @_translated
    def start_trial(self, run_id: int, number: int, **fields: Any) -> int:
        row = {"run_id": run_id, "number": number, "state": "running", "started_at": now()}
        row.update(fields)
        with self.transaction():
            trial_id = self._insert("trials", row)
        self._started[trial_id] = row["started_at"]
        return trial_id

    @_translated
    def finish_trial(self, trial_id: int, state: str, **fields: Any) -> None:
        assert state in STATES, state
        row = dict(fields, state=state)
        row.setdefault("finished_at", now())
        for key in ("metrics", "objective"):
            if key in row and not isinstance(row[key], str | None):
                row[key] = dumps(row[key])
        started = self._started.pop(trial_id, None)
        with self.transaction():
            if "duration_s" not in row:
                if started is None:
                    found = self.db.execute("SELECT started_at FROM trials WHERE id = ?",
                                            [trial_id]).fetchone()
                    if found is None:
                        raise NotFoundError(f"no trial {trial_id}")
                    started = found[0]
                row["duration_s"] = _seconds(started, row["finished_at"])
            self._update("trials", trial_id, row)

    @_translated
    def add_epoch(self, trial_id: int, **fields: Any) -> None:
        with self.transaction():
            self._insert("epochs", dict(fields, trial_id=trial_id), "INSERT OR REPLACE")

    @_translated
    def trial(self, trial_id: int) -> dict[str, Any]:
        """One trial's row, by its id."""
        rows = self._rows("SELECT * FROM trials WHERE id = ?", [trial_id])
        if not rows:
            raise NotFoundError(f"no trial {trial_id}")
        return rows[0]

    @_translated
    def trials(self, run_id: int, states: Iterable[str] | None = None) -> list[dict[str, Any]]:
        where, args = "run_id = ?", [run_id]
        if states is not None:
            states = list(states)
            where += f" AND state IN ({', '.join('?' * len(states))})"
            args += states
        return self._rows(f"SELECT * FROM trials WHERE {where} ORDER BY number", args)

    @_translated
    def memory_of_candidates(self) -> dict[str, int]:
        """Each recorded architecture's memory estimate, by its hash."""
        return dict(self.db.execute("SELECT arch_hash, memory FROM candidates").fetchall())

    @_translated
    def epochs(self, trial_id: int) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM epochs WHERE trial_id = ? ORDER BY epoch", [trial_id])

    @_translated
    def state_counts(self, run_id: int) -> dict[str, int]:
        """How many of the run's trials are in each state."""
        return dict(self.db.execute("SELECT state, count(*) FROM trials WHERE run_id = ? "
                                    "GROUP BY state", [run_id]).fetchall())

    #: a trial that ran to its end (:func:`counts`): complete, pruned, or failed other
    #: than interrupted
    _RAN = ("(state IN ('complete', 'pruned') OR (state = 'failed' AND "
            f"substr(coalesce(error, ''), 1, {len(INTERRUPTED)}) != '{INTERRUPTED}'))")

    @_translated
    def counted(self, run_id: int) -> int:
        """Trials of the run that ran to their end (interruptions excluded)."""
        return self.db.execute(f"SELECT count(*) FROM trials WHERE run_id = ? AND {self._RAN}",
                               [run_id]).fetchone()[0]

    @_translated
    def evaluated(self, run_id: int, arch_hash: str, train_config: str) -> dict[str, Any] | None:
        """The first trial of the run that ran this architecture and training to the end."""
        rows = self._rows(
            f"SELECT * FROM trials WHERE run_id = ? AND arch_hash = ? AND train_config = ? AND "
            f"duplicate_of IS NULL AND {self._RAN} ORDER BY number LIMIT 1",
            [run_id, arch_hash, train_config])
        return rows[0] if rows else None

    # -- one-shot runs

    @_translated
    def add_supernet_epoch(self, run_id: int, row: Mapping[str, Any]) -> None:
        """Record a supernet epoch (again after a resume: the row is replaced)."""
        self._add_oneshot("INSERT OR REPLACE", "supernet_epochs", run_id, {
            c: row.get(c) for c in ("epoch", "train_loss", "val_loss", "val_accuracy", "lr",
                                    "wall_s", "paths")})

    @_translated
    def supernet_epochs(self, run_id: int) -> list[dict[str, Any]]:
        return self._oneshot_rows("supernet_epochs", run_id, "epoch")

    @_translated
    def add_supernet_score(self, run_id: int, row: Mapping[str, Any]) -> None:
        """Record a candidate scored on the supernet (its number: the order of scoring)."""
        self._add_oneshot("INSERT", "supernet_scores", run_id, {
            **{c: row.get(c) for c in ("number", "arch_hash", "choices", "metrics", "objective",
                                       "params", "flops")}, "scored_at": now()})

    @_translated
    def supernet_scores(self, run_id: int) -> list[dict[str, Any]]:
        return self._oneshot_rows("supernet_scores", run_id, "number")

    def _add_oneshot(self, verb: str, table: str, run_id: int, row: Mapping[str, Any]) -> None:
        with self.transaction():
            self.db.execute(f"{verb} INTO {table} (run_id, {', '.join(row)}) "
                            f"VALUES (?{', ?' * len(row)})", [run_id, *row.values()])

    def _oneshot_rows(self, table: str, run_id: int, order: str) -> list[dict[str, Any]]:
        if table not in self._tables():  # a file from before one-shot search, read-only
            return []
        cur = self.db.execute(f"SELECT * FROM {table} WHERE run_id = ? ORDER BY {order}",
                              [run_id])
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    # -- weights

    @_translated
    def save_weights(self, trial_id: int, run_id: int, data: bytes) -> None:
        with self.transaction():
            self._insert("weights", {"trial_id": trial_id, "run_id": run_id, "data": data,
                                     "saved_at": now()}, "INSERT OR REPLACE")

    @_translated
    def keep_weights(self, run_id: int, trial_ids: Iterable[int]) -> None:
        """Delete the run's kept weights except those of ``trial_ids``."""
        keep = list(trial_ids)
        marks = ", ".join("?" * len(keep)) or "NULL"
        with self.transaction():
            self.db.execute(f"DELETE FROM weights WHERE run_id = ? AND trial_id NOT IN ({marks})",
                            [run_id, *keep])

    @_translated
    def weights(self, trial_id: int) -> bytes | None:
        row = self.db.execute("SELECT data FROM weights WHERE trial_id = ?",
                              [trial_id]).fetchone()
        return row[0] if row else None

    @_translated
    def weighted_trials(self, run_id: int) -> Iterator[int]:
        ids = [tid for (tid,) in self.db.execute(
            "SELECT trial_id FROM weights WHERE run_id = ?", [run_id])]
        return iter(ids)

    # -- the statements of a search's every trial, written as sqlite-utils writes them
    #    (values JSON-encoded where needed) without its schema look-ups on every call

    def _insert(self, table: str, row: Mapping[str, Any], verb: str = "INSERT") -> int:
        """Insert ``row``; its rowid."""
        cols = ", ".join(f'"{c}"' for c in row)
        cur = self.db.conn.execute(
            f'{verb} INTO "{table}" ({cols}) VALUES ({", ".join("?" * len(row))})',
            [jsonify_if_needed(v) for v in row.values()])
        return cur.lastrowid  # type: ignore[return-value]

    def _update(self, table: str, rowid: int, row: Mapping[str, Any]) -> None:
        if not row:
            return
        sets = ", ".join(f'"{c}" = ?' for c in row)
        cur = self.db.conn.execute(f'UPDATE "{table}" SET {sets} WHERE rowid = ?',
                                   [*(jsonify_if_needed(v) for v in row.values()), rowid])
        if cur.rowcount == 0:
            raise NotFoundError(f"no row {rowid} in {table}")

    def _rows(self, sql: str, args: Iterable[Any]) -> list[dict[str, Any]]:
        cur = self.db.conn.execute(sql, list(args))
        keys = [d[0] for d in cur.description]
        return [dict(zip(keys, r, strict=True)) for r in cur.fetchall()]


class RunLock:
    """A run claimed by this process (:meth:`History.lock_run`); ``release()`` ends it."""

    def __init__(self, history: History, name: str, offset: int):
        self.history, self.name, self._offset = history, name, offset
        self.pid = os.getpid()
        self.held = True

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        self.history._locks.pop(self.name, None)
        lf = self.history._lockfile
        if lf is not None and lf.runs.pop(self._offset, None) is not None:
            fcntl.lockf(lf.fd, fcntl.LOCK_UN, 1, self._offset, os.SEEK_SET)

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


# -- the file, before SQLite opens it


@dataclass(frozen=True)
class _Header:
    """What the first 100 bytes of a SQLite file say."""

    wal: bool
    application_id: int
    user_version: int


def _read_header(path: Path) -> _Header | None:
    """The header of ``path`` (None for an empty file); a HistoryError if it is not one."""
    with open(path, "rb") as f:
        head = f.read(100)
        size = os.fstat(f.fileno()).st_size
    if not head:
        return None
    if not head.startswith(_MAGIC):
        raise HistoryError(f"{path} is not an autoarch history database (file is not a "
                           "database)", hint="give --db a new file name")
    if len(head) < 100:
        raise HistoryError(f"{path} is damaged (truncated to {size} bytes)", hint=_RESTORE)
    page_size = int.from_bytes(head[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(head[28:32], "big")
    pages_valid = head[92:96] == head[24:28]
    # with a -wal or -journal the main file may lag its header; without, it must hold it
    settled = not any(Path(f"{path}{s}").exists() for s in ("-wal", "-journal"))
    if pages_valid and settled and size < pages * page_size:
        raise HistoryError(f"{path} is damaged (truncated: {size} bytes of "
                           f"{pages * page_size})", hint=_RESTORE)
    return _Header(wal=head[18] == 2,
                   application_id=int.from_bytes(head[68:72], "big", signed=True),
                   user_version=int.from_bytes(head[60:64], "big", signed=True))


def _check_ours(path: Path, header: _Header, *, readonly: bool) -> None:
    """A HistoryError unless ``path`` is an autoarch history of a schema we read."""
    if header.application_id == APPLICATION_ID:
        if header.user_version > SCHEMA_VERSION:
            raise _newer(path, header.user_version)
        return
    try:
        conn = _connect_readonly(path, header)
        try:
            tables = {r[0] for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND "
                "name NOT LIKE 'sqlite%'")}
        finally:
            conn.close()
    except sqlite3.DatabaseError as e:
        raise _error(path, e, readonly=readonly) from e
    if header.application_id == 0 and tables == TABLES:  # schema 1, before the mark
        if header.user_version > SCHEMA_VERSION:
            raise _newer(path, header.user_version)
        return
    what = f"it has tables {', '.join(sorted(tables))}" if tables else "it has no tables"
    if header.application_id not in (0, APPLICATION_ID):
        what += f", application id {header.application_id:#x}"
    raise HistoryError(f"{path} is not an autoarch history database ({what})",
                       hint="give --db a new file name" if not readonly
                       else "give the database that `autoarch search --db` wrote")


def _connect_readonly(path: Path, header: _Header | None) -> sqlite3.Connection:
    """A connection that reads ``path`` without creating or changing any file.

    ``mode=ro`` would create -wal and -shm files for a database in WAL mode whose
    writers are all closed, so such a file is read ``immutable`` (its main file then
    holds everything). With a -wal present (a search is writing), ``mode=ro`` reads
    it too, unless the -shm cannot be made (a read-only folder): then ``immutable``.
    """
    uri = "file:" + quote(os.path.abspath(path), safe="/")
    wal = header is not None and header.wal
    if wal and not Path(f"{path}-wal").exists():
        conn = sqlite3.connect(uri + "?mode=ro&immutable=1", uri=True)
    else:
        conn = sqlite3.connect(uri + "?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S)
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.OperationalError:
            conn.close()
            if not wal:
                raise
            conn = sqlite3.connect(uri + "?mode=ro&immutable=1", uri=True)
    conn.text_factory = _text
    return conn


def _text(data: bytes) -> str:
    # a damaged or hand-edited row may hold bytes that are not UTF-8: show, don't fail
    return data.decode("utf-8", errors="replace")


def unreadable(path: str | Path, e: Exception) -> HistoryError:
    """For a stored value that does not decode (JSON, a NULL where one is required)."""
    return HistoryError(f"{path} holds a value this autoarch cannot read "
                        f"({type(e).__name__}: {e})", hint=_RESTORE)


def _newer(path: Path, version: int) -> HistoryError:
    return HistoryError(f"{path} has history schema {version}; this autoarch reads schema "
                        f"{SCHEMA_VERSION}", hint="upgrade autoarch, or give --db a new file")


def _error(path: Path, e: sqlite3.DatabaseError, *, readonly: bool) -> HistoryError:
    """One line saying what is wrong with the file, and what to do."""
    code = getattr(e, "sqlite_errorcode", -1) & 0xFF
    text = str(e)
    if code == 11 or "malformed" in text:  # SQLITE_CORRUPT
        return HistoryError(f"{path} is damaged ({text})", hint=_RESTORE)
    if code == 26 or "not a database" in text:  # SQLITE_NOTADB
        return HistoryError(f"{path} is not an autoarch history database ({text})",
                            hint="give --db a new file name")
    if code in (5, 6):  # SQLITE_BUSY, SQLITE_LOCKED
        return HistoryError(f"{path} is locked by another process ({text})",
                            hint="wait for it to finish, then try again")
    if code == 8:  # SQLITE_READONLY
        return HistoryError(f"{path} is read-only ({text})",
                            hint="make it and its folder writable, or give --db a new file")
    if code == 14:  # SQLITE_CANTOPEN
        return HistoryError(f"cannot open {path} ({text})",
                            hint="check that it and its folder exist and are readable")
    if code == 13:  # SQLITE_FULL
        return HistoryError(f"cannot write {path} ({text})", hint="free some disk space")
    if code == 10:  # SQLITE_IOERR
        return HistoryError(f"cannot read or write {path} ({text})",
                            hint="check the disk, then try again")
    if "no such table" in text or "no such column" in text:
        return HistoryError(f"{path} is not a complete autoarch history database ({text})",
                            hint=_RESTORE)
    return HistoryError(f"{path} cannot be used ({text})", hint=_RESTORE)


# -- checkpoints


class _Checkpoints:
    """A writer's checkpoints, in a thread of its own with its own connection: after a
    commit that leaves the WAL past :data:`CHECKPOINT_PAGES` (its file's size: the
    writer's ``journal_size_limit`` cuts the file back to that when the WAL starts
    over), a ``PASSIVE`` checkpoint, which waits for no reader or writer; at most one
    every :data:`CHECKPOINT_EVERY_S`.

    SQLite's own checkpoint runs in the commit that takes the WAL past 1000 pages,
    which then waits for two fsyncs (tens of milliseconds on a busy disk); here the
    checkpoint happens while the search trains, and only the WAL's header, synced
    when the WAL starts over, is left to a commit. A process killed mid-checkpoint
    leaves the WAL to the next one (SQLite's checkpoints are safe at any point).
    The thread starts when the first checkpoint is due and ends with the History
    (``stop``): a checkpoint under way is interrupted, and the History's connection,
    closing last, checkpoints the rest.
    """

    def __init__(self, path: Path, limit: int):
        #: the file as it is now (never created again once it has gone)
        self._uri = "file:" + quote(os.path.abspath(path), safe="/") + "?mode=rw"
        self._wal, self.limit = f"{os.path.abspath(path)}-wal", limit
        self._wake, self._stopping = threading.Event(), threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self._last = 0.0

    @classmethod
    def of(cls, history: History) -> _Checkpoints:
        """Set the writer's connection up for them: its WAL limits."""
        db = history.db
        limit = CHECKPOINT_PAGES * (db.execute("PRAGMA page_size").fetchone()[0] + 24)
        db.execute(f"PRAGMA journal_size_limit = {limit}")
        db.execute(f"PRAGMA wal_autocheckpoint = {4 * CHECKPOINT_PAGES}")
        return cls(history.path, limit)

    def committed(self) -> None:
        """After a commit: wake the thread when a checkpoint is due (one ``stat`` here)."""
        if not self._due():
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, daemon=True,
                                            name=f"autoarch checkpoints of {self._wal}")
            self._thread.start()
        self._wake.set()

    def _due(self) -> bool:
        try:
            return os.stat(self._wal).st_size > self.limit
        except FileNotFoundError:
            return False

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        conn = self._conn
        if conn is not None:
            with contextlib.suppress(sqlite3.ProgrammingError):  # (closed meanwhile)
                conn.interrupt()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                left = self._last + CHECKPOINT_EVERY_S - time.monotonic()
                if self._stopping.wait(left if left > 0 else 0):
                    return
                if not self._due():  # (the WAL started over meanwhile)
                    continue
                if self._conn is None:
                    self._conn = sqlite3.connect(self._uri, uri=True, timeout=BUSY_TIMEOUT_S,
                                                 isolation_level=None, check_same_thread=False)
                    self._conn.execute("PRAGMA synchronous = NORMAL")
                    if self._stopping.is_set():
                        return
                self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                self._last = time.monotonic()
        except sqlite3.Error:
            pass  # (interrupted by stop, or the file went away: SQLite's own checkpoints)
        finally:
            if self._conn is not None:
                self._conn.close()


# -- the lock file


def _lock_path(db: Path) -> Path:
    # the real path: a symlink to the database must share its lock file
    return Path(os.path.realpath(db) + ".lock")


def _run_offset(name: str) -> int:
    """The lock byte of run ``name``: a stable 31-bit hash, past the two special bytes."""
    return 2 + int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big") % (2**31 - 2)


def _try_lock(fd: int, kind: int, offset: int) -> bool:
    try:
        fcntl.lockf(fd, kind | fcntl.LOCK_NB, 1, offset, os.SEEK_SET)
    except (BlockingIOError, PermissionError):
        return False
    return True


def _wait_lock(fd: int, kind: int, offset: int, what: str) -> None:
    """Take a lock that others hold only briefly; a HistoryError after BUSY_TIMEOUT_S."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while not _try_lock(fd, kind, offset):
        if time.monotonic() > deadline:
            holder = _holder(fd, offset)
            pid = f" (pid {holder})" if holder else ""
            raise HistoryError(f"{what} is held by another process{pid}",
                               hint="wait for it to finish, then try again")
        time.sleep(0.01)


def _holder(fd: int, offset: int) -> int | None:
    """The pid of a process holding a lock on byte ``offset`` (Linux's struct flock)."""
    if sys.platform != "linux":
        return None
    fmt = "hhqqi"  # l_type, l_whence, l_start, l_len, l_pid
    try:
        res = fcntl.fcntl(fd, fcntl.F_GETLK,
                          struct.pack(fmt, fcntl.F_WRLCK, os.SEEK_SET, offset, 1, 0))
    except OSError:
        return None
    kind, _, _, _, pid = struct.unpack(fmt, res)
    return pid if kind != fcntl.F_UNLCK and pid > 0 else None


class _LockFile:
    """``<db>.lock``, opened once per process.

    POSIX record locks belong to a process, and closing any descriptor of the file
    drops all of them, so every History of this process on one database shares one
    descriptor. While it is open the process holds byte 1 shared; the last one out
    (of all processes) takes byte 1 exclusive and deletes the file.
    """

    _open: ClassVar[dict[Path, _LockFile]] = {}

    def __init__(self, path: Path, fd: int):
        self.path, self.fd = path, fd
        self.users = 0
        #: run locks held by this process: offset -> run name
        self.runs: dict[int, str] = {}

    @classmethod
    def join(cls, path: Path, db: Path) -> _LockFile:
        lf = cls._open.get(path)
        if lf is None:
            lf = cls(path, cls._open_fd(path, db))
            cls._open[path] = lf
        lf.users += 1
        return lf

    @staticmethod
    def _open_fd(path: Path, db: Path) -> int:
        while True:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as e:
                raise HistoryError(f"cannot create the lock file {path}: {e.strerror or e}",
                                   hint="make the folder writable, or give --db another "
                                        "path") from None
            try:
                _wait_lock(fd, fcntl.LOCK_SH, _OPEN_BYTE, f"the lock file of {db}")
                # the last user of the file may have deleted it meanwhile: then start over
                if _same_file(os.fstat(fd), path):
                    return fd
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)

    @contextlib.contextmanager
    def claiming(self) -> Iterator[None]:
        """Byte 0, exclusive: one process at a time claims or creates a run."""
        _wait_lock(self.fd, fcntl.LOCK_EX, _CLAIM_BYTE, f"the lock file {self.path}")
        try:
            yield
        finally:
            fcntl.lockf(self.fd, fcntl.LOCK_UN, 1, _CLAIM_BYTE, os.SEEK_SET)

    def leave(self, discard: Iterable[Path]) -> None:
        """One History less; the last one of every process deletes the lock file, and
        ``discard`` with it."""
        self.users -= 1
        if self.users > 0 or self.runs:
            return
        del _LockFile._open[self.path]
        try:
            if _try_lock(self.fd, fcntl.LOCK_EX, _OPEN_BYTE):
                for p in discard:
                    with contextlib.suppress(FileNotFoundError):
                        p.unlink()
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
        finally:
            os.close(self.fd)


# a forked child holds none of its parent's record locks: it starts its own lock files
os.register_at_fork(after_in_child=_LockFile._open.clear)


def _same_file(st: os.stat_result, path: Path) -> bool:
    try:
        now_st = os.stat(path)
    except FileNotFoundError:
        return False
    return (st.st_dev, st.st_ino) == (now_st.st_dev, now_st.st_ino)


def _seconds(start: str | None, end: str) -> float | None:
    if not start:
        return None
    return round((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds(), 3)

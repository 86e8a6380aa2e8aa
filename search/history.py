"""The history database: every run, candidate, trial and epoch, in one SQLite file.

Written through sqlite-utils by one writer (the search driver), in WAL mode with
foreign keys on, so readers (``autoarch history``, ``sqlite-utils``, Datasette)
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
``epochs``      per-epoch curves of each trained trial.
``weights``     the kept weights (the best trial's, or the Pareto front's) as a
                file that ``torch.load(weights_only=True)`` reads.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlite_utils

from ..dsl.errors import SpecError

SCHEMA_VERSION = 1
STATES = ("running", "complete", "failed", "invalid", "pruned")
#: states of trials that ran to their end: they count towards a run's budget
#: (``failed`` only when it was not an interruption)
FINISHED = ("complete", "failed", "pruned")
INTERRUPTED = "interrupted"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, allow_nan=True)


class History:
    """The history database of ``path``; created with its schema when missing.

    Example:
        >>> h = History("autoarch.db")
        >>> [r["name"] for r in h.runs()]
    """

    def __init__(self, path: str | Path, *, create: bool = True):
        self.path = Path(path)
        if not create and not self.path.exists():
            raise SpecError(f"no history database at {self.path}",
                            hint="run `autoarch search FILE.spec --db PATH` first")
        try:
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            conn.execute("PRAGMA foreign_keys = ON")
            self.db = sqlite_utils.Database(conn)
            self.db.enable_wal()
            self.db.execute("PRAGMA synchronous = NORMAL")
            self._create()
        except sqlite3.DatabaseError as e:
            raise SpecError(f"{self.path} is not a usable history database ({e})") from None

    def close(self) -> None:
        self.db.conn.close()

    # -- schema

    def _create(self) -> None:
        db = self.db
        if "runs" in db.table_names():
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version != SCHEMA_VERSION:
                raise SpecError(f"{self.path} has history schema {version}; this autoarch "
                                f"reads schema {SCHEMA_VERSION}")
            return
        with db.conn:
            db["runs"].create({
                "id": int, "name": str, "model": str, "spec_file": str, "spec_text": str,
                "spec_hash": str, "strategy": str, "objectives": str, "config": str,
                "trials_requested": int, "seed": int, "epochs": int, "study_name": str,
                "study_storage": str, "started_at": str, "finished_at": str, "status": str,
                "autoarch_version": str,
            }, pk="id", not_null={"name", "spec_text", "strategy", "status"})
            db["runs"].create_index(["name"], unique=True)
            db["candidates"].create({
                "arch_hash": str, "model": str, "choices": str, "graph": str, "params": int,
                "trainable_params": int, "nonzero_params": int, "flops": int, "memory": int,
                "nodes": int, "first_run_id": int, "first_seen_at": str,
            }, pk="arch_hash", foreign_keys=[("first_run_id", "runs", "id")])
            states = ", ".join(f"'{x}'" for x in STATES)
            db.execute(f"""CREATE TABLE trials (
                id INTEGER PRIMARY KEY,
                run_id INTEGER NOT NULL REFERENCES runs(id),
                number INTEGER NOT NULL,
                arch_hash TEXT REFERENCES candidates(arch_hash),
                choices TEXT, train_config TEXT,
                state TEXT NOT NULL CHECK (state IN ({states})),
                metrics TEXT, objective TEXT, error TEXT, traceback TEXT,
                duplicate_of INTEGER, params INTEGER, flops INTEGER,
                started_at TEXT, finished_at TEXT, duration_s FLOAT)""")
            db["trials"].create_index(["run_id", "number"], unique=True)
            db["trials"].create_index(["run_id", "state"])
            db["trials"].create_index(["arch_hash"])
            db["epochs"].create({
                "trial_id": int, "epoch": int, "train_loss": float, "train_accuracy": float,
                "val_loss": float, "val_accuracy": float, "lr": float, "wall_s": float,
            }, pk=("trial_id", "epoch"), foreign_keys=[("trial_id", "trials", "id")])
            db["weights"].create({
                "trial_id": int, "run_id": int, "data": bytes, "saved_at": str,
            }, pk="trial_id", foreign_keys=[("trial_id", "trials", "id"),
                                            ("run_id", "runs", "id")])
            db.execute("""CREATE VIEW trial_summary AS
                SELECT runs.name AS run, trials.number, trials.state, trials.arch_hash,
                       trials.params, trials.flops, trials.objective, trials.metrics,
                       trials.duplicate_of, trials.error, trials.duration_s, trials.choices
                FROM trials JOIN runs ON runs.id = trials.run_id""")
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    # -- runs

    def run(self, name: str) -> dict[str, Any] | None:
        rows = list(self.db["runs"].rows_where("name = ?", [name]))
        return rows[0] if rows else None

    def runs(self) -> list[dict[str, Any]]:
        return list(self.db["runs"].rows_where(order_by="id"))

    def latest_run(self) -> dict[str, Any] | None:
        rows = list(self.db["runs"].rows_where(order_by="id desc", limit=1))
        return rows[0] if rows else None

    def get_run(self, name: str | None) -> dict[str, Any]:
        """The run named ``name`` (the latest when None); a SpecError when there is none."""
        row = self.latest_run() if name is None else self.run(name)
        if row is None:
            names = [r["name"] for r in self.runs()]
            if name is None:
                raise SpecError(f"{self.path} holds no runs yet")
            from ..dsl.errors import suggest
            raise SpecError(f"{self.path} has no run named '{name}'",
                            hint=suggest(name, names, listing="runs:") or "")
        return row

    def create_run(self, **fields: Any) -> int:
        fields.setdefault("started_at", now())
        fields.setdefault("status", "running")
        with self.db.conn:
            return self.db["runs"].insert(fields).last_pk

    def update_run(self, run_id: int, **fields: Any) -> None:
        with self.db.conn:
            self.db["runs"].update(run_id, fields)

    # -- candidates and trials

    def add_candidate(self, graph: Any, run_id: int) -> str:
        """Record the graph's architecture once; returns its hash."""
        h = graph.hash
        with self.db.conn:
            self.db["candidates"].insert({
                "arch_hash": h, "model": graph.model, "choices": dumps(_jsonable(graph.choices)),
                "graph": dumps(graph.to_json()), "params": graph.params,
                "trainable_params": graph.trainable_params,
                "nonzero_params": graph.nonzero_params, "flops": graph.flops,
                "memory": graph.memory, "nodes": len(graph), "first_run_id": run_id,
                "first_seen_at": now(),
            }, ignore=True)
        return h

    def start_trial(self, run_id: int, number: int, **fields: Any) -> int:
        row = {"run_id": run_id, "number": number, "state": "running", "started_at": now()}
        row.update(fields)
        with self.db.conn:
            return self.db["trials"].insert(row).last_pk

    def finish_trial(self, trial_id: int, state: str, **fields: Any) -> None:
        assert state in STATES, state
        row = dict(fields, state=state)
        row.setdefault("finished_at", now())
        started = self.db["trials"].get(trial_id)["started_at"]
        row.setdefault("duration_s", _seconds(started, row["finished_at"]))
        for key in ("metrics", "objective"):
            if key in row and not isinstance(row[key], str | None):
                row[key] = dumps(row[key])
        with self.db.conn:
            self.db["trials"].update(trial_id, row)

    def add_epoch(self, trial_id: int, **fields: Any) -> None:
        with self.db.conn:
            self.db["epochs"].insert(dict(fields, trial_id=trial_id), replace=True)

    def trials(self, run_id: int, states: Iterable[str] | None = None) -> list[dict[str, Any]]:
        where, args = "run_id = ?", [run_id]
        if states is not None:
            states = list(states)
            where += f" AND state IN ({', '.join('?' * len(states))})"
            args += states
        return list(self.db["trials"].rows_where(where, args, order_by="number"))

    def epochs(self, trial_id: int) -> list[dict[str, Any]]:
        return list(self.db["epochs"].rows_where("trial_id = ?", [trial_id], order_by="epoch"))

    def counted(self, run_id: int) -> int:
        """Trials of the run that ran to their end (interruptions excluded)."""
        return self.db.execute(
            "SELECT count(*) FROM trials WHERE run_id = ? AND (state IN ('complete', 'pruned') "
            "OR (state = 'failed' AND coalesce(error, '') != ?))",
            [run_id, INTERRUPTED]).fetchone()[0]

    def evaluated(self, run_id: int, arch_hash: str, train_config: str) -> dict[str, Any] | None:
        """The first trial of the run that ran this architecture and training to the end."""
        rows = list(self.db["trials"].rows_where(
            "run_id = ? AND arch_hash = ? AND train_config = ? AND duplicate_of IS NULL AND "
            "(state IN ('complete', 'pruned') OR (state = 'failed' AND "
            "coalesce(error, '') != ?))", [run_id, arch_hash, train_config, INTERRUPTED],
            order_by="number", limit=1))
        return rows[0] if rows else None

    def interrupt_running(self, run_id: int) -> list[dict[str, Any]]:
        """Mark trials left ``running`` (by a killed process) failed: "interrupted"."""
        rows = self.trials(run_id, ["running"])
        for r in rows:
            self.finish_trial(r["id"], "failed", error=INTERRUPTED)
        return rows

    # -- weights

    def save_weights(self, trial_id: int, run_id: int, data: bytes) -> None:
        with self.db.conn:
            self.db["weights"].insert({"trial_id": trial_id, "run_id": run_id, "data": data,
                                       "saved_at": now()}, replace=True)

    def keep_weights(self, run_id: int, trial_ids: Iterable[int]) -> None:
        """Delete the run's kept weights except those of ``trial_ids``."""
        keep = list(trial_ids)
        marks = ", ".join("?" * len(keep)) or "NULL"
        with self.db.conn:
            self.db.execute(f"DELETE FROM weights WHERE run_id = ? AND trial_id NOT IN ({marks})",
                            [run_id, *keep])

    def weights(self, trial_id: int) -> bytes | None:
        row = self.db.execute("SELECT data FROM weights WHERE trial_id = ?",
                              [trial_id]).fetchone()
        return row[0] if row else None

    def weighted_trials(self, run_id: int) -> Iterator[int]:
        for (tid,) in self.db.execute("SELECT trial_id FROM weights WHERE run_id = ?", [run_id]):
            yield tid


def _jsonable(choices: dict[str, Any]) -> dict[str, Any]:
    from ..compiler.values import to_json

    return {k: to_json(v) for k, v in choices.items()}


def _seconds(start: str | None, end: str) -> float | None:
    if not start:
        return None
    return round((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds(), 3)


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)

"""The Optuna journal, written behind the search (search/study.py ``JournalFile``),
against the history, after real kills and with two runs writing the one journal.

The journal is read with plain Optuna (``JournalFileBackend``), the history with
sqlite3; both are real files written by real ``autoarch search`` processes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState
from search_testing import SPEC, cli, env, query, run_cli

#: widths 40 and 48 break the constraint: invalid trials among the others
CONSTRAINED = SPEC.replace("trials = 4", "trials = 4  constraint params <= 2500")


def write_spec(tmp_path: Path, epochs: int) -> Path:
    path = tmp_path / "small.spec"
    path.write_text(CONSTRAINED.replace("EPOCHS", str(epochs)).lstrip())
    return path


def studies(db: Path) -> dict[str, optuna.Study]:
    """Each run's study, as plain Optuna reads the journal beside ``db``."""
    storage = JournalStorage(JournalFileBackend(str(db.with_name(db.name + ".optuna.log"))))
    return {r["name"]: optuna.load_study(study_name=r["study_name"], storage=storage)
            for r in query(db, "SELECT name, study_name FROM runs")}


def rows(db: Path, run: str) -> dict[int, dict]:
    return {r["number"]: dict(r) for r in query(
        db, "SELECT t.* FROM trials t JOIN runs ON runs.id = t.run_id WHERE runs.name = ? "
            "ORDER BY t.number", (run,))}


#: each trial written to the journal as soon as the search records it (no batches)
AT_ONCE = {"AUTOARCH_JOURNAL_EVERY_S": "0"}


def assert_agrees(study: optuna.Study, db: Path, run: str, *, running_ok: bool = False,
                  gaps_ok: bool = False, behind_ok: bool = False) -> None:
    """Every trial of the history is in the study under its number, with its state,
    values, parameters, row id and curve; none that the history lacks (``gaps_ok``:
    but failed ones, proposals a kill stopped before the history recorded them).

    ``behind_ok``: the journal as a kill leaves it, written in batches: the trials it
    lacks come after every trial it holds, and a trial it holds may still be running
    there (its end not written yet), with the parameters and the part of the curve
    the history has."""
    recorded = rows(db, run)
    trials = {t.number: t for t in study.trials}
    if gaps_ok:
        gaps = set(trials) - set(recorded)
        assert all(trials[n].state == TrialState.FAIL for n in gaps), gaps
        trials = {n: t for n, t in trials.items() if n not in gaps}
    if behind_ok:
        assert set(trials) <= set(recorded)
        lacking = set(recorded) - set(trials)
        assert all(n > max(trials, default=-1) for n in lacking), (sorted(trials), lacking)
        recorded = {n: r for n, r in recorded.items() if n in trials}
    assert set(trials) == set(recorded)
    for n, r in recorded.items():
        t = trials[n]
        assert t.user_attrs["history_trial_id"] == r["id"]
        assert t.params == json.loads(r["choices"]), n
        if behind_ok and t.state == TrialState.RUNNING and r["duplicate_of"] is None:
            curve = {e["epoch"]: e["val_accuracy"] for e in query(
                db, "SELECT epoch, val_accuracy FROM epochs WHERE trial_id = ?", (r["id"],))}
            assert t.intermediate_values.items() <= curve.items(), n
            continue
        if r["state"] == "running":
            assert running_ok and t.state == TrialState.RUNNING, n
        elif r["state"] == "complete":
            assert t.state == TrialState.COMPLETE and t.values == json.loads(r["objective"])
            source = r["id"] if r["duplicate_of"] is None else recorded[r["duplicate_of"]]["id"]
            curve = {e["epoch"]: e["val_accuracy"] for e in query(
                db, "SELECT epoch, val_accuracy FROM epochs WHERE trial_id = ?", (source,))}
            assert t.intermediate_values == curve, n
        elif r["state"] == "invalid":
            assert t.state == TrialState.COMPLETE and max(t.constraints.values()) > 0
        elif r["state"] == "pruned":
            assert t.state == TrialState.PRUNED
        else:
            assert t.state == TrialState.FAIL, (n, r["state"], t.state)


def start(args: list, cwd: Path, extra_env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(cli(*args), cwd=cwd, env={**env(), **(extra_env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_until(proc: subprocess.Popen, db: Path, sql: str, limit: float = 300) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
        try:
            if db.exists() and query(db, sql)[0][0]:
                return
        except Exception:  # noqa: BLE001 - the schema is not there yet
            continue
    proc.kill()
    proc.wait()
    raise AssertionError(f"not seen (exit {proc.returncode}): {proc.stderr.read()}")


@pytest.mark.parametrize("case", ["after-an-epoch", "in-epoch-1", "batched"])
def test_a_run_killed_mid_trial_leaves_a_complete_journal_and_resumes_agreeing(tmp_path,
                                                                              case):
    """Written at once (``AUTOARCH_JOURNAL_EVERY_S=0``): the kill leaves every ended
    trial and the running one with its first epochs; ``in-epoch-1``: the journal as a
    kill leaves it before the running trial's first epoch ended, cut before that
    trial's line. ``batched`` (the default, once a second): the journal behind the
    history. Each resumes mended, in agreement."""
    spec = write_spec(tmp_path, epochs=6)
    db = tmp_path / "runs.db"
    args = ["search", spec, "--trials", "4", "--db", db, "--name", "r", "--seed", "1"]
    proc = start(args, tmp_path, None if case == "batched" else AT_ONCE)
    # killed while a trial trains, after at least one trial ran to its end
    wait_until(proc, db, "SELECT (SELECT count(*) FROM trials WHERE state = 'complete') >= 1 "
                         "AND EXISTS (SELECT 1 FROM trials t WHERE t.state = 'running' AND "
                         "(SELECT count(*) FROM epochs e WHERE e.trial_id = t.id) >= 1)")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # what the kill left: every ended trial's result, and the running trial's
    # parameters and attributes (written when its first epoch ended), readable by Optuna
    assert_agrees(studies(db)["r"], db, "r", running_ok=True, behind_ok=case == "batched")
    if case == "in-epoch-1":
        journal = db.with_name(db.name + ".optuna.log")
        lines = journal.read_bytes().splitlines(keepends=True)
        create = max(i for i, line in enumerate(lines) if json.loads(line)["op_code"] == 4)
        journal.write_bytes(b"".join(lines[:create]))
        running = [t for t in studies(db)["r"].trials if t.state == TrialState.RUNNING]
        assert not running  # the running trial is not in the journal at all
    done = run_cli(*args, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "rebuilt" not in done.stdout + done.stderr  # mended, not rebuilt
    recorded = rows(db, "r")
    assert any(r["error"] == "interrupted: the process died during this trial"
               for r in recorded.values())
    assert_agrees(studies(db)["r"], db, "r")


def test_two_runs_writing_one_journal_at_once_both_agree(tmp_path):
    spec = write_spec(tmp_path, epochs=3)
    db = tmp_path / "runs.db"
    common = ["search", spec, "--trials", "4", "--db", db]
    procs = [start([*common, "--name", name, "--seed", str(seed)], tmp_path)
             for name, seed in (("a", 1), ("b", 2))]
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    found = studies(db)
    assert set(found) == {"a", "b"}
    for name, study in found.items():
        assert_agrees(study, db, name)

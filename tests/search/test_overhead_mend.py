"""A resumed run completes, from the history, what a kill kept from the journal. The
journal is written from the run's study in memory (search/study.py ``StudyMirror``),
here as soon as the search records a trial (``AUTOARCH_JOURNAL_EVERY_S=0``): a trial
once whole when an epoch before its last ends (one line: its parameters, attributes
and curve so far), then its curve and result when it ends; one that ends at its
first epoch, whole at its end. So a process killed after the
history recorded a trial, and before the journal did, leaves the trial in the journal
either not at all or created and running without its end.

The journal is cut exactly so (a real file, after a real run), the run resumed as a
real process; the journal is then read with plain Optuna, the history with sqlite3.
"""

from __future__ import annotations

import json
import os
import signal

import pytest
from optuna.trial import TrialState
from search_testing import run_cli
from test_overhead_journal import (
    AT_ONCE,
    assert_agrees,
    rows,
    start,
    studies,
    wait_until,
    write_spec,
)

#: Optuna's journal operation that creates a trial
CREATE_TRIAL = 4


@pytest.mark.parametrize("kept", [False, True], ids=["not-created", "created-not-ended"])
def test_what_a_kill_kept_from_the_journal_is_completed_on_resume(tmp_path, kept):
    spec = write_spec(tmp_path, epochs=2)
    db = tmp_path / "runs.db"
    args = ["search", spec, "--db", db, "--name", "r", "--seed", "3"]
    first = run_cli(*args, "--trials", "5", cwd=tmp_path, timeout=600, extra_env=AT_ONCE)
    assert first.returncode == 0, first.stderr
    journal = db.with_name(db.name + ".optuna.log")
    lines = journal.read_bytes().splitlines(keepends=True)
    last = max(i for i, line in enumerate(lines) if json.loads(line)["op_code"] == CREATE_TRIAL)
    journal.write_bytes(b"".join(lines[:last + kept]))
    cut = max(rows(db, "r"))
    left = [t for t in studies(db)["r"].trials if t.number == cut]
    if kept:  # created whole after its first epoch, running: that epoch only, no result
        assert left[0].state == TrialState.RUNNING and left[0].params and left[0].user_attrs
        assert set(left[0].intermediate_values) == {1}
    else:
        assert not left

    resumed = run_cli(*args, "--trials", "7", cwd=tmp_path, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert "rebuilt" not in resumed.stdout + resumed.stderr  # mended, not rebuilt
    study = studies(db)["r"]
    assert_agrees(study, db, "r")  # its state, values, parameters, row id and curve
    (done,) = [t for t in study.trials if t.number == cut]
    row = rows(db, "r")[cut]
    assert done.user_attrs["arch_hash"] == row["arch_hash"]
    assert done.user_attrs["params"] == row["params"]
    live = [t for t in study.trials if t.number < cut and t.params]  # written as it ran
    assert done.distributions and all(done.distributions[k] == t.distributions[k]
                                      for t in live for k in t.distributions)


def test_a_retry_left_queued_at_a_runs_end_is_in_the_journal_and_runs_once(tmp_path):
    """A trial queued in memory (the candidate a kill interrupted, tried again) that the
    run ends before asking for reaches the journal queued, and a later resume runs it."""
    spec = write_spec(tmp_path, epochs=300)  # seconds a trial: killed while one trains
    db = tmp_path / "runs.db"
    args = ["search", spec, "--db", db, "--name", "r", "--seed", "6"]
    proc = start([*args, "--trials", "3"], tmp_path)
    wait_until(proc, db, "SELECT (SELECT count(*) FROM trials WHERE state = 'complete') >= 1 "
                         "AND EXISTS (SELECT 1 FROM trials t WHERE t.state = 'running' AND "
                         "(SELECT count(*) FROM epochs e WHERE e.trial_id = t.id) >= 1)")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    (victim,) = [r for r in rows(db, "r").values() if r["state"] == "running"]
    idle = run_cli(*args, "--trials", "1", cwd=tmp_path)  # one done: nothing to run
    assert idle.returncode == 0, idle.stderr
    queued = [t for t in studies(db)["r"].trials if t.state == TrialState.WAITING]
    assert [t.system_attrs["fixed_params"] for t in queued] == [json.loads(victim["choices"])]
    done = run_cli(*args, "--trials", "3", cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr
    recorded = rows(db, "r")
    again = [r for r in recorded.values()
             if r["choices"] == victim["choices"] and r["duplicate_of"] is None]
    assert [r["state"] for r in again] == ["failed", "complete"]  # interrupted, then run once
    study = studies(db)["r"]
    assert [t.number for t in study.trials if t.state == TrialState.WAITING] == []
    assert again[1]["number"] == queued[0].number  # the queued trial itself ran
    assert_agrees(study, db, "r")

"""A resumed run completes, from the history, a trial whose journal lines a kill kept
from the file: the journal is written behind (search/study.py ``JournalFile``), so a
process killed after the history recorded a trial's end, and before the batch of its
parameters, attributes, curve and result reached the journal, leaves the trial there
created and running, nothing more.

The journal is cut exactly so (a real file, after a real run), the run resumed as a
real process; the journal is then read with plain Optuna, the history with sqlite3.
"""

from __future__ import annotations

import json

from optuna.trial import TrialState
from search_testing import run_cli
from test_overhead_journal import assert_agrees, rows, studies, write_spec

#: Optuna's journal operation that creates a trial
CREATE_TRIAL = 4


def test_a_trial_whose_lines_a_kill_kept_from_the_journal_is_completed_on_resume(tmp_path):
    spec = write_spec(tmp_path, epochs=2)
    db = tmp_path / "runs.db"
    args = ["search", spec, "--db", db, "--name", "r", "--seed", "3"]
    first = run_cli(*args, "--trials", "5", cwd=tmp_path, timeout=600)
    assert first.returncode == 0, first.stderr
    journal = db.with_name(db.name + ".optuna.log")
    lines = journal.read_bytes().splitlines(keepends=True)
    last = max(i for i, line in enumerate(lines) if json.loads(line)["op_code"] == CREATE_TRIAL)
    journal.write_bytes(b"".join(lines[:last + 1]))  # the last trial: created, nothing more
    cut = max(rows(db, "r"))
    (running,) = [t for t in studies(db)["r"].trials if t.number == cut]
    assert running.state == TrialState.RUNNING and not running.params
    assert not running.user_attrs and not running.intermediate_values

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

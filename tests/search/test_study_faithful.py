"""The Optuna study of a run, as plain Optuna and optuna-dashboard read it.

Each expectation is computed from the history with sqlite3 (an independent
reader) and compared with what ``optuna.load_study`` on the run's journal holds,
and with what a real optuna-dashboard server answers.
"""

from __future__ import annotations

import json
import math
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import pytest
from search_testing import query, spec_of

import autoarch

#: 5 widths x 2 activations; widths 64 and 96 break the constraint (invalid)
SPACE = """
model m(x: [64]) -> [10] {
  h = act(linear(x, choice(4, 8, 16, 64, 96)), choice(relu, tanh))
  return linear(h, 10)
}
train { data = digits  epochs = 2 }
search { strategy = random  trials = 5  objective = OBJ  constraint params <= 3000 }
"""


def run(tmp_path: Path, objective: str = "maximize(val_accuracy)", seed: int = 0,
        **kwargs) -> tuple[Path, Path]:
    spec = spec_of(tmp_path, SPACE.replace("OBJ", objective))
    db = tmp_path / "r.db"
    autoarch.search(spec, db=db, name="r", seed=seed, **kwargs)
    return db, tmp_path / "r.db.optuna.log"


def load(db: Path, journal: Path) -> optuna.Study:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    (row,) = query(db, "SELECT study_name FROM runs")
    return optuna.load_study(study_name=row["study_name"],
                             storage=JournalStorage(JournalFileBackend(str(journal))))


def history(db: Path) -> dict[int, dict]:
    rows = query(db, "SELECT t.*, c.memory FROM trials t LEFT JOIN candidates c "
                     "ON c.arch_hash = t.arch_hash ORDER BY t.number")
    return {r["number"]: dict(r) for r in rows}


def curve(db: Path, trial_id: int, metric: str = "val_accuracy") -> dict[int, float]:
    return {r["epoch"]: r[metric] for r in query(
        db, f"SELECT epoch, {metric} FROM epochs WHERE trial_id = ?", (trial_id,))}


def check_faithful(study: optuna.Study, db: Path, metric: str = "val_accuracy") -> None:
    rows = history(db)
    trials = {t.number: t for t in study.trials}
    assert set(trials) == set(rows)
    seen: list[float] = []
    assert any(r["state"] == "invalid" for r in rows.values())
    for n, r in sorted(rows.items()):
        t = trials[n]
        assert t.user_attrs["history_trial_id"] == r["id"]
        assert t.user_attrs["arch_hash"] == r["arch_hash"]
        assert t.user_attrs["params"] == r["params"] and t.user_attrs["flops"] == r["flops"]
        assert t.user_attrs["memory"] == r["memory"]
        if r["state"] == "invalid":
            # infeasible through Optuna's constraints, with finite values: the worst of
            # the trials completed before it (0 before any)
            assert t.state == optuna.trial.TrialState.COMPLETE
            assert max(t.constraints.values()) > 0
            assert t.system_attrs["constraints"] == [1.0]  # as optuna-dashboard reads it
            assert all(math.isfinite(v) for v in t.values)
            assert t.values == [min(seen) if seen else 0.0]
            assert t.user_attrs["reason"] == r["error"]
            assert t.intermediate_values == {}
        else:
            assert t.state == optuna.trial.TrialState.COMPLETE
            assert t.constraints == {}
            assert t.values == json.loads(r["objective"])
            seen.append(t.values[0])
            source = r["id"] if r["duplicate_of"] is None else rows[r["duplicate_of"]]["id"]
            # every epoch, though no pruner watches: the run's curve of the trial
            assert t.intermediate_values == curve(db, source, metric)
            assert len(t.intermediate_values) == 2
            if r["duplicate_of"] is not None:
                assert t.user_attrs["duplicate_of"] == r["duplicate_of"]


def test_plain_optuna_reads_metric_names_attributes_curves_and_infeasible_trials(tmp_path):
    db, journal = run(tmp_path, trials=6, seed=3)
    study = load(db, journal)
    assert study.metric_names == ["val_accuracy"]
    check_faithful(study, db)


def test_a_study_rebuilt_from_the_history_is_the_same(tmp_path):
    db, journal = run(tmp_path, trials=6, seed=3)
    before = load(db, journal)
    journal.unlink()  # lost: the resume rebuilds it from the history
    spec = autoarch.load(tmp_path / "t.spec")
    notes = []

    class Notes(autoarch.search.Reporter):
        def note(self, text: str) -> None:
            notes.append(text)

    autoarch.search(spec, db=db, name="r", seed=3, trials=6, reporter=Notes())
    assert any("rebuilt" in n for n in notes)
    after = load(db, journal)
    check_faithful(after, db)
    for a, b in zip(before.trials, after.trials, strict=True):
        assert (a.state, a.values, a.params, a.user_attrs, a.intermediate_values) == (
            b.state, b.values, b.params, b.user_attrs, b.intermediate_values)
        assert max(a.constraints.values(), default=0) == max(b.constraints.values(),
                                                             default=0)


def test_two_objectives_are_named_and_attributed(tmp_path):
    db, journal = run(tmp_path, "[maximize(val_accuracy), minimize(flops)]", trials=4)
    study = load(db, journal)
    assert study.metric_names == ["val_accuracy", "flops"]
    rows = history(db)
    for t in study.trials:
        r = rows[t.number]
        assert t.user_attrs["flops"] == r["flops"]
        if r["state"] == "complete":
            assert t.values == json.loads(r["objective"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_optuna_dashboard_serves_the_study_with_names_attributes_and_constraints(tmp_path):
    exe = shutil.which("optuna-dashboard") or str(Path(sys.executable).parent /
                                                  "optuna-dashboard")
    if not Path(exe).exists():
        pytest.skip("optuna-dashboard is not installed (pip install optuna-dashboard)")
    db, journal = run(tmp_path, trials=6, seed=3)
    port = _free_port()
    server = subprocess.Popen([exe, "--host", "127.0.0.1", "--port", str(port), "--quiet",
                               str(journal)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline, studies = time.monotonic() + 60, None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies",
                                            timeout=5) as f:
                    studies = json.load(f)["study_summaries"]
                break
            except OSError:
                time.sleep(0.3)
        assert studies is not None, server.stdout.read() if server.stdout else ""
        (summary,) = studies
        with urllib.request.urlopen(
                f"http://127.0.0.1:{port}/api/studies/{summary['study_id']}?after=0",
                timeout=30) as f:
            detail = json.load(f)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert detail["objective_names"] == ["val_accuracy"]
    rows = history(db)
    assert len(detail["trials"]) == len(rows)
    for t in detail["trials"]:
        r = rows[t["number"]]
        attrs = {a["key"]: a["value"] for a in t["user_attrs"]}
        assert attrs["params"] == str(r["params"]) and attrs["arch_hash"] == r["arch_hash"]
        assert bool(t["constraints"]) == (r["state"] == "invalid")
        if r["state"] == "complete":
            assert [v["value"] for v in t["intermediate_values"]] == list(
                curve(db, r["id"] if r["duplicate_of"] is None
                      else rows[r["duplicate_of"]]["id"]).values())

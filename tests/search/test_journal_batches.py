"""A search writes its trials to the Optuna journal in batches (search/study.py
``StudyFiles``): at most once every ``AUTOARCH_JOURNAL_EVERY_S`` seconds (1 by
default), and before a trial trains when the one before it took that long.

Each check looks at the journal file, read with plain Optuna, at the moment a trial
starts training (the trainer wrapped, as benchmarks/bench_search.py does).
"""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState
from search_testing import SPEC, query, run_cli, spec_of, write_spec
from test_overhead_journal import assert_agrees, studies

import autoarch
import autoarch.search.trainer as trainer_mod


def journal_trials(db: Path) -> dict[int, optuna.trial.FrozenTrial]:
    """The run's trials in the journal, read with plain Optuna (none before it exists)."""
    path = db.with_name(db.name + ".optuna.log")
    if not path.exists() or path.stat().st_size == 0:
        return {}
    storage = JournalStorage(JournalFileBackend(str(path)))
    (name,) = optuna.get_all_study_names(storage)
    return {t.number: t for t in optuna.load_study(study_name=name, storage=storage).trials}


def search_watching(tmp_path: Path, monkeypatch, every: str, epochs: int, trials: int):
    """A search of ``trials`` trials; for each trial, what the journal held when it
    started training: ``{number: {number: state}}``."""
    monkeypatch.setenv("AUTOARCH_JOURNAL_EVERY_S", every)
    spec = spec_of(tmp_path, SPEC.replace("EPOCHS", str(epochs)))
    db = tmp_path / "runs.db"
    seen: dict[int, dict[int, TrialState]] = {}
    real = trainer_mod.train

    def watching(*args, **kwargs):
        started = len(seen)
        seen[started] = {n: t.state for n, t in journal_trials(db).items()}
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer_mod, "train", watching)
    result = autoarch.search(spec, strategy="grid", trials=trials, db=db, name="r", seed=0)
    return db, result, seen


def test_short_trials_wait_and_go_to_the_journal_together_at_the_end(tmp_path, monkeypatch):
    db, result, seen = search_watching(tmp_path, monkeypatch, "1000", epochs=1, trials=6)
    assert len(seen) == 6  # (a grid: six distinct candidates, each trained)
    # the first record of the run writes at once; after it, nothing until the run ends
    assert all(len(held) <= 1 for held in seen.values()), seen
    assert_agrees(studies(db)["r"], db, "r")


def test_each_trial_at_once_with_zero(tmp_path, monkeypatch):
    db, result, seen = search_watching(tmp_path, monkeypatch, "0", epochs=1, trials=6)
    for started, held in seen.items():  # every trial before it, complete
        assert held == {n: TrialState.COMPLETE for n in range(started)}, (started, held)
    assert_agrees(studies(db)["r"], db, "r")


def test_after_a_trial_as_long_as_a_batch_the_journal_waits_for_no_training(tmp_path,
                                                                           monkeypatch):
    """A trial that took ``every`` seconds or more: the trials due are written before
    the next one trains (else they would wait for its end, however long)."""
    every = 0.3
    db, result, seen = search_watching(tmp_path, monkeypatch, str(every), epochs=40,
                                       trials=4)
    durations = {r["number"]: r["duration_s"] for r in query(
        db, "SELECT number, duration_s FROM trials")}
    checked = 0
    for started, held in seen.items():
        if started and durations[started - 1] >= every:
            assert held.get(started - 1) == TrialState.COMPLETE, (started, held, durations)
            checked += 1
    assert checked, f"no trial took {every} s: {durations}"
    assert_agrees(studies(db)["r"], db, "r")


@pytest.mark.parametrize("value", ["soon", "-1", "nan", "inf"])
def test_a_bad_setting_is_one_line_naming_it(tmp_path, monkeypatch, value):
    spec = write_spec(tmp_path)
    done = run_cli("search", spec, "--db", tmp_path / "runs.db", "--trials", "1",
                   cwd=tmp_path, extra_env={"AUTOARCH_JOURNAL_EVERY_S": value})
    assert done.returncode != 0
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert any("AUTOARCH_JOURNAL_EVERY_S must be a number of seconds >= 0" in ln
               and repr(value) in ln.replace('"', "'") for ln in lines), done.stderr
    assert list(tmp_path.iterdir()) == [spec]  # nothing written
    monkeypatch.setenv("AUTOARCH_JOURNAL_EVERY_S", value)
    with pytest.raises(autoarch.CommandError, match="AUTOARCH_JOURNAL_EVERY_S"):
        autoarch.search(autoarch.load(spec), trials=1, db=tmp_path / "api.db")
    assert list(tmp_path.iterdir()) == [spec]

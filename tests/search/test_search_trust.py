"""A history you can trust: resumes continue, settings and data are part of a trial,
a damaged or lost Optuna journal is rebuilt from the history, shapes are checked
before any trial, and every shipped example can be searched.

Real SQLite files, real Optuna journals (damaged with real file operations), real
training. Expectations come from independent references: an uninterrupted run of
the same seed, the rows of the database read with sqlite3, Optuna's own study
loaded from the journal, the files on disk.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState
from search_testing import query, spec_of

import autoarch
from autoarch.search.options import SearchError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.spec"))

# 2 x 3 x 4 = 24 candidates, all distinct architectures
SMALL = """
model small(x: [64]) -> [10] {
  h = linear(x, choice(8, 12, 16))
  h = act(h, choice(relu, gelu, tanh, sigmoid))
  h = linear(h, choice(10, 20))
  return linear(h, 10)
}
train { data = digits  epochs = 1 }
search { strategy = random  trials = 3 }
"""


def trials(db: Path) -> list[sqlite3.Row]:
    return query(db, "SELECT * FROM trials ORDER BY number")


def ran(db: Path) -> list[sqlite3.Row]:
    """Trials that ran to their end, read straight from the database."""
    return [t for t in trials(db) if t["state"] in ("complete", "pruned")
            or (t["state"] == "failed" and not (t["error"] or "").startswith("interrupted"))]


def study_of(db: Path) -> optuna.Study:
    run = query(db, "SELECT * FROM runs")[-1]
    storage = JournalStorage(JournalFileBackend(str(db.parent / run["study_storage"])))
    return optuna.load_study(study_name=run["study_name"], storage=storage)


def assert_study_agrees(db: Path) -> None:
    """Optuna's study (read with Optuna alone) holds every recorded trial, same result."""
    study = study_of(db)
    by_number = {t.number: t for t in study.trials}
    for t in trials(db):
        st = by_number[t["number"]]
        if t["state"] == "complete":
            assert st.state == TrialState.COMPLETE and st.values == json.loads(t["objective"])
        elif t["state"] == "pruned":
            assert st.state == TrialState.PRUNED
        elif t["state"] == "failed":
            assert st.state == TrialState.FAIL
        elif t["state"] == "invalid":
            assert st.state == TrialState.COMPLETE and st.system_attrs["constraints"][0] > 0
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]


# -- 1. a resumed sampler continues its sequence


@pytest.mark.parametrize("strategy", ["random", "tpe", "nsga2"])
def test_a_resumed_run_continues_the_sequence_of_an_uninterrupted_one(tmp_path, strategy):
    spec = spec_of(tmp_path, SMALL)
    whole = tmp_path / "whole.db"
    autoarch.search(spec, strategy=strategy, trials=6, db=whole, name="r", seed=3)
    parts = tmp_path / "parts.db"
    autoarch.search(spec, strategy=strategy, trials=3, db=parts, name="r", seed=3)
    autoarch.search(spec, strategy=strategy, trials=6, db=parts, name="r", seed=3)
    assert [t["choices"] for t in trials(parts)] == [t["choices"] for t in trials(whole)]
    # the replay the old samplers did: trials 3-5 repeating trials 0-2
    first, resumed = trials(parts)[:3], trials(parts)[3:]
    assert [t["choices"] for t in resumed] != [t["choices"] for t in first]


# -- 2. every override is part of the trial's training settings


def test_epochs_override_is_recorded_compared_and_kept_on_resume(tmp_path):
    spec = spec_of(tmp_path, SMALL.replace("epochs = 1", "epochs = 10"))
    db = tmp_path / "runs.db"
    autoarch.search(spec, trials=2, epochs=2, db=db, name="r", seed=1)
    for t in ran(db):
        assert json.loads(t["train_config"])["epochs"] == 2
        n = query(db, "SELECT count(*) AS n FROM epochs WHERE trial_id = ?", (t["id"],))[0]["n"]
        assert n == 2  # what was recorded is what was trained
    before = (db.read_bytes(), trials(db))
    with pytest.raises(SearchError, match=r"--epochs 2 then, --epochs 3 now"):
        autoarch.search(spec, trials=4, epochs=3, db=db, name="r", seed=1)
    with pytest.raises(SearchError, match=r"--epochs 2 then, the spec's epochs now"):
        autoarch.search(spec, trials=4, db=db, name="r", seed=1)
    with pytest.raises(SearchError, match=r"seed 1 then, seed 2 now"):
        autoarch.search(spec, trials=4, epochs=2, db=db, name="r", seed=2)
    assert trials(db) == before[1]  # a refused resume changes nothing
    assert query(db, "SELECT status FROM runs")[0][0] == "finished"
    done = autoarch.search(spec, trials=4, epochs=2, db=db, name="r", seed=1)
    assert done.counted == 4


def test_the_same_candidate_with_other_epochs_is_not_a_duplicate(tmp_path):
    from autoarch.search.history import History

    spec = spec_of(tmp_path, SMALL)
    db = tmp_path / "runs.db"
    autoarch.search(spec, strategy="grid", trials=1, epochs=1, db=db, name="a")
    first = trials(db)[0]
    h = History(db)
    run_id = query(db, "SELECT id FROM runs")[0]["id"]
    other = json.loads(first["train_config"]) | {"epochs": 3}
    text = json.dumps(other, sort_keys=True)
    assert h.evaluated(run_id, first["arch_hash"], first["train_config"]) is not None
    assert h.evaluated(run_id, first["arch_hash"], text) is None
    h.close()


# -- 3. changed data is noticed


def _csv(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(60, 4))
    y = (x[:, 0] > 0).astype(int)
    lines = ["a,b,c,d,y"] + [",".join(f"{v:.6f}" for v in r) + f",{c}" for r, c in zip(x, y,
                                                                                        strict=True)]
    path.write_text("\n".join(lines) + "\n")


CSV_SPEC = """
model m(x: [4]) -> [2] {
  return linear(act(linear(x, choice(4, 8, 16)), relu), 2)
}
train { data = csv("d.csv", target = "y")  epochs = 1 }
"""


def test_a_resume_on_changed_data_is_refused(tmp_path):
    _csv(tmp_path / "d.csv", 0)
    spec = spec_of(tmp_path, CSV_SPEC)
    db = tmp_path / "runs.db"
    autoarch.search(spec, trials=1, db=db, name="r")
    fp = json.loads(trials(db)[0]["train_config"])["data_fingerprint"]
    assert fp
    _csv(tmp_path / "d.csv", 1)  # same shape, other numbers
    with pytest.raises(SearchError, match="changed since run 'r' started"):
        autoarch.search(spec, trials=2, db=db, name="r")
    _csv(tmp_path / "d.csv", 0)  # restored: the run goes on
    assert autoarch.search(spec, trials=2, db=db, name="r").counted == 2


# -- 5. shapes are checked before any trial; every example can be searched


def test_a_model_that_does_not_fit_the_data_fails_before_any_trial(tmp_path):
    spec = spec_of(tmp_path, """
    model img(x: [3, 8, 8]) -> [10] {
      return linear(flatten(x), 10)
    }
    train { data = digits }
    """)
    db = tmp_path / "runs.db"
    with pytest.raises(SearchError) as err:
        autoarch.search(spec, trials=1, db=db)
    e = err.value
    assert (e.line, e.column) == (1, 15)  # the declared input shape
    assert "[3, 8, 8]" in str(e) and "[64]" in str(e) and "^" in e.format()
    assert not db.exists()  # nothing written, no empty database left behind


def test_data_override_replaces_the_spec_data_for_every_trial(tmp_path):
    spec = spec_of(tmp_path, """
    model seq(x: [6, 5]) -> [3] {
      return linear(flatten(x), choice(3))
    }
    train { data = digits  epochs = 1 }
    """)
    db = tmp_path / "runs.db"
    result = autoarch.search(spec, trials=1, db=db,
                             data="synthetic(shape = [6, 5], classes = 3)")
    assert result.counted == 1 and trials(db)[0]["state"] == "complete"
    cfg = json.loads(trials(db)[0]["train_config"])
    assert cfg["data"].startswith("synthetic(")
    with pytest.raises(autoarch.CommandError, match="--data"):
        autoarch.search(spec, trials=1, db=tmp_path / "x.db", data="nonsense(")


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_searches_for_one_trial(tmp_path, path):
    spec = autoarch.load(path)
    db = tmp_path / "runs.db"
    result = autoarch.search(spec, trials=1, epochs=1, db=db, seed=0)
    done = ran(db)
    assert result.counted == 1 and len(done) == 1
    assert done[0]["state"] == "complete", done[0]["error"]


# -- 7 and 11. the journal: lost, emptied, cut, renamed, disagreeing


def _run_then(tmp_path: Path, damage, trials_first: int = 3, strategy: str = "random",
              epochs: int = 1):
    spec = spec_of(tmp_path, SMALL.replace("epochs = 1", f"epochs = {epochs}"))
    db = tmp_path / "runs.db"
    autoarch.search(spec, strategy=strategy, trials=trials_first, db=db, name="r", seed=2)
    journal = tmp_path / "runs.db.optuna.log"
    assert journal.exists()
    moved = damage(db, journal)
    db = moved if isinstance(moved, Path) else db
    result = autoarch.search(spec, strategy=strategy, trials=5, db=db, name="r", seed=2)
    return db, result


@pytest.mark.parametrize("damage", [
    lambda db, j: j.unlink(),                                         # lost
    lambda db, j: j.write_bytes(b""),                                 # emptied
    lambda db, j: j.write_bytes(j.read_bytes()[:-7]),                 # cut mid-line
    lambda db, j: j.write_bytes(b"\x00\xff garbage\n" * 3),           # not a journal
    # a power cut (the journal is not fsynced): the last lines lost, or zeros in their place
    lambda db, j: j.write_bytes(b"".join(j.read_bytes().splitlines(keepends=True)[:-9])),
    lambda db, j: j.write_bytes(j.read_bytes()[:-300] + b"\x00" * 300),
], ids=["lost", "emptied", "cut", "garbage", "tail-lost", "tail-zeroed"])
def test_a_damaged_journal_is_rebuilt_from_the_history(tmp_path, damage):
    db, result = _run_then(tmp_path, damage)
    assert result.counted == 5 and len(ran(db)) == 5
    numbers = [t["number"] for t in trials(db)]
    assert numbers == sorted(set(numbers))
    assert_study_agrees(db)
    # every candidate was evaluated once: the rebuilt study did not replay the first three
    arch = [t["arch_hash"] for t in ran(db) if t["duplicate_of"] is None]
    assert len(arch) == len(set(arch))


def test_a_database_renamed_with_its_journal_resumes(tmp_path):
    def rename(db: Path, journal: Path) -> Path:
        new = tmp_path / "moved.db"
        db.rename(new)
        journal.rename(tmp_path / "moved.db.optuna.log")
        return new

    db, result = _run_then(tmp_path, rename)
    assert result.counted == 5
    assert not (tmp_path / "runs.db.optuna.log").exists()  # no stray journal under the old name
    assert query(db, "SELECT study_storage FROM runs")[0][0] == "moved.db.optuna.log"
    assert_study_agrees(db)


def test_a_kill_between_the_history_and_the_journal_is_reconciled(tmp_path, monkeypatch):
    """The history has the last trial complete; the journal stops before its tell (two
    epochs: the trial went to the journal, running, when its first ended)."""

    def drop_last_tell(db: Path, journal: Path) -> None:
        lines = journal.read_bytes().splitlines(keepends=True)
        # the last journal operation is the last trial's result (op 6: set state/values)
        last = max(i for i, ln in enumerate(lines) if json.loads(ln)["op_code"] == 6)
        journal.write_bytes(b"".join(lines[:last] + lines[last + 1:]))
        study = study_of(db)
        assert study.trials[-1].state == TrialState.RUNNING  # the disagreement, as a kill left it

    monkeypatch.setenv("AUTOARCH_JOURNAL_EVERY_S", "0")  # each trial's lines at once
    db, result = _run_then(tmp_path, drop_last_tell, epochs=2)
    assert result.counted == 5
    assert_study_agrees(db)


def test_a_deleted_database_with_its_journal_kept_starts_a_new_run(tmp_path):
    spec = spec_of(tmp_path, SMALL)
    db = tmp_path / "runs.db"
    autoarch.search(spec, strategy="grid", trials=24, db=db, name="r")  # the whole grid
    db.unlink()
    result = autoarch.search(spec, strategy="grid", trials=2, db=db, name="r")
    assert result.stopped is None and result.counted == 2  # not "grid exhausted"
    assert len(ran(db)) == 2


# -- 15, 16, 18


def test_settings_beyond_their_limits_are_one_line_errors(tmp_path):
    spec = spec_of(tmp_path, SMALL)
    db = tmp_path / "runs.db"
    for kwargs in ({"trials": 10**30}, {"epochs": 10**30}, {"seed": -1}, {"timeout": 0},
                   {"strategy": "nope"}):
        with pytest.raises(autoarch.SpecError) as err:
            autoarch.search(spec, db=db, **kwargs)
        assert "\n" not in err.value.format() or err.value.span is None
    assert not db.exists()


def test_a_search_that_fails_leaves_no_database(tmp_path):
    spec = spec_of(tmp_path, SMALL.replace("trials = 3 }", "trials = 3\n  constraint params <= 1\n}"))
    db = tmp_path / "runs.db"
    with pytest.raises(SearchError, match="leave nothing"):
        autoarch.search(spec, db=db)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.spec"]


def test_result_best_gives_parsed_values(tmp_path):
    spec = spec_of(tmp_path, SMALL)
    result = autoarch.search(spec, trials=2, db=tmp_path / "runs.db")
    best = result.best[0]
    assert isinstance(best["choices"], dict) and isinstance(best["metrics"], dict)
    assert isinstance(best["objective"], list)
    assert best["objective"] == [best["metrics"]["val_accuracy"]]


def test_resuming_with_fewer_trials_than_done_runs_nothing_and_says_so(tmp_path):
    spec = spec_of(tmp_path, SMALL)
    db = tmp_path / "runs.db"
    autoarch.search(spec, trials=3, db=db, name="r")
    notes: list[str] = []

    class Notes(autoarch.search.Reporter):
        def start(self, run, requested, counted, resumed):
            notes.append(f"{counted}/{requested}")

        def note(self, text):
            notes.append(text)

    result = autoarch.search(spec, trials=1, db=db, name="r", reporter=Notes())
    assert result.counted == 3 and len(trials(db)) == 3
    assert "3/3" in notes and any("asks for no more" in n for n in notes)

"""The search end to end: real Optuna studies, real SQLite files, real training on digits.

Expectations come from the spec (its constraints, its space's size), from the
models themselves (parameter counts by ``numel``, accuracy re-measured on the
data), and from independent computations over the history rows (Pareto
dominance, best value) — not from the engine's own summaries.
"""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

import pytest
import torch
from search_testing import query, spec_of

import autoarch
from autoarch.search.history import History
from autoarch.search.options import SearchError

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "examples" / "quickstart.spec"

TINY = """
model tiny(x: [64]) -> [10] {
  h = linear(x, choice(8, 16))
  h = act(h, choice(relu, gelu))
  return linear(h, 10)
}
train { data = digits  epochs = 1 }
search { strategy = random  trials = 3 }
"""


def counted(db: Path) -> int:
    return query(db, "SELECT count(*) AS n FROM trials WHERE state IN ('complete', 'pruned') "
                     "OR (state = 'failed' AND error NOT LIKE 'interrupted%')")[0]["n"]


# -- every strategy, end to end on the quickstart


@pytest.mark.parametrize("strategy,trials", [
    ("random", 3), ("grid", 3), ("tpe", 12), ("mcts", 4), ("evolution", 4), ("nsga2", 4)])
def test_every_strategy_runs_the_quickstart(tmp_path, strategy, trials):
    spec = autoarch.load(QUICKSTART)
    db = tmp_path / "runs.db"
    result = autoarch.search(spec, strategy=strategy, trials=trials, epochs=1, db=db, seed=1)
    assert result.counted == trials
    trs = query(db, "SELECT * FROM trials ORDER BY number")
    finished = [t for t in trs if t["state"] != "invalid"]
    assert len(finished) == trials and all(t["state"] == "complete" for t in finished)
    for t in finished:
        metrics = json.loads(t["metrics"])
        assert 0.0 <= metrics["val_accuracy"] <= 1.0
        assert json.loads(t["objective"]) == [metrics["val_accuracy"]]
        # one epoch recorded per trained (non-duplicate) trial
        n_epochs = query(db, "SELECT count(*) AS n FROM epochs WHERE trial_id = ?", (t["id"],))
        assert n_epochs[0]["n"] == (0 if t["duplicate_of"] is not None else 1)
    run = query(db, "SELECT * FROM runs")[0]
    assert run["strategy"] == strategy and run["status"] == "finished"
    # the best is the maximum over the recorded trials
    best = max(json.loads(t["objective"])[0] for t in finished)
    assert result.best[0]["objective"][0] == best  # parsed values
    if strategy == "grid":  # the grid's order, read off the spec by hand: the first
        # decision met varies slowest, each takes its first value first (docs/space.md)
        base = {"digits.width": 32, "digits.i": 1}
        expected = [{**base, "digits.i[0].h": "mlp", "digits.i[0].h.mlp.expand": 2},
                    {**base, "digits.i[0].h": "mlp", "digits.i[0].h.mlp.expand": 4},
                    {**base, "digits.i[0].h": "kan", "digits.i[0].h.kan.basis": "rational"}]
        assert [json.loads(t["choices"]) for t in finished] == expected[:trials]


def test_nsga2_pareto_front_of_two_objectives(tmp_path):
    text = QUICKSTART.read_text().replace(
        "search { strategy = random  trials = 10 }",
        "search { strategy = nsga2  trials = 6  objective = [maximize(val_accuracy), "
        "minimize(params)] }")
    spec = spec_of(tmp_path, text, "q.spec")
    db = tmp_path / "runs.db"
    result = autoarch.search(spec, epochs=1, db=db, seed=0)
    done = [t for t in query(db, "SELECT * FROM trials") if t["state"] == "complete"
            and t["duplicate_of"] is None]
    pts = {t["number"]: (json.loads(t["metrics"])["val_accuracy"], t["params"]) for t in done}

    def dominated(n):
        a, p = pts[n]
        return any((b >= a and q <= p) and (b > a or q < p) for m, (b, q) in pts.items()
                   if m != n)

    assert sorted(r["number"] for r in result.best) == sorted(n for n in pts if not dominated(n))


# -- checks before training


def test_constraints_never_let_an_over_budget_candidate_train(tmp_path):
    # quickstart's candidates range from about 3k to 200k+ parameters
    text = QUICKSTART.read_text().replace(
        "search { strategy = random  trials = 10 }",
        "search { strategy = random  trials = 5\n  constraint params <= 20k }")
    spec = spec_of(tmp_path, text, "c.spec")
    db = tmp_path / "runs.db"
    autoarch.search(spec, epochs=1, db=db, seed=3)
    trs = query(db, "SELECT * FROM trials")
    invalid = [t for t in trs if t["state"] == "invalid"]
    trained = [t for t in trs if t["state"] != "invalid"]
    assert len(trained) == 5 and invalid, "seed 3 proposes over-budget candidates"
    for t in trs:
        model = autoarch.compile(spec, json.loads(t["choices"]))
        params = sum(p.numel() for p in model.parameters())
        assert (params <= 20_000) == (t["state"] != "invalid")
        if t["state"] == "invalid":
            assert "params <= 20k" in t["error"]
            assert query(db, "SELECT count(*) AS n FROM epochs WHERE trial_id = ?",
                         (t["id"],))[0]["n"] == 0
            assert t["metrics"] is None


def test_constraints_that_leave_nothing_are_a_clear_error(tmp_path):
    text = TINY.replace("trials = 3 }", "trials = 3\n  constraint params <= 10 }")
    spec = spec_of(tmp_path, text)
    with pytest.raises(SearchError, match="leave nothing"):
        autoarch.search(spec, db=tmp_path / "runs.db")


def test_invalid_candidates_are_recorded_with_their_reason(tmp_path):
    text = """
    model r(x: [64]) -> [10] {
      let w = choice(8, 16, 32, 64)
      require w <= 16, "narrow only"
      return linear(act(linear(x, w), relu), 10)
    }
    train { data = digits  epochs = 1 }
    search { strategy = grid  trials = 2 }
    """
    spec = spec_of(tmp_path, text)
    db = tmp_path / "runs.db"
    result = autoarch.search(spec, db=db)
    trs = query(db, "SELECT * FROM trials ORDER BY number")
    assert [t["state"] for t in trs].count("complete") == 2
    assert result.counted == 2


# -- failures and duplicates


def test_divergence_is_a_failed_trial_and_the_search_goes_on(tmp_path):
    text = TINY.replace("epochs = 1 }", "epochs = 1  optimizer = sgd(lr = 1e12) }")
    spec = spec_of(tmp_path, text)
    db = tmp_path / "runs.db"
    result = autoarch.search(spec, db=db, trials=2, strategy="grid")
    trs = query(db, "SELECT * FROM trials")
    assert result.counted == 2 and [t["state"] for t in trs] == ["failed", "failed"]
    assert all(("nan" in t["error"] or "inf" in t["error"]) for t in trs)
    assert result.best == []


def test_a_candidate_seen_before_is_not_retrained(tmp_path):
    spec = spec_of(tmp_path, TINY)  # 4 candidates
    db = tmp_path / "runs.db"
    autoarch.search(spec, db=db, trials=12, seed=0)
    trs = query(db, "SELECT * FROM trials ORDER BY number")
    assert len(trs) == 12
    originals = [t for t in trs if t["duplicate_of"] is None]
    assert len({(t["arch_hash"]) for t in originals}) == len(originals) <= 4
    by_number = {t["number"]: t for t in trs}
    for t in trs:
        if t["duplicate_of"] is not None:
            first = by_number[t["duplicate_of"]]
            assert first["arch_hash"] == t["arch_hash"] and first["duplicate_of"] is None
            assert t["objective"] == first["objective"]
            assert query(db, "SELECT count(*) AS n FROM epochs WHERE trial_id = ?",
                         (t["id"],))[0]["n"] == 0
    assert len(originals) < 12


def test_isomorphic_candidates_share_one_architecture_row(tmp_path):
    # `a + b` and `b + a` are different choices but the same graph
    text = """
    model sym(x: [64]) -> [10] {
      a = linear(x, 16)
      b = linear(x, 16)
      h = choice(a + b, b + a)
      return linear(h, 10)
    }
    train { data = digits  epochs = 1 }
    search { strategy = grid  trials = 2 }
    """
    spec = spec_of(tmp_path, text)
    db = tmp_path / "runs.db"
    autoarch.search(spec, db=db)
    trs = query(db, "SELECT * FROM trials ORDER BY number")
    assert trs[0]["arch_hash"] == trs[1]["arch_hash"] and trs[1]["duplicate_of"] == 0
    assert query(db, "SELECT count(*) AS n FROM candidates")[0]["n"] == 1


# -- history


def test_schema_foreign_keys_and_wal(tmp_path):
    db = tmp_path / "runs.db"
    autoarch.search(spec_of(tmp_path, TINY), db=db, trials=1)
    tables = {r["name"] for r in query(db, "SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"runs", "candidates", "trials", "epochs", "weights"} <= tables
    fks = {(r["table"], r["from"]) for r in query(db, "PRAGMA foreign_key_list(trials)")}
    assert fks == {("runs", "run_id"), ("candidates", "arch_hash")}
    assert {r["table"] for r in query(db, "PRAGMA foreign_key_list(epochs)")} == {"trials"}
    assert query(db, "PRAGMA journal_mode")[0][0] == "wal"
    h = History(db)  # History connections enforce foreign keys
    with pytest.raises(sqlite3.IntegrityError):
        h.db.execute("INSERT INTO trials (run_id, number, state) VALUES (999, 0, 'complete')")
    with pytest.raises(sqlite3.IntegrityError):
        h.db.execute("INSERT INTO trials (run_id, number, state) VALUES (1, 77, 'bogus')")
    with pytest.raises(sqlite3.IntegrityError):  # one number per run
        h.db.execute("INSERT INTO trials (run_id, number, state) VALUES (1, 0, 'complete')")
    h.close()
    run = query(db, "SELECT * FROM runs")[0]
    assert (tmp_path / run["study_storage"]).exists()  # the Optuna study, beside the db
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(tmp_path / run["study_storage"])))
    study = optuna.load_study(study_name=run["study_name"], storage=storage)
    assert len(study.trials) == 1


def test_best_weights_reload_and_reproduce_the_recorded_accuracy(tmp_path):
    spec = spec_of(tmp_path, TINY)
    db = tmp_path / "runs.db"
    result = autoarch.search(spec, db=db, trials=3, strategy="grid")
    best = result.best[0]
    h = History(db)
    blob = h.weights(best["id"])
    assert h.weights(result.best[0]["id"]) is not None
    assert list(h.weighted_trials(result.run_id)) == [best["id"]]  # only the best is kept
    h.close()
    path = tmp_path / "best.pt"
    path.write_bytes(blob)
    assert torch.load(path, weights_only=True)["format"] == "autoarch.model"
    model = autoarch.load_model(path).eval()
    from autoarch.search.data import load_data

    data = load_data(autoarch.compiler.values.Symbol("digits"))
    with torch.no_grad():
        acc = (model(data.x_val).argmax(-1) == data.y_val).float().mean().item()
    assert acc == pytest.approx(best["metrics"]["val_accuracy"], abs=1e-6)


def test_a_run_resumes_by_name_and_tops_up_to_the_new_budget(tmp_path):
    spec = spec_of(tmp_path, TINY)
    db = tmp_path / "runs.db"
    first = autoarch.search(spec, db=db, name="r", trials=2, seed=5)
    again = autoarch.search(spec, db=db, name="r", trials=4, seed=5)
    assert first.run == again.run == "r" and again.counted == 4
    assert len(query(db, "SELECT * FROM runs")) == 1
    numbers = [t["number"] for t in query(db, "SELECT number FROM trials ORDER BY number")]
    assert numbers == list(range(len(numbers)))
    other = spec_of(tmp_path, TINY.replace("choice(8, 16)", "choice(8, 24)"), "u.spec")
    with pytest.raises(SearchError, match="different spec"):
        autoarch.search(other, db=db, name="r")


@pytest.mark.parametrize("pruner", ["median", "asha"])
def test_pruned_trials(tmp_path, pruner):
    # grid order: three good learning rates first, then a hopeless one
    text = """
    let lr = choice(0.01, 0.011, 0.012, 0.0000001)
    model p(x: [64]) -> [10] {
      return linear(act(linear(x, 32), relu), 10)
    }
    train { data = digits  epochs = 3  optimizer = adam(lr = lr) }
    search { strategy = grid  trials = 4 }
    """
    spec = spec_of(tmp_path, text)
    db = tmp_path / "runs.db"
    result = autoarch.search(spec, db=db, pruner=pruner)
    trs = query(db, "SELECT * FROM trials ORDER BY number")
    if pruner == "median":  # the median of three good trials prunes only the bad one
        assert [t["state"] for t in trs] == ["complete"] * 3 + ["pruned"]
    assert trs[0]["state"] == "complete" and trs[3]["state"] == "pruned"
    assert json.loads(trs[3]["metrics"])["epochs"] < 3
    assert result.counted == 4
    n = query(db, "SELECT count(*) AS n FROM epochs WHERE trial_id = ?", (trs[3]["id"],))[0]["n"]
    assert 1 <= n < 3


def test_accuracy_objective_on_a_regression_task_is_an_error(tmp_path):
    text = """
    model f(x: [2]) -> [1] { return linear(act(linear(x, 8), relu), 1) }
    train { data = kan_fit  epochs = 1 }
    """
    with pytest.raises(SearchError, match="classification"):
        autoarch.search(spec_of(tmp_path, text), db=tmp_path / "runs.db", trials=1)


def test_regression_search_minimises_val_loss(tmp_path):
    text = """
    model f(x: [2]) -> [1] {
      return choice(linear(act(linear(x, 16), gelu), 1), kan(x, 1, basis = rbf))
    }
    train { data = kan_fit  epochs = 2 }
    search { strategy = grid  trials = 2  objective = minimize(val_loss) }
    """
    spec = spec_of(tmp_path, text)
    result = autoarch.search(spec, db=tmp_path / "runs.db")
    trs = query(tmp_path / "runs.db", "SELECT * FROM trials")
    losses = [json.loads(t["metrics"])["val_loss"] for t in trs]
    assert result.best[0]["objective"] == [min(losses)]
    assert all(math.isfinite(v) for v in losses)


def test_grid_over_a_continuous_decision_is_a_clear_error(tmp_path):
    text = TINY.replace("epochs = 1 }", "epochs = 1  optimizer = adam(lr = float(1e-4, 1e-2)) }")
    with pytest.raises(autoarch.SpecError, match="continuous"):
        autoarch.search(spec_of(tmp_path, text), strategy="grid", db=tmp_path / "runs.db")


def test_unknown_strategy_from_the_api_is_a_spec_error(tmp_path):
    with pytest.raises(autoarch.SpecError, match="unknown strategy 'mtcs'"):
        autoarch.search(spec_of(tmp_path, TINY), strategy="mtcs", db=tmp_path / "runs.db")

"""`autoarch top` and `autoarch curves`, and the SQL views, on real search histories.

Each ranking and curve is recomputed from the history with sqlite3 alone.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from search_testing import query, run_cli, spec_of

import autoarch

SPACE = """
model m(x: [64]) -> [10] {
  h = act(linear(x, choice(4, 8, 16, 24, 32)), choice(relu, tanh))
  return linear(h, 10)
}
train { data = digits  epochs = 2 }
search { strategy = random  trials = 6  objective = OBJ }
"""


@pytest.fixture(scope="module")
def histories(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("top")
    one = spec_of(tmp, SPACE.replace("OBJ", "maximize(val_accuracy)"), "one.spec")
    two = spec_of(tmp, SPACE.replace("OBJ", "[maximize(val_accuracy), minimize(params)]"),
                  "two.spec")
    autoarch.search(one, db=tmp / "one.db", name="a", seed=1)
    autoarch.search(two, db=tmp / "two.db", name="b", seed=2)
    return {"one": tmp / "one.db", "two": tmp / "two.db", "tmp": tmp}


def cli_json(*args, cwd: Path) -> dict:
    proc = run_cli(*args, "--json", cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_top_ranks_by_the_objective_best_first(histories):
    db = histories["one"]
    got = cli_json("top", db, "-k", "3", cwd=histories["tmp"])
    rows = query(db, "SELECT number, objective FROM trials WHERE state = 'complete' AND "
                     "duplicate_of IS NULL")
    want = sorted(rows, key=lambda r: (-json.loads(r["objective"])[0], r["number"]))[:3]
    assert [t["number"] for t in got["trials"]] == [r["number"] for r in want]
    assert [t["rank"] for t in got["trials"]] == [0, 1, 2]
    text = run_cli("top", db, cwd=histories["tmp"])
    assert text.returncode == 0 and f"the {len(rows)} best of 6 trials" in text.stdout


def test_top_puts_the_pareto_front_first(histories):
    db = histories["two"]
    got = cli_json("top", db, "-k", "100", cwd=histories["tmp"])
    rows = {r["number"]: json.loads(r["objective"]) for r in query(
        db, "SELECT number, objective FROM trials WHERE state = 'complete' AND "
            "duplicate_of IS NULL")}

    def dominated(n: int, among: set[int]) -> bool:  # maximize accuracy, minimize params
        a = rows[n]
        return any(rows[m][0] >= a[0] and rows[m][1] <= a[1] and rows[m] != a
                   for m in among if m != n)

    left, fronts = set(rows), []
    while left:
        front = {n for n in left if not dominated(n, left)}
        fronts.append(front)
        left -= front
    ranks = {n: i for i, f in enumerate(fronts) for n in f}
    assert sorted(t["number"] for t in got["trials"]) == sorted(rows)
    assert [t["rank"] for t in got["trials"]] == sorted(t["rank"] for t in got["trials"])
    for t in got["trials"]:
        assert t["rank"] == ranks[t["number"]]


def test_curves_shows_a_trials_epochs_and_a_duplicates_original(histories):
    db = histories["one"]
    rows = query(db, "SELECT * FROM trials WHERE state = 'complete' ORDER BY number")
    for r in rows:
        got = cli_json("curves", db, "--trial", str(r["number"]), cwd=histories["tmp"])
        source = r["duplicate_of"] if r["duplicate_of"] is not None else r["number"]
        want = query(db, "SELECT e.* FROM epochs e JOIN trials t ON t.id = e.trial_id "
                         "WHERE t.number = ? ORDER BY e.epoch", (source,))
        assert got["epochs_of"] == source
        assert [e["val_loss"] for e in got["epochs"]] == [w["val_loss"] for w in want]
        assert [e["epoch"] for e in got["epochs"]] == [1, 2]


@pytest.mark.parametrize("args,words", [
    (("curves", "DB", "--trial", "99"), "has no trial #99"),
    (("top", "DB", "--run", "nope"), "nope"),
    (("curves", "missing.db", "--trial", "0"), "missing.db"),
])
def test_wrong_trial_run_or_file_is_one_line(histories, args, words):
    args = [str(histories["one"]) if a == "DB" else a for a in args]
    proc = run_cli(*args, cwd=histories["tmp"])
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and words in lines[0], proc.stderr


def test_views_give_metrics_as_columns_by_run_and_number(histories):
    db = histories["one"]
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        for t in conn.execute("SELECT * FROM trials"):
            v = conn.execute("SELECT * FROM trial_metrics WHERE run = 'a' AND number = ?",
                             (t["number"],)).fetchone()
            metrics = json.loads(t["metrics"] or "{}")
            for m in ("val_accuracy", "val_loss", "test_accuracy", "train_time"):
                assert v[m] == metrics.get(m)
            assert v["objective"] == (json.loads(t["objective"])[0] if t["objective"]
                                      else None)
            eps = conn.execute("SELECT epoch, val_loss FROM epoch_metrics WHERE run = 'a' "
                               "AND number = ? ORDER BY epoch", (t["number"],)).fetchall()
            raw = conn.execute("SELECT epoch, val_loss FROM epochs WHERE trial_id = ? "
                               "ORDER BY epoch", (t["id"],)).fetchall()
            assert [tuple(e) for e in eps] == [tuple(r) for r in raw]
    finally:
        conn.close()

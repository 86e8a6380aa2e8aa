"""One-shot search end to end: the history it leaves, resumes, kills, and wrong inputs.

References: the history read with sqlite3; scores recomputed with plain torch on
the extracted candidate; rankings recomputed by brute force; real processes
killed with SIGKILL.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from search_testing import cli, env, query, spec_of

import autoarch
from autoarch.search.options import Objective
from autoarch.search.strategies.oneshot import checkpoint_path, ranked

SPEC = """
model m(x: [64]) -> [10] {
  h = linear(x, choice(16, 32))
  repeat choice(1, 2) {
    h = choice(mlp(layernorm(h), expand = choice(1, 2)), kan(h, 16, groups = 4))
  }
  return linear(h, 10)
}
train { data = digits  batch = 64  epochs = 1  optimizer = adamw(lr = 0.01) }
search { strategy = oneshot  supernet_epochs = 3  evaluate = 12  retrain = 2  then = random }
"""


def _search(tmp_path: Path, **kw) -> autoarch.search.SearchResult:  # type: ignore[name-defined]
    spec = spec_of(tmp_path, SPEC)
    return autoarch.search(spec, db=tmp_path / "h.db", **kw)


def test_a_oneshot_run_records_every_phase(tmp_path: Path) -> None:
    result = _search(tmp_path)
    db = tmp_path / "h.db"
    run = query(db, "SELECT * FROM runs")[0]
    assert run["strategy"] == "oneshot" and run["trials_requested"] == 2
    epochs = query(db, "SELECT * FROM supernet_epochs ORDER BY epoch")
    assert [e["epoch"] for e in epochs] == [1, 2, 3]
    from autoarch.search.data import load_data

    rows = len(load_data("digits").x_train)
    assert rows % 64 > 1  # so every epoch has ceil(rows / 64) steps, one path each
    assert all(math.isfinite(e["train_loss"]) and e["paths"] == math.ceil(rows / 64)
               for e in epochs)
    assert epochs[-1]["train_loss"] < epochs[0]["train_loss"]
    scores = query(db, "SELECT * FROM supernet_scores ORDER BY number")
    assert [s["number"] for s in scores] == list(range(12))
    assert len({s["arch_hash"] for s in scores}) == 12  # distinct candidates
    known = {r["arch_hash"] for r in query(db, "SELECT arch_hash FROM candidates")}
    assert {s["arch_hash"] for s in scores} <= known
    for s in scores:
        assert json.loads(s["objective"]) == [json.loads(s["metrics"])["val_accuracy"]]
    # the trials are the two best scores, trained stand-alone
    best = sorted(scores, key=lambda s: (-json.loads(s["objective"])[0],
                                         json.loads(s["metrics"])["val_loss"], s["number"]))[:2]
    trials = query(db, "SELECT * FROM trials ORDER BY number")
    assert [t["state"] for t in trials] == ["complete", "complete"]
    assert [t["arch_hash"] for t in trials] == [s["arch_hash"] for s in best]
    assert {t["number"] for t in trials} == {0, 1}
    assert len(query(db, "SELECT * FROM epochs")) == 2  # one stand-alone epoch each
    assert result.counted == 2 and result.best[0]["number"] in (0, 1)
    assert checkpoint_path(db, run["name"]).exists()


def test_a_score_is_the_extracted_candidate_on_the_validation_split(tmp_path: Path) -> None:
    from autoarch.backends.torch.supernet import Supernet
    from autoarch.search.data import load_data

    _search(tmp_path)
    db = tmp_path / "h.db"
    run = query(db, "SELECT * FROM runs")[0]
    state = torch.load(checkpoint_path(db, run["name"]), weights_only=False)
    spec = autoarch.load(tmp_path / "t.spec")
    net = Supernet(spec, layout=state["layout"])
    net.load_state_dict(state["net"])
    data = load_data("digits")
    for s in query(db, "SELECT * FROM supernet_scores")[:4]:
        model = net.extract(json.loads(s["choices"])).eval()  # no BatchNorm here
        with torch.no_grad():
            acc = (model(data.x_val).argmax(-1) == data.y_val).double().mean().item()
        assert json.loads(s["objective"])[0] == pytest.approx(acc, abs=1e-9)


def test_running_again_resumes_without_training_or_scoring_twice(tmp_path: Path) -> None:
    _search(tmp_path)
    db = tmp_path / "h.db"
    before = [dict(r) for r in query(db, "SELECT * FROM supernet_scores ORDER BY number")]
    run = query(db, "SELECT name FROM runs")[0]["name"]
    _search(tmp_path, name=run)
    assert [dict(r) for r in query(db, "SELECT * FROM supernet_scores ORDER BY number")] == before
    assert len(query(db, "SELECT * FROM supernet_epochs")) == 3
    assert len(query(db, "SELECT * FROM trials")) == 2


@pytest.mark.parametrize("flag", [{"path_sampler": "fair"}, {"evaluate": 20},
                                  {"supernet_epochs": 4}, {"then": "tpe"}])
def test_a_resume_with_changed_oneshot_settings_is_refused(tmp_path: Path, flag: dict) -> None:
    _search(tmp_path)
    db = tmp_path / "h.db"
    run = query(db, "SELECT name FROM runs")[0]["name"]
    key, value = next(iter(flag.items()))
    with pytest.raises(autoarch.CommandError, match=f"{key} = {value} now"):
        _search(tmp_path, name=run, **flag)
    assert len(query(db, "SELECT * FROM supernet_scores")) == 12  # nothing added


def test_wrong_inputs_are_one_line_errors_before_anything_is_written(tmp_path: Path) -> None:
    spec = spec_of(tmp_path, SPEC)
    db = tmp_path / "w.db"
    with pytest.raises(autoarch.CommandError, match="--trials does not apply"):
        autoarch.search(spec, trials=5, db=db)
    with pytest.raises(autoarch.CommandError, match="objective minimize.train_time. cannot be measured"):
        autoarch.search(spec_of(tmp_path, SPEC.replace(
            "then = random", "then = random  objective = minimize(train_time)"), "o.spec"),
            db=db)
    two = spec_of(tmp_path, SPEC.replace("then = random", "objective = [maximize(val_accuracy), "
                                         "minimize(params)]"), "two.spec")
    with pytest.raises(autoarch.SpecError, match="evolution is single-objective"):
        autoarch.search(two, then="evolution", db=db)
    from autoarch.search.options import options_of

    assert options_of(two, strategy="oneshot").then == "nsga2"  # the default for several
    assert options_of(spec, strategy="oneshot").then == "random"  # as the spec says
    lr = spec_of(tmp_path, SPEC.replace("lr = 0.01", "lr = choice(0.01, 0.001)"), "lr.spec")
    with pytest.raises(autoarch.SpecError) as info:
        autoarch.search(lr, db=db)
    assert info.value.line == 8 and "train" in info.value.message
    assert not db.exists()


def test_the_cli_shows_each_phase_and_refuses_bad_flags(tmp_path: Path) -> None:
    (tmp_path / "t.spec").write_text(SPEC)
    run = subprocess.run(cli("search", tmp_path / "t.spec", "--db", tmp_path / "c.db",
                             "--supernet-epochs", "2", "--evaluate", "6", "--retrain", "1",
                             "--path-sampler", "fair", "--then", "tpe"),
                         capture_output=True, text=True, env=env(), timeout=600)
    assert run.returncode == 0, run.stderr
    text = run.stdout + run.stderr
    assert "supernet epoch 1/2" in text and "supernet epoch 2/2" in text
    assert "scored 6/6 candidates" in text and "1/1 trials done" in text
    config = json.loads(query(tmp_path / "c.db", "SELECT config FROM runs")[0]["config"])
    assert config["oneshot"] == {"supernet_epochs": 2, "path_sampler": "fair", "evaluate": 6,
                                 "retrain": 1, "then": "tpe"}
    for bad, words in ((["--path-sampler", "greedy"], "path sampler"),
                       (["--then", "oneshot"], "then = oneshot"),
                       (["--retrain", "0"], "retrain")):
        r = subprocess.run(cli("search", tmp_path / "t.spec", "--db", tmp_path / "bad.db",
                               *bad), capture_output=True, text=True, env=env(), timeout=120)
        assert r.returncode != 0
        assert "Traceback" not in r.stderr and words in r.stderr, r.stderr
        assert not (tmp_path / "bad.db").exists()


def test_sigkill_while_scoring_loses_no_score_and_counts_none_twice(tmp_path: Path) -> None:
    # a larger space (over 300 candidates) so that scoring 120 takes a few seconds
    text = SPEC.replace("choice(16, 32)", "int(8, 64, step = 8)").replace(
        "choice(1, 2)", "choice(1, 2, 3)").replace("evaluate = 12", "evaluate = 120").replace(
        "supernet_epochs = 3", "supernet_epochs = 1")
    db = tmp_path / "k.db"
    args = _killed_at(tmp_path, text, db, "supernet_scores", 10)
    scored = _count(db, "supernet_scores")
    assert 10 <= scored < 120
    again = subprocess.run(args, capture_output=True, text=True, env=env(), timeout=600)
    assert again.returncode == 0, again.stderr
    assert f"resumed scoring: {scored} candidates scored before" in again.stdout + again.stderr
    rows = query(db, "SELECT number, arch_hash FROM supernet_scores ORDER BY number")
    assert [r["number"] for r in rows] == list(range(120))
    assert len({r["arch_hash"] for r in rows}) == 120
    assert len(query(db, "SELECT * FROM supernet_epochs")) == 1
    assert [r["state"] for r in query(db, "SELECT state FROM trials")] == ["complete"] * 2


def _killed_at(tmp_path: Path, text: str, db: Path, table: str, rows: int) -> list[str]:
    """Start ``autoarch search`` on ``text`` (run ``k``), SIGKILL it once ``table`` has
    ``rows`` rows; the command, to run again."""
    (tmp_path / "t.spec").write_text(text)
    args = cli("search", tmp_path / "t.spec", "--db", db, "--name", "k")
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=env())
    deadline = time.time() + 300
    while time.time() < deadline and _count(db, table) < rows:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return args


def _count(db: Path, table: str) -> int:
    try:
        return query(db, f"SELECT count(*) AS n FROM {table}")[0]["n"]
    except Exception:  # noqa: BLE001 - the table is not there yet
        return 0


def test_ranking_is_by_pareto_front_then_first_objective() -> None:
    objs = [Objective("maximize", "val_accuracy"), Objective("minimize", "params")]
    points = [(0.9, 500), (0.8, 100), (0.95, 900), (0.85, 600), (0.7, 50), (0.6, 700)]
    rows = [{"number": i, "objective": json.dumps(list(p))} for i, p in enumerate(points)]

    def dominated(p, q):  # q dominates p
        return q[0] >= p[0] and q[1] <= p[1] and q != p

    front = [i for i, p in enumerate(points) if not any(dominated(p, q) for q in points)]
    got = [r["number"] for r in ranked(rows, objs)]
    assert set(got[:len(front)]) == set(front)
    assert got[:len(front)] == sorted(front, key=lambda i: -points[i][0])
    assert sorted(got) == list(range(len(points)))
    single = [r["number"] for r in ranked(
        [{"number": i, "objective": json.dumps([p[0]])} for i, p in enumerate(points)], objs[:1])]
    assert single == sorted(range(len(points)), key=lambda i: -points[i][0])
    # equal accuracies: the lower inherited loss first
    tied = [{"number": i, "objective": json.dumps([0.5]), "metrics": json.dumps({"val_loss": v})}
            for i, v in enumerate([0.9, 0.3, 0.6])]
    assert [r["number"] for r in ranked(tied, objs[:1])] == [1, 2, 0]


def test_sigkill_during_supernet_training_resumes_from_the_last_epoch(tmp_path: Path) -> None:
    text = SPEC.replace("supernet_epochs = 3", "supernet_epochs = 6").replace(
        "batch = 64", "batch = 16")
    db = tmp_path / "s.db"
    args = _killed_at(tmp_path, text, db, "supernet_epochs", 2)
    done = _count(db, "supernet_epochs")
    assert 2 <= done < 6
    saved = torch.load(checkpoint_path(db, "k"), weights_only=False)["epoch"]
    assert saved in (done, done + 1)  # the row follows the checkpoint
    again = subprocess.run(args, capture_output=True, text=True, env=env(), timeout=600)
    assert again.returncode == 0, again.stderr
    said = again.stdout + again.stderr
    assert f"supernet epoch {saved}/6" not in said  # not trained again
    assert f"supernet epoch {saved + 1}/6" in said
    assert [r["epoch"] for r in query(db, "SELECT epoch FROM supernet_epochs ORDER BY epoch")] \
        == [1, 2, 3, 4, 5, 6]
    assert len(query(db, "SELECT * FROM trials WHERE state = 'complete'")) == 2


def test_a_history_from_before_oneshot_gains_its_tables_when_written(tmp_path: Path) -> None:
    import sqlite3

    from autoarch.search.history import History

    db = tmp_path / "old.db"
    History(db).close()
    conn = sqlite3.connect(db)
    conn.execute("DROP TABLE supernet_epochs")
    conn.execute("DROP TABLE supernet_scores")
    conn.commit()
    conn.close()
    h = History(db, readonly=True)
    assert h.supernet_scores(1) == [] and h.supernet_epochs(1) == []
    h.close()
    History(db).close()
    names = {r["name"] for r in query(db, "SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"supernet_epochs", "supernet_scores"} <= names

"""`backend = ray`: the same search with training on a real local Ray instance.

The driver stays the only writer of the history; the trials are trained in Ray
worker processes (their pids differ from the driver's), two at a time.
"""

from __future__ import annotations

import json
import os
import sqlite3
import textwrap

import autoarch

SPEC = """
model tiny(x: [64]) -> [10] {
  h = linear(x, choice(8, 16, 24))
  h = act(h, choice(relu, gelu))
  return linear(h, 10)
}
train { data = digits  epochs = 2 }
search { strategy = mcts  trials = 4  backend = ray  workers = 2
         constraint params <= 700 }
"""


def test_ray_backend_trains_in_workers_and_records_from_the_driver(tmp_path, ray_session):
    path = tmp_path / "tiny.spec"
    path.write_text(textwrap.dedent(SPEC).lstrip())
    spec = autoarch.load(path)
    db = tmp_path / "runs.db"
    result = autoarch.search(spec, db=db, seed=0)
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    trials = conn.execute("SELECT * FROM trials ORDER BY number").fetchall()
    done = [t for t in trials if t["state"] == "complete"]
    assert result.counted == 4 and len(done) == 4
    # width 24 (params 64*24+24 + 24*10+10 = 1834) breaks the constraint: never trained
    for t in trials:
        width = next(v for k, v in json.loads(t["choices"]).items() if v in (8, 16, 24))
        params = 64 * width + width + width * 10 + 10
        assert (t["state"] == "invalid") == (params > 700)
    trained = [t for t in done if t["duplicate_of"] is None]
    pids = {json.loads(t["metrics"])["worker_pid"] for t in trained}
    assert os.getpid() not in pids
    for t in trained:
        epochs = conn.execute("SELECT epoch FROM epochs WHERE trial_id = ? ORDER BY epoch",
                              (t["id"],)).fetchall()
        assert [e[0] for e in epochs] == [1, 2]
    best = result.best[0]
    assert conn.execute("SELECT count(*) FROM weights").fetchone()[0] == 1
    blob = conn.execute("SELECT data FROM weights WHERE trial_id = ?",
                        (best["id"],)).fetchone()[0]
    conn.close()
    (tmp_path / "best.pt").write_bytes(blob)
    model = autoarch.load_model(tmp_path / "best.pt")
    assert sum(p.numel() for p in model.parameters()) == best["params"]


def test_ray_backend_records_failures(tmp_path, ray_session):
    path = tmp_path / "bad.spec"
    text = textwrap.dedent(SPEC).lstrip().replace("epochs = 2", "epochs = 1  optimizer = "
                                                  "sgd(lr = 1e12)").replace("choice(relu, gelu)", "relu")
    path.write_text(text)
    db = tmp_path / "runs.db"
    result = autoarch.search(autoarch.load(path), db=db, seed=1, trials=2, strategy="random")
    conn = sqlite3.connect(db)
    states = [r[0] for r in conn.execute("SELECT state FROM trials WHERE state != 'invalid'")]
    errors = [r[0] for r in conn.execute("SELECT error FROM trials WHERE state = 'failed' "
                                         "AND duplicate_of IS NULL")]
    conn.close()
    assert result.counted == 2 and set(states) == {"failed"}
    assert errors and all("nan" in e or "inf" in e for e in errors)


def test_tabulate_on_ray_trains_every_candidate_per_seed_in_workers(tmp_path, ray_session):
    """`autoarch tabulate --backend ray`: each seed's grid run trained in Ray's workers,
    every candidate once per seed, the values those of the same seed trained here."""
    from autoarch.search.tables import Table
    from autoarch.search.tabulate import tabulate

    path = tmp_path / "tiny.spec"
    path.write_text(textwrap.dedent(SPEC).lstrip().replace("constraint params <= 700", ""))
    spec = autoarch.load(path)
    tabulate(spec, seeds=2, db=tmp_path / "ray.db", backend="ray", workers=2)
    tabulate(spec, seeds=[1], db=tmp_path / "here.db", backend="local")
    conn = sqlite3.connect(tmp_path / "ray.db")
    rows = conn.execute("SELECT r.name, t.arch_hash, t.metrics FROM trials t JOIN runs r ON "
                        "r.id = t.run_id WHERE t.duplicate_of IS NULL AND t.state = "
                        "'complete'").fetchall()
    conn.close()
    assert sorted((n, h) for n, h, _ in rows) == sorted(
        {(n, h) for n, h, _ in rows})  # none twice
    assert len(rows) == 2 * 6
    assert {json.loads(m)["worker_pid"] for _, _, m in rows} - {os.getpid()}
    ray_table, here = Table(tmp_path / "ray.db"), Table(tmp_path / "here.db")
    for h in here.records:
        assert ray_table.value(h, seed=1) == here.value(h, seed=1)

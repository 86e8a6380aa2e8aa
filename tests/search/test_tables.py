"""Tabular benchmarks: `autoarch tabulate` and searches replayed from a table.

References are independent of the code under test: a direct training run of the
same candidate with the same seed (the trainer, called by hand), the table's rows
read with sqlite3, a process really killed with SIGKILL.
"""

from __future__ import annotations

import signal
import statistics
import time
from pathlib import Path

import pytest
from search_testing import cli, env, query, run_cli

import autoarch
from autoarch.search.tables import Table, TableError
from autoarch.search.tabulate import tabulate

#: 4 candidates: 2 widths x 2 activations
TINY = """model tiny(x: [64]) -> [10] {
  h = act(linear(x, choice(8, 16)), choice(relu, tanh))
  return linear(h, 10)
}
train { data = digits  epochs = EPOCHS }
search { strategy = random  trials = 3 }
"""


def tiny(tmp_path: Path, epochs: int = 1, name: str = "tiny.spec") -> Path:
    path = tmp_path / name
    path.write_text(TINY.replace("EPOCHS", str(epochs)))
    return path


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> tuple[Path, Path]:
    """A table of the tiny space: 4 candidates x 2 seeds, 2 epochs each."""
    folder = tmp_path_factory.mktemp("table")
    spec = tiny(folder, epochs=2)
    db = folder / "t.db"
    tabulate(autoarch.load(spec), seeds=2, db=db)
    return spec, db


def test_every_row_equals_a_direct_training_with_the_same_seed(table):
    from autoarch.backends.torch import lower_graph
    from autoarch.search.evaluate import load_trial_data, trial_config
    from autoarch.search.trainer import train

    spec_path, db = table
    spec = autoarch.load(spec_path)
    rows = query(db, "SELECT t.choices, t.metrics, t.train_config, t.state, r.name FROM "
                     "trials t JOIN runs r ON r.id = t.run_id WHERE t.duplicate_of IS NULL")
    assert sorted(r["name"] for r in query(db, "SELECT name FROM runs")) == [
        "tabulate-seed-0", "tabulate-seed-1"]
    assert len(rows) == 8 and {r["state"] for r in rows} == {"complete"}
    seen = set()
    for r in rows:
        seed = int(r["name"].rsplit("-", 1)[1])
        choices = autoarch.search.history.loads(r["choices"])
        seen.add((seed, tuple(sorted(choices.items()))))
        graph = spec.build(choices)
        cfg = trial_config(graph)
        cfg["seed"] = seed
        data = load_trial_data(cfg, spec_path.parent)
        got = train(lower_graph(graph, seed=seed), data, dict(cfg))
        recorded = autoarch.search.history.loads(r["metrics"])
        assert autoarch.search.history.loads(r["train_config"])["seed"] == seed
        for k in ("val_accuracy", "val_loss", "train_loss"):
            assert recorded[k] == pytest.approx(got.metrics[k], rel=1e-6, abs=1e-9), k
    assert len(seen) == 8  # every candidate once per seed


def test_the_table_reads_back_every_candidate_and_seed(table):
    _, db = table
    t = Table(db)
    assert len(t) == 4 and t.seeds == [0, 1]
    raw = query(db, "SELECT t.arch_hash, r.name, json_extract(t.metrics, '$.val_accuracy') AS v "
                    "FROM trials t JOIN runs r ON r.id = t.run_id")
    for h in t.records:
        vals = [r["v"] for r in raw if r["arch_hash"] == h]
        assert len(vals) == 2
        assert t.value(h) == pytest.approx(statistics.fmean(vals))
        assert [len(r.epochs) for r in t.records[h]] == [2, 2]


@pytest.mark.parametrize("draw", ["seed", "mean"])
def test_a_replay_gives_each_trial_the_table_record(table, tmp_path, draw):
    spec_path, db = table
    raw = query(db, "SELECT t.arch_hash, json_extract(t.metrics, '$.val_accuracy') AS v "
                    "FROM trials t")
    by_hash: dict[str, list[float]] = {}
    for r in raw:
        by_hash.setdefault(r["arch_hash"], []).append(r["v"])
    start = time.perf_counter()
    res = autoarch.search(autoarch.load(spec_path), db=tmp_path / "r.db", trials=12,
                          replay=db, draw=draw)
    assert time.perf_counter() - start < 30  # nothing trained (a training takes seconds)
    assert res.counted == 12
    drawn = set()
    for o in res.outcomes:
        assert o.state == "complete"
        v = o.metrics["val_accuracy"]
        if draw == "mean":
            assert v == pytest.approx(statistics.fmean(by_hash[o.arch_hash]))
        else:
            assert any(v == pytest.approx(x) for x in by_hash[o.arch_hash])
            drawn.add((o.arch_hash, v))
    epochs = query(tmp_path / "r.db", "SELECT count(*) AS n FROM epochs")[0]["n"]
    firsts = sum(o.duplicate_of is None for o in res.outcomes)
    assert epochs == 2 * firsts  # the table's epochs replayed for every trained trial
    cfg = query(tmp_path / "r.db", "SELECT train_config FROM trials LIMIT 1")[0][0]
    assert f'"objective_fn": "table:{Table(db).digest}:{draw}"' in cfg


def test_a_pruner_prunes_a_replayed_trial_from_its_epochs(tmp_path):
    spec = tiny(tmp_path, epochs=3)  # 12 candidates: 4 widths x 3 activations
    spec.write_text(spec.read_text().replace("choice(8, 16)", "choice(8, 16, 24, 32)")
                    .replace("choice(relu, tanh)", "choice(relu, gelu, tanh)"))
    db = tmp_path / "t.db"
    tabulate(autoarch.load(spec), seeds=1, db=db)
    # the median pruner: after 3 trials, a curve below the median of the others is cut
    res = autoarch.search(autoarch.load(spec), db=tmp_path / "r.db", trials=12, replay=db,
                          pruner="median", draw="mean", seed=1)
    pruned = [o for o in res.outcomes if o.state == "pruned"]
    assert pruned, [(o.state, o.metrics.get("val_accuracy")) for o in res.outcomes]
    t = Table(db)
    for o in pruned:  # cut before its last epoch: fewer epochs recorded than the table has
        assert o.metrics["epochs"] < len(t.records[o.arch_hash][0].epochs)


def test_replay_refuses_other_settings_and_bad_tables(table, tmp_path):
    spec_path, db = table
    spec = autoarch.load(spec_path)
    with pytest.raises(TableError, match="epochs = 1, the table t.db was built with epochs = 2"):
        autoarch.search(spec, db=tmp_path / "r.db", epochs=1, replay=db)
    with pytest.raises(TableError, match="runs in this process"):
        autoarch.search(spec, db=tmp_path / "r.db", backend="ray", replay=db)
    with pytest.raises(TableError, match="unknown draw"):
        autoarch.search(spec, db=tmp_path / "r.db", replay=db, draw="median")
    with pytest.raises(TableError, match="no table at"):
        autoarch.search(spec, db=tmp_path / "r.db", replay=tmp_path / "none.db")
    assert not (tmp_path / "r.db").exists()  # nothing written for a refused search
    other = tiny(tmp_path, epochs=2, name="other.spec").read_text().replace("choice(8, 16)", "choice(8, 32)")
    (tmp_path / "other.spec").write_text(other)
    res = autoarch.search(autoarch.load(tmp_path / "other.spec"), db=tmp_path / "o.db",
                          trials=6, replay=db, seed=1)
    missing = [o for o in res.outcomes if o.state == "failed"]
    assert missing and all("is not in the table" in o.error for o in missing)


def test_tabulate_refuses_what_it_cannot_do(tmp_path):
    spec = autoarch.load(tiny(tmp_path))
    with pytest.raises(TableError, match=r"4 candidates x 3 seeds = 12 trainings, about .* of "
                                         r"CPU time .* at most 10"):
        tabulate(spec, seeds=3, db=tmp_path / "t.db", limit=10)
    with pytest.raises(TableError, match="at least 1"):
        tabulate(spec, seeds=0, db=tmp_path / "t.db")
    cont = tmp_path / "c.spec"
    cont.write_text("model c(x: [64]) -> [10] {\n  return dropout(linear(x, 10), "
                    "float(0.0, 0.5))\n}\n")
    with pytest.raises(TableError, match="discrete space; decision .* is continuous"):
        tabulate(autoarch.load(cont), seeds=1, db=tmp_path / "t.db")
    assert not (tmp_path / "t.db").exists()


def test_killed_tabulate_resumes_without_losing_or_retraining_a_candidate(tmp_path):
    import subprocess

    spec = tiny(tmp_path, epochs=30)  # long enough trainings to be killed in the middle
    db = tmp_path / "t.db"
    args = cli("tabulate", spec, "--seeds", "2", "-o", db)
    proc = subprocess.Popen(args, cwd=tmp_path, env=env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
        if not db.exists():
            continue
        try:
            done = query(db, "SELECT count(*) FROM trials WHERE state = 'complete'")[0][0]
            running = query(db, "SELECT count(*) FROM trials WHERE state = 'running'")[0][0]
        except Exception:  # noqa: BLE001 - the schema is not there yet
            continue
        if done >= 5 and running:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    before = query(db, "SELECT id, arch_hash, run_id, metrics FROM trials WHERE state = "
                       "'complete'")
    assert 5 <= len(before) < 8
    resumed = run_cli("tabulate", spec, "--seeds", "2", "-o", db, cwd=tmp_path, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    rows = query(db, "SELECT id, arch_hash, run_id, state, metrics, duplicate_of FROM trials")
    complete = [r for r in rows if r["state"] == "complete" and r["duplicate_of"] is None]
    keys = [(r["run_id"], r["arch_hash"]) for r in complete]
    assert len(keys) == len(set(keys)) == 8  # every candidate once per seed, none twice
    kept = {r["id"]: r["metrics"] for r in complete}
    assert all(kept.get(r["id"]) == r["metrics"] for r in before)  # nothing lost or redone
    assert len(Table(db)) == 4


def test_the_cli_tabulates_and_replays_with_one_line_errors(tmp_path):
    spec = tiny(tmp_path)
    made = run_cli("tabulate", spec, "--seeds", "1", "-o", "t.db", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert "4 candidates x 1 seed" in made.stdout
    again = run_cli("tabulate", spec, "--seeds", "1", "-o", "t.db", "--epochs", "2",
                    cwd=tmp_path)
    assert again.returncode == 1 and "built with epochs = 1" in again.stderr
    big = run_cli("tabulate", spec, "--seeds", "5", "-o", "u.db", "--limit", "3", cwd=tmp_path)
    assert big.returncode == 1 and "20 trainings" in big.stderr and "--limit" in big.stderr
    (tmp_path / "junk.db").write_text("not a database")
    junk = run_cli("tabulate", spec, "-o", "junk.db", cwd=tmp_path)
    assert junk.returncode == 1 and "not an autoarch history" in junk.stderr
    assert (tmp_path / "junk.db").read_text() == "not a database"  # not ours: untouched
    replay = run_cli("search", spec, "--db", "r.db", "--replay", "t.db", "-n", "5",
                     cwd=tmp_path)
    assert replay.returncode == 0, replay.stderr
    assert "5/5 trials done" in replay.stdout
    bad = run_cli("search", spec, "--db", "r.db", "--replay", "r.db", cwd=tmp_path)
    assert bad.returncode == 1 and "not a table" in bad.stderr
    for err in (made, again, big, junk, bad):
        assert len([ln for ln in err.stderr.splitlines() if ln.startswith("error")]) <= 1


@pytest.mark.parametrize(("name", "spec_file", "count"), [
    ("quickstart", "quickstart.spec", 774), ("mlp_digits", "mlp_digits.spec", 504)])
def test_the_shipped_tables_hold_their_whole_space_three_times(name, spec_file, count):
    """Each shipped table: every candidate of its example spec (the count the docs
    state), 3 seeds each, all complete, built from the example file as it is."""
    from autoarch.search.tables import BUNDLED

    examples = Path(__file__).resolve().parents[2] / "examples"
    db = BUNDLED / f"{name}.db"
    runs = query(db, "SELECT name, spec_text FROM runs ORDER BY name")
    assert [r["name"] for r in runs] == [f"tabulate-seed-{s}" for s in range(3)]
    assert {r["spec_text"] for r in runs} == {(examples / spec_file).read_text()}
    spec = autoarch.load(examples / spec_file)
    assert spec.space().count() == count
    assigned = query(db, "SELECT r.name, count(DISTINCT t.choices) AS n, "
                         "sum(t.state = 'complete') AS ok FROM trials t JOIN runs r ON "
                         "r.id = t.run_id GROUP BY r.name")
    assert [(r["n"], r["ok"]) for r in assigned] == [(count, count)] * 3
    t = Table(name)  # by name: the shipped file
    assert t.path == db and t.seeds == [0, 1, 2]
    assert all(len(recs) == 3 and all(r.state == "complete" for r in recs)
               for recs in t.records.values())
    spread = statistics.fmean(statistics.stdev(r.metrics["val_accuracy"] for r in recs)
                              for recs in t.records.values())
    assert spread > 0  # three seeds really trained three times


def test_a_search_replays_a_shipped_table_by_name(tmp_path):
    spec = autoarch.load(Path(__file__).resolve().parents[2] / "examples" / "mlp_digits.spec")
    res = autoarch.search(spec, db=tmp_path / "r.db", strategy="tpe", trials=30,
                          replay="mlp_digits")
    assert res.counted == 30 and all(o.state == "complete" for o in res.outcomes)
    best = res.best[0]["metrics"]["val_accuracy"]
    assert best > statistics.median(Table("mlp_digits").mean_values().values())

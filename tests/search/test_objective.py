"""`autoarch.search(spec, objective=fn)`: a training function of the user's own.

The functions here compute their objective from the candidate in a way the test
can recompute (a formula of the choices, a hand-written training loop), and every
expectation is read back from the history with sqlite3.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from search_testing import query, spec_of

import autoarch
from autoarch.search.options import SearchError

#: 6 widths x 2 activations = 12 candidates
SMALL = """
model m(x: [64]) -> [10] {
  h = act(linear(x, choice(4, 8, 16, 24, 32, 40)), choice(relu, tanh))
  return linear(h, 10)
}
train { data = digits  epochs = 3 }
search { strategy = random  trials = TRIALS  objective = OBJECTIVE }
"""


def small(tmp_path: Path, trials: int = 4, objective: str = "maximize(val_accuracy)",
          extra: str = "") -> autoarch.Spec:
    return spec_of(tmp_path, SMALL.replace("TRIALS", str(trials)).replace(
        "OBJECTIVE", objective) + extra)


def width(choices: dict) -> int:
    return next(v for v in choices.values() if isinstance(v, int))


def score(choices: dict) -> float:
    """A made-up objective the test can recompute from the choices alone."""
    return width(choices) / 100 + (0.5 if "relu" in choices.values() else 0.0)


def rows(db: Path) -> list:
    return query(db, "SELECT * FROM trials ORDER BY number")


def test_a_number_is_the_objective_and_the_model_is_the_candidate(tmp_path):
    spec = small(tmp_path, trials=4)
    seen = []

    def fit(model, trial):
        # the model handed over is the candidate: its parameter count is the graph's
        assert sum(p.numel() for p in model.parameters()) == trial.graph.params
        assert trial.choices == dict(trial.graph.choices)
        assert trial.device == torch.device("cpu") and trial.seed == 0
        assert trial.epochs == 3 and trial.batch == 64 and trial.lr == pytest.approx(1e-3)
        seen.append(trial.number)
        return score(trial.choices)

    db = tmp_path / "r.db"
    result = autoarch.search(spec, objective=fit, db=db, seed=3)
    assert result.counted == 4
    trained = [r for r in rows(db) if r["duplicate_of"] is None and r["state"] == "complete"]
    assert sorted(seen) == sorted(r["number"] for r in trained)
    for r in rows(db):
        if r["state"] == "complete":
            assert json.loads(r["objective"]) == [score(json.loads(r["choices"]))]
            assert json.loads(r["train_config"])["objective_fn"].endswith("fit")
    best = max(trained, key=lambda r: score(json.loads(r["choices"])))
    assert result.best[0]["number"] == best["number"]


def test_a_dict_names_the_objectives_and_keeps_other_numbers(tmp_path):
    spec = small(tmp_path, trials=3, objective="[maximize(val_accuracy), minimize(params)]")

    def fit(model, trial):
        return {"val_accuracy": score(trial.choices), "f1": 0.25,
                "auc": torch.tensor(0.75)}  # a one-element tensor is a number

    db = tmp_path / "r.db"
    autoarch.search(spec, objective=fit, db=db, seed=1)
    for r in rows(db):
        assert r["state"] == "complete", r["error"]
        metrics = json.loads(r["metrics"])
        assert metrics["f1"] == 0.25 and metrics["auc"] == 0.75
        # params is the candidate's own cost, from its graph: 64*w + w + 10*w + 10
        w = width(json.loads(r["choices"]))
        assert json.loads(r["objective"]) == [score(json.loads(r["choices"])), 75 * w + 10]


@pytest.mark.parametrize("returned,reason", [
    ("text", "val_accuracy must be a number, got str"),
    ({"val_loss": 0.5}, "without val_accuracy"),
    ({"val_accuracy": 0.5, "params": 3}, "leave them out"),
    (None, "returned None and reported no metrics"),
])
def test_what_is_not_the_objective_fails_the_trial_with_a_reason(tmp_path, returned, reason):
    spec = small(tmp_path, trials=2)
    db = tmp_path / "r.db"
    result = autoarch.search(spec, objective=lambda model, trial: returned, db=db)
    assert result.counted == 2
    for r in rows(db):
        assert r["state"] == "failed" and reason in r["error"], r["error"]


def test_an_exception_fails_that_trial_with_its_traceback_and_the_search_goes_on(tmp_path):
    spec = small(tmp_path, trials=4)

    def fit(model, trial):
        if trial.number % 2 == 0:
            raise ZeroDivisionError("my loop broke")
        return score(trial.choices)

    db = tmp_path / "r.db"
    result = autoarch.search(spec, objective=fit, db=db, seed=2)
    assert result.counted == 4
    own = [r for r in rows(db) if r["duplicate_of"] is None]
    assert {r["number"] % 2 for r in own} == {0, 1}
    for r in own:
        if r["number"] % 2 == 0:
            assert r["state"] == "failed" and r["error"] == "ZeroDivisionError: my loop broke"
            assert "my loop broke" in r["traceback"] and "in fit" in r["traceback"]
        else:
            assert r["state"] == "complete"
            assert json.loads(r["objective"]) == [score(json.loads(r["choices"]))]


def test_none_returns_the_last_report_and_epochs_are_recorded_with_own_metrics(tmp_path):
    spec = small(tmp_path, trials=2)

    def fit(model, trial):
        for epoch in (1, 2, 3):
            trial.report(epoch, val_accuracy=epoch / 10, train_loss=1 / epoch, f1=epoch * 2)
        return None

    db = tmp_path / "r.db"
    autoarch.search(spec, objective=fit, db=db)
    for r in rows(db):
        assert json.loads(r["objective"]) == [0.3]
        eps = query(db, "SELECT * FROM epochs WHERE trial_id = ? ORDER BY epoch", (r["id"],))
        assert [e["epoch"] for e in eps] == [1, 2, 3]
        assert [e["val_accuracy"] for e in eps] == [0.1, 0.2, 0.3]
        assert [e["train_loss"] for e in eps] == [1.0, 0.5, 1 / 3]
        assert [json.loads(e["metrics"]) for e in eps] == [{"f1": 2.0}, {"f1": 4.0},
                                                          {"f1": 6.0}]


@pytest.mark.parametrize("bad,message", [
    (lambda t: t.report(0, val_accuracy=1.0), "epoch must be an integer >= 1"),
    (lambda t: (t.report(2, val_accuracy=1.0), t.report(2, val_accuracy=1.0)),
     "epoch 2 after epoch 2"),
    (lambda t: t.report(1, val_accuracy="high"), "val_accuracy must be a number"),
])
def test_a_wrong_report_fails_the_trial_saying_what_is_wrong(tmp_path, bad, message):
    spec = small(tmp_path, trials=1)
    db = tmp_path / "r.db"

    def fit(model, trial):
        bad(trial)
        return 1.0

    autoarch.search(spec, objective=fit, db=db)
    (r,) = rows(db)
    assert r["state"] == "failed" and message in r["error"]


def test_reports_feed_the_pruner_and_pruned_trials_keep_their_epochs(tmp_path):
    """Median pruning: a trial whose reported value is below the median of the trials
    before it at the same epoch stops there (raising TrialPruned out of report)."""
    spec = spec_of(tmp_path, SMALL.replace("TRIALS", "10").replace(
        "OBJECTIVE", "maximize(val_accuracy)").replace("strategy = random",
                                                       "strategy = random  pruner = median"))
    reports: dict[int, list[int]] = {}
    caught = []

    def fit(model, trial):
        reports[trial.number] = []
        for epoch in range(1, 6):
            reports[trial.number].append(epoch)
            try:
                trial.report(epoch, val_accuracy=score(trial.choices))
            except autoarch.TrialPruned:
                caught.append(trial.number)
                raise
        return score(trial.choices)

    db = tmp_path / "r.db"
    result = autoarch.search(spec, objective=fit, db=db, seed=4)
    assert result.counted == 10
    pruned = [r for r in rows(db) if r["state"] == "pruned" and r["duplicate_of"] is None]
    assert pruned and sorted(caught) == sorted(r["number"] for r in pruned)
    done = []
    for r in rows(db):
        if r["duplicate_of"] is not None:
            continue
        value = score(json.loads(r["choices"]))
        eps = [e["epoch"] for e in query(db, "SELECT epoch FROM epochs WHERE trial_id = ? "
                                             "ORDER BY epoch", (r["id"],))]
        assert eps == reports[r["number"]]  # every report recorded, none more
        if r["state"] == "pruned":
            assert len(eps) < 5
            # after 3 finished trials (n_startup_trials), below the median of the curves
            # trained before it (optuna's MedianPruner)
            finished = [x for x in rows(db) if x["number"] < r["number"]
                        and x["state"] == "complete"]
            assert len(finished) >= 3 and value < statistics.median(done)
        else:
            assert eps == [1, 2, 3, 4, 5]
            done.append(value)


def test_duplicates_are_not_trained_again(tmp_path):
    spec = spec_of(tmp_path, """
        model m(x: [64]) -> [10] { return linear(act(x, choice(relu, tanh)), 10) }
        train { data = digits }
        search { strategy = random  trials = 6 }
    """)
    calls = []

    def fit(model, trial):
        calls.append(dict(trial.choices))
        return score(trial.choices) + len(calls)  # a second call would change the score

    db = tmp_path / "r.db"
    autoarch.search(spec, objective=fit, db=db, seed=0)
    trained = [r for r in rows(db) if r["duplicate_of"] is None]
    assert len(calls) == len(trained) <= 2
    assert len(rows(db)) == 6
    by_number = {r["number"]: r for r in rows(db)}
    for r in rows(db):
        if r["duplicate_of"] is not None:
            assert r["objective"] == by_number[r["duplicate_of"]]["objective"]


def test_a_run_resumes_only_with_its_own_objective_function(tmp_path):
    spec = small(tmp_path, trials=2)
    db = tmp_path / "r.db"

    def fit(model, trial):
        return score(trial.choices)

    def other(model, trial):
        return 0.0

    autoarch.search(spec, objective=fit, db=db, name="r")
    with pytest.raises(SearchError, match=r"objective function .*fit then, objective "
                                          r"function .*other now"):
        autoarch.search(spec, objective=other, db=db, name="r", trials=3)
    with pytest.raises(SearchError, match="fit then, the built-in trainer now"):
        autoarch.search(spec, db=db, name="r", trials=3)
    result = autoarch.search(spec, objective=fit, db=db, name="r", trials=3)
    assert result.counted == 3
    assert len([r for r in rows(db) if r["state"] == "complete"]) == 3


def test_own_data_through_trial_data_and_the_shape_check_before_any_trial(tmp_path):
    x = torch.randn(120, 64)
    y = (x[:, 0] > 0).long()
    data = autoarch.Dataset.from_tensors(x[:80], y[:80], x[80:], y[80:], classes=10)
    spec = small(tmp_path, trials=2)
    seen = []

    def fit(model, trial):
        seen.append(trial.data)
        with torch.no_grad():
            out = model(trial.data.x_val)
        return float((out.argmax(-1) == trial.data.y_val).float().mean())

    db = tmp_path / "r.db"
    autoarch.search(spec, objective=fit, data=data, db=db)
    assert all(d is data for d in seen)
    # a model that does not fit the data: one error before anything is trained or written
    wrong = autoarch.Dataset.from_tensors(torch.randn(40, 5), y[:40],
                                          torch.randn(20, 5), y[:20], classes=10)
    with pytest.raises(SearchError, match=r"takes \[64\].*inputs \[5\]"):
        autoarch.search(spec, objective=fit, data=wrong, db=tmp_path / "w.db")
    assert not (tmp_path / "w.db").exists()


def test_a_custom_training_loop_on_the_spec_data_learns(tmp_path):
    spec = small(tmp_path, trials=2)

    def fit(model, trial):
        data = trial.data
        opt = torch.optim.Adam(model.parameters(), lr=0.01)
        for epoch in range(1, trial.epochs + 1):
            model.train()
            for i in range(0, len(data.x_train), trial.batch):
                loss = F.cross_entropy(model(data.x_train[i:i + trial.batch]),
                                       data.y_train[i:i + trial.batch])
                opt.zero_grad()
                loss.backward()
                opt.step()
            model.eval()
            with torch.no_grad():
                acc = float((model(data.x_val).argmax(-1) == data.y_val).float().mean())
            trial.report(epoch, val_accuracy=acc, train_loss=float(loss.detach()))
        return acc

    db = tmp_path / "r.db"
    result = autoarch.search(spec, objective=fit, db=db, seed=1)
    assert result.best[0]["metrics"]["val_accuracy"] > 0.5  # 10 classes: chance is 0.1
    # the best trial's weights are kept, and are the weights fit trained
    row = query(db, "SELECT data FROM weights")[0]
    path = tmp_path / "best.pt"
    path.write_bytes(row["data"])
    model = autoarch.load_model(path)
    data = autoarch.search.load_data("digits")
    with torch.no_grad():
        acc = float((model(data.x_val).argmax(-1) == data.y_val).float().mean())
    assert acc == pytest.approx(result.best[0]["metrics"]["val_accuracy"])


KILLED = """
import sys, time
import autoarch

spec = autoarch.load(sys.argv[1])

def fit(model, trial):
    for epoch in range(1, 4):
        time.sleep(float(sys.argv[3]))
        trial.report(epoch, val_accuracy=trial.graph.params / 1e5)
    return trial.graph.params / 1e5

autoarch.search(spec, objective=fit, db=sys.argv[2], name="r", trials=4, seed=7)
print("done")
"""


def test_a_run_with_an_objective_function_resumes_after_kill_9(tmp_path):
    spec_path = tmp_path / "t.spec"
    spec_path.write_text(textwrap.dedent(SMALL.replace("TRIALS", "4").replace(
        "OBJECTIVE", "maximize(val_accuracy)")).lstrip())
    script = tmp_path / "run.py"
    script.write_text(KILLED)
    db = tmp_path / "r.db"
    env = {k: v for k, v in os.environ.items() if k != "AUTOARCH_DEBUG"}
    proc = subprocess.Popen([sys.executable, str(script), str(spec_path), str(db), "0.4"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    victim = None
    while time.monotonic() < deadline and proc.poll() is None and victim is None:
        time.sleep(0.05)
        try:
            found = query(db, "SELECT t.* FROM trials t WHERE t.state = 'running' AND "
                              "(SELECT count(*) FROM trials d WHERE d.state = 'complete') >= 1 "
                              "AND (SELECT count(*) FROM epochs e WHERE e.trial_id = t.id) >= 1")
        except Exception:  # noqa: BLE001 - not created yet
            continue
        victim = found[0] if found else None
    assert victim is not None, proc.communicate()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    again = subprocess.run([sys.executable, str(script), str(spec_path), str(db), "0"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "done" in again.stdout, again.stderr
    all_rows = rows(db)
    assert not [r for r in all_rows if r["state"] == "running"]
    counted = [r for r in all_rows if r["state"] == "complete"]
    assert len(counted) == 4  # exactly the trials asked for
    killed = next(r for r in all_rows if r["id"] == victim["id"])
    assert killed["state"] == "failed" and killed["error"].startswith("interrupted")
    # the interrupted candidate was evaluated again, once, by the resumed run
    retried = [r for r in counted if r["choices"] == victim["choices"]
               and r["duplicate_of"] is None]
    assert len(retried) == 1 and retried[0]["number"] > victim["number"]
    for r in counted:
        eps = query(db, "SELECT epoch FROM epochs WHERE trial_id = ?", (r["id"],))
        if r["duplicate_of"] is None:
            assert sorted(e["epoch"] for e in eps) == [1, 2, 3]
        assert json.loads(r["objective"]) == [r["params"] / 1e5]


def test_on_ray_a_picklable_objective_trains_in_the_workers_on_own_data(tmp_path,
                                                                         ray_session):
    spec = small(tmp_path, trials=4)
    x = torch.randn(90, 64)
    y = torch.arange(90) % 10
    data = autoarch.Dataset.from_tensors(x[:60], y[:60], x[60:], y[60:])

    def fit(model, trial):  # pickled by value: everything it needs is inside
        import os

        w = next(v for v in trial.choices.values() if isinstance(v, int))
        value = w / 100 + (0.5 if "relu" in trial.choices.values() else 0.0)
        for epoch in (1, 2):
            trial.report(epoch, val_accuracy=value * epoch / 2, pid=os.getpid())
        return {"val_accuracy": value, "pid": os.getpid(), "rows": len(trial.data.x_train)}

    db = tmp_path / "r.db"
    result = autoarch.search(spec, objective=fit, data=data, backend="ray", workers=2, db=db,
                             seed=5)
    assert result.counted == 4
    for r in rows(db):
        assert r["state"] == "complete", r["error"]
        assert json.loads(r["objective"]) == [score(json.loads(r["choices"]))]
        metrics = json.loads(r["metrics"])
        assert metrics["pid"] != os.getpid() and metrics["rows"] == 60
        if r["duplicate_of"] is None:
            eps = query(db, "SELECT * FROM epochs WHERE trial_id = ? ORDER BY epoch",
                        (r["id"],))
            assert [e["epoch"] for e in eps] == [1, 2]
            assert [json.loads(e["metrics"])["pid"] for e in eps] == [metrics["pid"]] * 2


def _arrays(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(150, 64, generator=g)
    y = (x[:, :10].argmax(-1))
    return x[:90], y[:90], x[90:120], y[90:120], x[120:], y[120:]


def test_the_built_in_trainer_on_own_tensors_equals_the_same_arrays_from_npz(tmp_path):
    import numpy as np

    spec = small(tmp_path, trials=3)
    parts = _arrays()
    path = tmp_path / "d.npz"
    np.savez(path, **{k: a.numpy() for k, a in zip(
        ("x", "y", "x_val", "y_val", "x_test", "y_test"), parts, strict=True)})
    a = autoarch.search(spec, data=autoarch.Dataset.from_tensors(*parts), db=tmp_path / "a.db",
                        seed=0)
    b = autoarch.search(spec, data=f'npz("{path}")', db=tmp_path / "b.db", seed=0)
    ra, rb = rows(tmp_path / "a.db"), rows(tmp_path / "b.db")
    assert [r["choices"] for r in ra] == [r["choices"] for r in rb]
    for x, y in zip(ra, rb, strict=True):
        ma, mb = json.loads(x["metrics"]), json.loads(y["metrics"])
        for k in ("val_loss", "val_accuracy", "test_loss", "test_accuracy", "train_loss"):
            assert ma[k] == mb[k], k
    assert a.counted == b.counted == 3


def test_a_resume_on_changed_tensors_is_refused_and_on_the_same_ones_goes_on(tmp_path):
    spec = small(tmp_path, trials=1)
    db = tmp_path / "r.db"
    parts = _arrays()
    autoarch.search(spec, data=autoarch.Dataset.from_tensors(*parts), db=db, name="r")
    changed = [p.clone() for p in parts]
    changed[0][3, 5] += 1.0
    with pytest.raises(SearchError, match="changed since run 'r' started"):
        autoarch.search(spec, data=autoarch.Dataset.from_tensors(*changed), db=db, name="r",
                        trials=2)
    again = autoarch.search(spec, data=autoarch.Dataset.from_tensors(
        *[p.clone() for p in parts]), db=db, name="r", trials=2)
    assert again.counted == 2


OPS = '''
from typing import Literal
import torch
from torch import nn
import autoarch

@autoarch.op(shape=lambda x, out, **_: (*x[:-1], out))
class ScaledLinear(nn.Module):
    def __init__(self, x: autoarch.Shape, out: int, scale: Literal["one", "half"] = "one"):
        super().__init__()
        self.fc = nn.Linear(x[-1], out)
        self.k = 1.0 if scale == "one" else 0.5
    def forward(self, x):
        return self.fc(x) * self.k
'''


def test_on_ray_a_user_op_from_a_plugin_file_builds_and_trains_in_the_workers(tmp_path,
                                                                               ray_session):
    plugin = tmp_path / "scaled_ops.py"
    plugin.write_text(OPS)
    autoarch.load_plugins(str(plugin))
    try:
        spec = spec_of(tmp_path, """
            model m(x: [64]) -> [10] {
              h = act(scaled_linear(x, choice(8, 16), scale = choice(one, half)), relu)
              return linear(h, 10)
            }
            train { data = digits  epochs = 1 }
            search { strategy = random  trials = 3 }
        """)
        db = tmp_path / "r.db"
        result = autoarch.search(spec, backend="ray", workers=2, db=db, seed=1)
        assert result.counted == 3
        for r in rows(db):
            assert r["state"] == "complete", r["error"]
            w = width(json.loads(r["choices"]))
            assert r["params"] == 64 * w + w + 10 * w + 10  # two linears
    finally:
        from autoarch.compiler.ops.registry import unregister

        unregister("scaled_linear")


@pytest.mark.parametrize("kwargs,message", [
    ({"objective": 3}, "objective must be a function fn(model, trial), got int"),
    ({"objective": lambda model: 1.0}, "cannot be called as fn(model, trial)"),
    ({"data": 5}, "data must be a bundled data set name, spec text or an autoarch.Dataset"),
])
def test_a_wrong_objective_or_data_is_one_line_and_writes_nothing(tmp_path, kwargs, message):
    spec = small(tmp_path, trials=1)
    db = tmp_path / "r.db"
    with pytest.raises(autoarch.CommandError) as e:
        autoarch.search(spec, db=db, **kwargs)
    assert message in e.value.message and "\n" not in e.value.format()
    assert not list(tmp_path.glob("r.db*"))


def test_an_objective_that_cannot_travel_to_ray_is_one_line_and_writes_nothing(tmp_path):
    pytest.importorskip("ray.tune")
    import threading

    lock = threading.Lock()

    def fit(model, trial):
        with lock:
            return 0.5

    spec = small(tmp_path, trials=1)
    with pytest.raises(autoarch.CommandError, match="cannot be sent to Ray's workers: "
                                                    "TypeError: cannot pickle"):
        autoarch.search(spec, objective=fit, backend="ray", db=tmp_path / "r.db")
    assert not list(tmp_path.glob("r.db*"))


def test_epochs_of_the_search_reach_the_function_and_the_timeout_stops_it_at_a_report(
        tmp_path):
    spec = small(tmp_path, trials=3)
    seen = []

    def fit(model, trial):
        seen.append(trial.epochs)
        for epoch in range(1, trial.epochs + 1):
            time.sleep(0.4)
            trial.report(epoch, val_accuracy=0.5)
        return 0.5

    db = tmp_path / "r.db"
    start = time.monotonic()
    result = autoarch.search(spec, objective=fit, epochs=4, db=db, timeout=1.0, name="r")
    assert time.monotonic() - start < 30
    assert seen == [4] and result.stopped.startswith("timeout")
    (r,) = rows(db)
    assert r["state"] == "failed" and r["error"].startswith("interrupted")
    assert json.loads(r["train_config"])["epochs"] == 4
    # reported before the deadline: kept; the candidate is tried again on resume
    assert len(query(db, "SELECT * FROM epochs WHERE trial_id = ?", (r["id"],))) < 4


def test_a_search_on_torch_datasets_equals_the_search_on_the_same_tensors(tmp_path):
    from torch.utils.data import TensorDataset

    spec = small(tmp_path, trials=2)
    parts = _arrays(1)
    sets = [TensorDataset(parts[i], parts[i + 1]) for i in (0, 2, 4)]
    a = autoarch.search(spec, data=autoarch.Dataset.from_datasets(*sets, classes=10),
                        db=tmp_path / "a.db", seed=3)
    b = autoarch.search(spec, data=autoarch.Dataset.from_tensors(*parts, classes=10),
                        db=tmp_path / "b.db", seed=3)
    assert a.counted == b.counted == 2
    ra, rb = rows(tmp_path / "a.db"), rows(tmp_path / "b.db")
    assert [r["choices"] for r in ra] == [r["choices"] for r in rb]
    for x, y in zip(ra, rb, strict=True):
        assert x["state"] == y["state"] == "complete", (x["error"], y["error"])
        assert json.loads(x["metrics"])["val_loss"] == json.loads(y["metrics"])["val_loss"]

"""Ray Tune: `backend = ray` on a Tuner, and autoarch's searcher and trainable in a
user's own Tuner.

A real local Ray in every test (the session's, in its own temp dir, or one the
test starts: a driver process killed with SIGKILL, a two-node cluster of two `ray
start` processes). Every expectation is read from the history with sqlite3, or
from what Tune itself returns (its ResultGrid, the resources Ray assigned).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from search_testing import cli, env, query, run_cli, spec_of

import autoarch

ray = pytest.importorskip("ray")
from ray import tune  # noqa: E402

from autoarch.search.tune import SpecSearcher, trainable  # noqa: E402

#: widths from 1 (hardly learns) to 64, two learning rates: quality varies a lot
WIDE = """
model net(x: [64]) -> [10] {
  h = act(linear(x, choice(1, 2, 4, 32, 48, 64)), choice(relu, tanh))
  return linear(h, 10)
}
train { data = digits  epochs = EPOCHS  optimizer = adamw(lr = choice(0.00001, 0.01)) }
search { strategy = random  trials = 8  backend = ray  workers = 2 }
"""


def trials(db: Path) -> list:
    return query(db, "SELECT * FROM trials ORDER BY number")


def epochs_of(db: Path, trial_id: int) -> list[int]:
    return [r[0] for r in query(db, "SELECT epoch FROM epochs WHERE trial_id = ? ORDER BY "
                                    "epoch", (trial_id,))]


def ran(db: Path) -> list:
    """Trials that ran to their end (what a run counts)."""
    return [t for t in trials(db) if t["state"] in ("complete", "pruned")
            or (t["state"] == "failed" and not (t["error"] or "").startswith("interrupted"))]


def test_asha_stops_some_trials_early_and_the_history_shows_it(tmp_path, ray_session):
    spec = spec_of(tmp_path, WIDE.replace("EPOCHS", "6"))
    db = tmp_path / "runs.db"
    result = autoarch.search(spec, db=db, seed=4, trials=10, pruner="asha")
    rows = ran(db)
    assert result.counted == 10 and len(rows) == 10
    assert not [t for t in trials(db) if t["state"] == "running"]
    pruned = [t for t in rows if t["state"] == "pruned" and t["duplicate_of"] is None]
    complete = [t for t in rows if t["state"] == "complete" and t["duplicate_of"] is None]
    assert pruned and complete
    for t in complete:
        assert epochs_of(db, t["id"]) == [1, 2, 3, 4, 5, 6]
    for t in pruned:
        seen = epochs_of(db, t["id"])
        assert seen == list(range(1, len(seen) + 1)) and len(seen) < 6
        assert json.loads(t["metrics"])["epochs"] == len(seen)
    # ASHA's rungs are at epochs 1 and 3 (grace 1, reduction 3): a trial stops at one
    assert {len(epochs_of(db, t["id"])) for t in pruned} <= {1, 3}


def test_a_twin_proposed_while_its_candidate_trains_waits_for_it(tmp_path, ray_session):
    """Two candidates, two workers, six trials: each candidate trains once; the
    proposals of a candidate already training are recorded as its duplicates."""
    spec = spec_of(tmp_path, """
        model two(x: [64]) -> [10] {
          return linear(act(linear(x, 16), choice(relu, tanh)), 10)
        }
        train { data = digits  epochs = 2 }
        search { strategy = random  trials = 6  backend = ray  workers = 2 }
    """)
    db = tmp_path / "runs.db"
    result = autoarch.search(spec, db=db, seed=0)
    rows = trials(db)
    assert result.counted == 6 and len(rows) == 6
    trained = [t for t in rows if t["duplicate_of"] is None]
    assert len(trained) == len({t["arch_hash"] for t in rows}) <= 2
    by_number = {t["number"]: t for t in rows}
    for t in rows:
        if t["duplicate_of"] is not None:
            twin = by_number[t["duplicate_of"]]
            assert twin["arch_hash"] == t["arch_hash"] and twin["duplicate_of"] is None
            assert t["objective"] == twin["objective"] and t["state"] == twin["state"]


def test_spec_searcher_in_a_users_tuner_with_a_users_trainable(tmp_path, ray_session):
    """The user's trainable scores a candidate by a formula of its choices; the history
    holds exactly those scores, the invalid proposals, and the Tune trials."""
    spec = spec_of(tmp_path, """
        model m(x: [64]) -> [10] {
          return linear(act(linear(x, choice(4, 8, 16, 32, 64)), choice(relu, tanh)), 10)
        }
        train { data = digits }
        search { constraint params <= 1000 }
    """)
    db = tmp_path / "runs.db"
    searcher = SpecSearcher(spec, strategy="random", trials=6, seed=1, db=db, name="mine")

    def score(choices: dict) -> float:
        width = next(v for k, v in choices.items() if isinstance(v, int))
        return 1.0 / width + (0.5 if "relu" in choices.values() else 0.0)

    source = spec.source

    def users_trainable(config: dict) -> None:
        choices = json.loads(config["autoarch"]["choices"])
        model = autoarch.compile(autoarch.loads(source, "m.spec"), choices)  # as they like
        assert sum(p.numel() for p in model.parameters()) <= 1000
        for epoch in (1, 2):
            tune.report({"val_accuracy": score(choices) * epoch / 2, "epoch": epoch})

    tuner = tune.Tuner(users_trainable, tune_config=tune.TuneConfig(
        search_alg=searcher, num_samples=-1, max_concurrent_trials=2),
        run_config=tune.RunConfig(storage_path=str(tmp_path / "tune"), verbose=0,
                                  callbacks=[searcher.callback]))
    grid = tuner.fit()
    rows = trials(db)
    assert searcher.result is not None and searcher.result.counted == 6
    invalid = [t for t in rows if t["state"] == "invalid"]
    trained = [t for t in rows if t["state"] == "complete" and t["duplicate_of"] is None]
    assert len(grid) == len(trained)  # invalid and duplicate proposals never reached Tune
    for t in invalid:  # width 64: 64*64+64 + 64*10+10 = 4,874 params
        assert t["params"] > 1000
    for t in trained:
        assert json.loads(t["objective"]) == [score(json.loads(t["choices"]))]
        assert epochs_of(db, t["id"]) == [1, 2]
    best = max(trained, key=lambda t: json.loads(t["objective"])[0])
    assert searcher.result.best[0]["number"] == best["number"]
    assert query(db, "SELECT status FROM runs")[0][0] == "finished"


def test_a_worker_killed_mid_trial_fails_that_trial_and_the_search_goes_on(tmp_path,
                                                                           ray_session):
    spec = spec_of(tmp_path, """
        model m(x: [64]) -> [10] {
          return linear(act(linear(x, choice(8, 16, 24)), relu), 10)
        }
        train { data = digits }
    """)
    db = tmp_path / "runs.db"
    searcher = SpecSearcher(spec, strategy="grid", trials=3, db=db)

    def dies_on_width_16(config: dict) -> None:
        choices = json.loads(config["autoarch"]["choices"])
        if 16 in choices.values():
            os.kill(os.getpid(), signal.SIGKILL)  # the worker process dies
        tune.report({"val_accuracy": 0.5, "epoch": 1})

    tune.Tuner(dies_on_width_16, tune_config=tune.TuneConfig(search_alg=searcher,
                                                             num_samples=-1),
               run_config=tune.RunConfig(storage_path=str(tmp_path / "tune"), verbose=0,
                                         callbacks=[searcher.callback])).fit()
    rows = trials(db)
    assert [t["state"] for t in rows].count("complete") == 2
    failed = [t for t in rows if t["state"] == "failed"]
    assert len(failed) == 1 and 16 in json.loads(failed[0]["choices"]).values()
    assert failed[0]["error"].startswith("Ray trial failed")
    assert searcher.result.counted == 3


def test_resources_and_data_files_reach_the_trial_without_the_file(tmp_path, ray_session):
    """autoarch's trainable in a user's Tuner, with a custom resource: the trial sees
    what Ray assigned; the csv file is deleted before the trials start, and they
    train on the copy that travelled with the trainable."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 4))
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    csv = tmp_path / "table.csv"
    csv.write_text("a,b,c,d,label\n" + "".join(
        ",".join(f"{v:.5f}" for v in row) + f",{t}\n" for row, t in zip(x, y, strict=True)))
    spec = spec_of(tmp_path, """
        model m(x: [4]) -> [2] {
          return linear(act(linear(x, choice(4, 8)), relu), 2)
        }
        train { data = csv("table.csv", target = "label")  epochs = 2 }
    """)
    db = tmp_path / "runs.db"
    searcher = SpecSearcher(spec, strategy="grid", trials=2, db=db)
    train = tune.with_resources(trainable(spec), {"cpu": 1, "slot": 1})
    csv.unlink()
    tune.Tuner(train, tune_config=tune.TuneConfig(search_alg=searcher, num_samples=-1),
               run_config=tune.RunConfig(storage_path=str(tmp_path / "tune"), verbose=0,
                                         callbacks=[searcher.callback])).fit()
    rows = trials(db)
    assert [t["state"] for t in rows] == ["complete", "complete"], [t["error"] for t in rows]
    for t in rows:
        m = json.loads(t["metrics"])
        assert m["worker_resources"] == {"CPU": 1.0, "slot": 1.0}
        assert m["worker_pid"] != os.getpid()
        assert 0.0 <= m["val_accuracy"] <= 1.0 and epochs_of(db, t["id"]) == [1, 2]
    # the weights of the best trial came from its Tune checkpoint
    best = searcher.result.best[0]
    blob = query(db, "SELECT data FROM weights WHERE trial_id = ?", (best["id"],))[0][0]
    (tmp_path / "best.pt").write_bytes(blob)
    model = autoarch.load_model(tmp_path / "best.pt")
    assert sum(p.numel() for p in model.parameters()) == best["params"]


def test_without_ray_backend_ray_is_one_line_and_writes_nothing(tmp_path):
    spec = tmp_path / "t.spec"
    spec.write_text(WIDE.replace("EPOCHS", "1"))
    hide = ("import sys, runpy; sys.modules['ray'] = None; sys.argv = ['autoarch'] + "
            "sys.argv[1:]; runpy.run_module('autoarch', run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", hide, "search", str(spec), "--db",
                           str(tmp_path / "runs.db")], cwd=tmp_path, env=env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "Traceback" not in proc.stdout + proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and 'pip install "autoarch[ray]"' in lines[0], proc.stderr
    assert not list(tmp_path.glob("runs.db*"))


# ---- real processes: a killed driver, a two-node cluster ----------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_driver_killed_with_sigkill_resumes_with_the_same_command(tmp_path):
    spec = tmp_path / "wide.spec"
    spec.write_text(WIDE.replace("EPOCHS", "30").replace("trials = 8", "trials = 5"))
    db = tmp_path / "runs.db"
    ray_tmp = tempfile.mkdtemp(prefix="aa-", dir="/tmp")  # Ray's socket paths must be short
    extra = {"RAY_TMPDIR": ray_tmp, "RAY_AUTH_MODE": "disabled"}
    args = cli("search", spec, "--db", db, "--name", "r", "--seed", "2")
    proc = subprocess.Popen(args, cwd=tmp_path, env={**env(), **extra},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _kill_then_resume(proc, args, db, tmp_path, extra)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


def _kill_then_resume(proc: subprocess.Popen, args: list[str], db: Path, tmp_path: Path,
                      extra: dict[str, str]) -> None:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
        try:
            running = query(db, "SELECT t.id FROM trials t WHERE state = 'running' AND "
                                "(SELECT count(*) FROM epochs e WHERE e.trial_id = t.id) >= 2")
        except Exception:  # noqa: BLE001 - the file or its schema is not there yet
            continue
        if running:
            break
    else:
        proc.kill()
        raise AssertionError(f"no trial got to its second epoch: {proc.communicate()}")
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    left = [t["id"] for t in trials(db) if t["state"] == "running"]
    assert left  # the kill left trials running in the history
    again = run_cli(*args[3:], cwd=tmp_path, extra_env=extra, timeout=600)
    assert again.returncode == 0, again.stderr
    rows = trials(db)
    assert not [t for t in rows if t["state"] == "running"]
    assert len(ran(db)) == 5  # exactly the trials asked for: none lost, none twice
    numbers = [t["number"] for t in rows]
    assert len(numbers) == len(set(numbers))
    for t in rows:
        if t["id"] in left:
            assert t["state"] == "failed" and t["error"].startswith("interrupted")
    # each trial that ran to its end has each of its epochs once
    for t in ran(db):
        seen = epochs_of(db, t["id"])
        if t["duplicate_of"] is None and t["state"] == "complete":
            assert seen == list(range(1, 31))
    assert query(db, "SELECT status FROM runs")[0][0] == "finished"


def test_a_two_node_cluster_runs_trials_on_both_nodes(tmp_path):
    """Two `ray start` processes (one CPU and one declared GPU each) make a cluster;
    `RAY_ADDRESS=... autoarch search --backend ray` trains on both, each trial with
    the half GPU it asked for, on a csv file only the driver has."""
    port = _free_port()
    temp = Path(tempfile.mkdtemp(prefix="aa-", dir="/tmp"))  # short: Ray's socket paths
    ray_bin = str(Path(sys.executable).with_name("ray"))
    base = {**env(), "RAY_AUTH_MODE": "disabled"}
    common = ["--block", "--num-cpus=1", "--num-gpus=1", "--disable-usage-stats"]
    head = subprocess.Popen([ray_bin, "start", "--head", f"--port={port}",
                             f"--temp-dir={temp}", "--include-dashboard=false", *common],
                            env=base, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    nodes = [head]
    try:
        time.sleep(1)
        _wait_for_nodes(port, 1)
        nodes.append(subprocess.Popen([ray_bin, "start", f"--address=127.0.0.1:{port}",
                                       *common], env=base, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
        _wait_for_nodes(port, 2)
        rng = np.random.default_rng(1)
        x = rng.normal(size=(200, 6))
        (tmp_path / "d.csv").write_text("a,b,c,d,e,f,y\n" + "".join(
            ",".join(f"{v:.4f}" for v in row) + f",{int(row[0] > row[1])}\n" for row in x))
        spec = tmp_path / "c.spec"
        spec.write_text("""
model c(x: [6]) -> [2] {
  return linear(act(linear(x, choice(4, 8, 12, 16, 20, 24)), choice(relu, tanh)), 2)
}
train { data = csv("d.csv", target = "y")  epochs = 40 }
search { strategy = grid  trials = 6  backend = ray  workers = 2  gpus_per_trial = 0.5 }
""")
        db = tmp_path / "runs.db"
        proc = run_cli("search", spec, "--db", db, cwd=tmp_path, timeout=600,
                       extra_env={"RAY_ADDRESS": f"127.0.0.1:{port}", "RAY_AUTH_MODE":
                                  "disabled"})
        assert proc.returncode == 0, proc.stderr
        rows = [t for t in trials(db) if t["state"] == "complete"]
        assert len(rows) == 6
        metrics = [json.loads(t["metrics"]) for t in rows]
        assert len({m["worker_node"] for m in metrics}) == 2  # both nodes trained
        for m in metrics:
            assert m["worker_resources"] == {"CPU": 1.0, "GPU": 0.5}
            assert math.isfinite(m["val_loss"])
    finally:
        for p in reversed(nodes):
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(temp, ignore_errors=True)


def _wait_for_nodes(port: int, n: int, limit: float = 90) -> None:
    """Until the cluster at ``port`` has ``n`` live nodes (asked from a subprocess)."""
    probe = ("import ray, sys; ray.init(address=sys.argv[1], logging_level='error'); "
             "print(sum(x['Alive'] for x in ray.nodes()))")
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        out = subprocess.run([sys.executable, "-c", probe, f"127.0.0.1:{port}"],
                             env={**env(), "RAY_AUTH_MODE": "disabled"},
                             capture_output=True, text=True, timeout=120)
        if out.returncode == 0 and out.stdout.strip().splitlines()[-1:] == [str(n)]:
            return
        time.sleep(1)
    raise AssertionError(f"the cluster did not reach {n} nodes")


def test_a_searcher_pickled_by_tune_restores_the_run_from_its_history(tmp_path, ray_session):
    """A Tuner that ends early (num_samples = 2) leaves the run at 2 of 4 trials; the
    searcher as Tune pickles it, restored, finishes the run: 4 trials, each candidate
    evaluated once, numbers contiguous."""
    import pickle

    spec = spec_of(tmp_path, """
        model m(x: [64]) -> [10] {
          return linear(act(linear(x, choice(4, 8, 12, 16, 20, 24)), relu), 10)
        }
        train { data = digits }
    """)
    db = tmp_path / "runs.db"
    first = SpecSearcher(spec, strategy="grid", trials=4, seed=3, db=db, name="r")

    def users_trainable(config: dict) -> None:
        choices = json.loads(config["autoarch"]["choices"])
        tune.report({"val_accuracy": 1.0 / max(choices.values())})

    def fit(searcher: SpecSearcher, samples: int) -> None:
        tune.Tuner(users_trainable, tune_config=tune.TuneConfig(search_alg=searcher,
                                                                num_samples=samples),
                   run_config=tune.RunConfig(storage_path=str(tmp_path / "tune"), verbose=0,
                                             callbacks=[searcher.callback])).fit()

    fit(first, 2)
    assert first.result.counted == 2 and first.result.stopped
    assert query(db, "SELECT status FROM runs")[0][0] == "stopped"
    first.save(str(tmp_path / "searcher.json"))
    copy = pickle.loads(pickle.dumps(first))
    copy.restore(str(tmp_path / "searcher.json"))
    fit(copy, -1)
    rows = trials(db)
    assert copy.result.counted == 4 and len(rows) == 4
    assert [t["number"] for t in rows] == [0, 1, 2, 3]
    assert len({t["arch_hash"] for t in rows}) == 4, [(t["number"], t["choices"], t["duplicate_of"]) for t in rows]
    assert query(db, "SELECT status FROM runs")[0][0] == "finished"


@pytest.mark.parametrize("case", ["no-gpu", "no-cluster"])
def test_a_cluster_that_cannot_run_a_trial_is_one_line_and_writes_nothing(tmp_path, case):
    spec = tmp_path / "t.spec"
    spec.write_text(WIDE.replace("EPOCHS", "1"))
    ray_tmp = tempfile.mkdtemp(prefix="aa-", dir="/tmp")
    extra = {"RAY_TMPDIR": ray_tmp, "RAY_AUTH_MODE": "disabled"}
    flags: list[str] = []
    if case == "no-gpu":
        flags = ["--gpus-per-trial", "1"]  # a local Ray on this machine has no GPU
    else:
        extra["RAY_ADDRESS"] = f"127.0.0.1:{_free_port()}"  # nothing listens there
    try:
        proc = run_cli("search", spec, "--db", tmp_path / "runs.db", *flags, cwd=tmp_path,
                       extra_env=extra, timeout=180)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert proc.returncode == 1
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert ("0 GPUs" in lines[0]) if case == "no-gpu" else ("nothing answers" in lines[0])
    assert not list(tmp_path.glob("runs.db*"))


def test_ctrl_c_stops_a_ray_search_as_it_stops_a_local_one(tmp_path):
    """Tune's own SIGINT handler would end the running trials as if they were done;
    autoarch's marks them interrupted and says how to resume."""
    spec = tmp_path / "wide.spec"
    spec.write_text(WIDE.replace("EPOCHS", "5000"))
    db = tmp_path / "runs.db"
    ray_tmp = tempfile.mkdtemp(prefix="aa-", dir="/tmp")
    extra = {"RAY_TMPDIR": ray_tmp, "RAY_AUTH_MODE": "disabled"}
    proc = subprocess.Popen(cli("search", spec, "--db", db), cwd=tmp_path,
                            env={**env(), **extra}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
            try:
                if query(db, "SELECT count(*) FROM epochs")[0][0] >= 2:
                    break
            except Exception:  # noqa: BLE001 - the file or its schema is not there yet
                continue
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert proc.returncode == 130 and "Traceback" not in out + err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "resume with: autoarch search" in lines[0], err
    assert query(db, "SELECT status FROM runs")[0][0] == "interrupted"
    stopped = [t for t in trials(db) if t["state"] not in ("invalid",)]
    assert stopped and all(t["state"] == "failed" and t["error"] == "interrupted"
                           for t in stopped)


def test_spec_searcher_with_two_objectives(tmp_path, ray_session):
    """NSGA-II through Tune: the user's trainable reports the accuracy; the parameter
    count, the second objective, comes from the IR."""
    spec = spec_of(tmp_path, """
        model m(x: [64]) -> [10] {
          return linear(act(linear(x, choice(4, 8, 16, 32)), relu), 10)
        }
        train { data = digits }
        search { objective = [maximize(val_accuracy), minimize(params)] }
    """)
    db = tmp_path / "runs.db"
    searcher = SpecSearcher(spec, strategy="nsga2", trials=4, seed=0, db=db)

    def users_trainable(config: dict) -> None:
        width = max(json.loads(config["autoarch"]["choices"]).values())
        tune.report({"val_accuracy": width / 100})

    tune.Tuner(users_trainable, tune_config=tune.TuneConfig(search_alg=searcher,
                                                            num_samples=-1),
               run_config=tune.RunConfig(storage_path=str(tmp_path / "tune"), verbose=0,
                                         callbacks=[searcher.callback])).fit()
    done = [t for t in trials(db) if t["state"] == "complete"]
    assert searcher.result.counted == 4 and len(done) == 4
    for t in done:
        width = max(json.loads(t["choices"]).values())
        assert json.loads(t["objective"]) == [width / 100, 64 * width + width + width * 10 + 10]
    # every distinct candidate is on the Pareto front (more width: more of both)
    assert len(searcher.result.best) == len({t["arch_hash"] for t in done})

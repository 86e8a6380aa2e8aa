"""`autoarch search`, `history` and `best` as real processes, including a kill -9 and resume."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import torch
from search_testing import env, query, run_cli, write_spec

import autoarch

ROOT = Path(__file__).resolve().parents[2]

def test_search_history_and_best_commands(tmp_path):
    spec = write_spec(tmp_path)
    proc = run_cli("search", spec, "--trials", "3", "--name", "first", "--seed", "2",
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "starting run first: 0/3 trials done" in proc.stdout
    assert proc.stdout.count(" complete ") + proc.stdout.count(" complete  ") >= 1
    assert "history: autoarch.db (run first)" in proc.stdout  # the default --db
    db = tmp_path / "autoarch.db"
    trials = json.loads(run_cli("history", db, "--run", "first", "--json",
                                cwd=tmp_path).stdout)["trials"]
    done = [t for t in trials if t["state"] == "complete"]
    assert len(done) == 3
    runs = json.loads(run_cli("history", db, "--json", cwd=tmp_path).stdout)["runs"]
    assert [(r["name"], r["done"], r["status"]) for r in runs] == [("first", 3, "finished")]
    best = json.loads(run_cli("best", db, "--json", "-o", tmp_path / "best.pt",
                              cwd=tmp_path).stdout)["best"]
    top = max(t["objective"][0] for t in done)
    assert best[0]["objective"] == [top]
    saved = torch.load(tmp_path / "best.pt", weights_only=True)
    assert saved["choices"] == best[0]["choices"]
    model = autoarch.load_model(tmp_path / "best.pt")
    assert model(torch.zeros(2, 64)).shape == (2, 10)
    # the human-readable forms
    assert "first" in run_cli("history", db, cwd=tmp_path).stdout
    table = run_cli("history", db, "--run", "first", cwd=tmp_path).stdout
    assert table.count("complete") == 3
    assert "best" in run_cli("best", db, cwd=tmp_path).stdout


def test_failed_trials_still_exit_zero(tmp_path):
    spec = write_spec(tmp_path)
    text = spec.read_text().replace("choice(relu, gelu, tanh)", "relu")
    spec.write_text(text.replace("epochs = 1", "epochs = 1  optimizer = sgd(lr = 1e12)"))
    proc = run_cli("search", spec, "--trials", "2", "--db", "d.db", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("failed") >= 2 and "no trial completed" in proc.stdout


def test_mistakes_are_located_errors_with_exit_one(tmp_path):
    spec = write_spec(tmp_path)
    proc = run_cli("search", spec, "--strategy", "mtcs", cwd=tmp_path)
    assert proc.returncode == 1 and "unknown strategy 'mtcs'" in proc.stderr
    assert "mcts" in proc.stderr  # the hint
    bad = tmp_path / "bad.spec"
    bad.write_text("model m(x: [4]) -> [2] { return linear(x, 2) }\nsearch { trials = 0 }\n")
    proc = run_cli("search", bad, cwd=tmp_path)
    assert proc.returncode == 1 and "bad.spec:2:19" in proc.stderr and "^" in proc.stderr
    proc = run_cli("history", tmp_path / "none.db", cwd=tmp_path)
    assert proc.returncode == 1 and "no history database" in proc.stderr
    run_cli("search", spec, "--trials", "1", "--name", "a", cwd=tmp_path)
    proc = run_cli("best", "autoarch.db", "--run", "b", cwd=tmp_path)
    assert proc.returncode == 1 and "no run named 'b'" in proc.stderr


def test_kill_9_then_the_same_command_accounts_for_every_trial_once(tmp_path):
    spec = write_spec(tmp_path, epochs=25)
    db = tmp_path / "runs.db"
    cmd = [sys.executable, "-m", "autoarch", "search", str(spec), "--trials", "6", "--db",
           str(db), "--name", "r", "--seed", "4"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    killed_in = None
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
            if not db.exists():
                continue
            try:
                running = query(db, "SELECT t.id FROM trials t WHERE t.state = 'running' AND "
                                    "(SELECT count(*) FROM epochs e WHERE e.trial_id = t.id) "
                                    ">= 2 AND (SELECT count(*) FROM trials WHERE state = "
                                    "'complete') >= 2")
            except sqlite3.OperationalError:  # schema not there yet
                continue
            if running:
                os.kill(proc.pid, signal.SIGKILL)
                killed_in = running[0]["id"]
                break
    finally:
        if proc.poll() is None and killed_in is None:
            proc.kill()
        proc.wait()
    assert killed_in is not None, "the search ended before it could be killed"
    before = query(db, "SELECT * FROM trials ORDER BY number")
    assert [t["state"] for t in before].count("running") == 1

    again = subprocess.run(cmd, cwd=tmp_path, env=env(), capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0, again.stderr
    assert "resuming run r" in again.stdout
    trials = query(db, "SELECT * FROM trials ORDER BY number")
    numbers = [t["number"] for t in trials]
    assert len(numbers) == len(set(numbers))
    states = [t["state"] for t in trials]
    assert "running" not in states
    # the process died in that trial: kept, not counted, its candidate tried once more
    interrupted = [t for t in trials if t["state"] == "failed"
                   and t["error"] == "interrupted: the process died during this trial"]
    assert [t["id"] for t in interrupted] == [killed_in]
    ran = [t for t in trials if t["state"] in ("complete", "pruned")
           or (t["state"] == "failed" and not t["error"].startswith("interrupted"))]
    assert len(ran) == 6  # exactly the budget: none lost, none repeated
    # the interrupted candidate was evaluated again, later
    victim = interrupted[0]
    assert any(t["choices"] == victim["choices"] and t["number"] > victim["number"]
               for t in ran)
    # every trial that was complete before the kill is unchanged
    after = {t["id"]: t for t in trials}
    for t in before:
        if t["state"] == "complete":
            assert after[t["id"]]["objective"] == t["objective"]
    run = query(db, "SELECT * FROM runs")[0]
    assert run["status"] == "finished"

"""`autoarch search` as real processes that are killed, signalled, raced and timed out.

Every case is a real subprocess and a real SQLite file; the expectations are read
from the database with sqlite3 and from the process's exit code and output.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from search_testing import cli, env, query, run_cli, write_spec


def wait_for_running(proc: subprocess.Popen, db: Path, epochs: int = 1,
                     limit: float = 180, after: int = -1) -> sqlite3.Row:
    """Poll the database until a trial numbered above ``after`` is running with
    ``epochs`` epochs recorded."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
        if not db.exists():
            continue
        try:
            found = query(db, "SELECT t.* FROM trials t WHERE t.state = 'running' AND "
                              "t.number > ? AND "
                              "(SELECT count(*) FROM epochs e WHERE e.trial_id = t.id) >= ?",
                          (after, epochs))
        except sqlite3.OperationalError:  # the schema is not there yet
            continue
        if found:
            return found[0]
    proc.kill()
    proc.wait()
    raise AssertionError(f"no trial was seen running (exit {proc.returncode}): "
                         f"{proc.stderr.read() if proc.stderr else ''}")


def _plain_signals() -> None:
    """In the child before it runs: SIGINT and SIGTERM handled as by a fresh shell's
    foreground job, whatever the test process inherited (an ignored or blocked signal
    carries over exec)."""
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})


def start(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(args, cwd=cwd, env=env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_plain_signals)


def signal_dispositions(pid: int) -> str:
    """The process's signal masks as the kernel shows them (for a failure message)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return "(no /proc status)"
    return "; ".join(ln for ln in status.splitlines() if ln.startswith(("Sig", "ShdPnd")))


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_sigterm_and_ctrl_c_leave_the_run_resumable_and_say_how(tmp_path, sig, code):
    spec = write_spec(tmp_path, epochs=200)
    db = tmp_path / "runs.db"
    args = cli("search", spec, "--trials", "2", "--db", db, "--seed", "3")
    proc = start(args, tmp_path)
    victim = wait_for_running(proc, db)
    proc.send_signal(sig)
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        masks = signal_dispositions(proc.pid)
        proc.kill()
        proc.wait()
        pytest.fail(f"still running 60 s after {sig.name}: {masks}")
    assert proc.returncode == code, err
    assert "Traceback" not in out + err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "resume with: autoarch search" in lines[0]
    assert "--name small-1" in lines[0]
    run_row = query(db, "SELECT * FROM runs")[0]
    assert run_row["status"] == "interrupted"
    t = query(db, "SELECT * FROM trials WHERE id = ?", (victim["id"],))[0]
    assert t["state"] == "failed" and t["error"] == "interrupted"  # not left running
    # the printed command resumes the run: the interrupted candidate is evaluated again
    command = lines[0].split("resume with: ", 1)[1]
    import shlex

    resumed = run_cli(*shlex.split(command)[1:], "--epochs", "1", cwd=tmp_path)
    assert resumed.returncode == 1 and "other settings" in resumed.stderr  # epochs changed
    resumed = run_cli(*shlex.split(command)[1:], cwd=tmp_path, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    trials = query(db, "SELECT * FROM trials ORDER BY number")
    again = [r for r in trials if r["choices"] == victim["choices"] and r["id"] != victim["id"]]
    assert again and again[0]["state"] == "complete"


def test_a_candidate_that_kills_the_process_twice_is_failed_not_retried_forever(tmp_path):
    spec = write_spec(tmp_path, epochs=300)
    db = tmp_path / "runs.db"
    args = cli("search", spec, "--trials", "2", "--db", db, "--name", "r", "--seed", "5")
    proc = start(args, tmp_path)
    first = wait_for_running(proc, db)
    os.kill(proc.pid, signal.SIGKILL)  # as the out-of-memory killer does
    proc.wait()
    proc = start(args, tmp_path)  # the resume evaluates the killed candidate first
    second = wait_for_running(proc, db, after=first["number"])
    assert second["choices"] == first["choices"] and second["id"] != first["id"]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = query(db, "SELECT count(*) AS n FROM trials")[0]["n"]
    # third time: the candidate is recorded failed at once and the search goes on
    proc = start(args, tmp_path)
    third = wait_for_running(proc, db, after=second["number"])
    assert third["choices"] != first["choices"]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    rows = query(db, "SELECT * FROM trials ORDER BY number")
    same = [r for r in rows if r["choices"] == first["choices"]]
    assert len(same) == 2  # evaluated at most once more after the first interruption
    assert same[0]["error"].startswith("interrupted")  # not counted
    assert same[1]["state"] == "failed" and "twice" in same[1]["error"]  # counted
    assert before == len(same)  # nothing else had been proposed in between


def test_a_second_process_on_a_run_in_use_is_refused(tmp_path):
    spec = write_spec(tmp_path, epochs=60)
    db = tmp_path / "runs.db"
    args = cli("search", spec, "--trials", "2", "--db", db, "--name", "r", "--seed", "1")
    first = start(args, tmp_path)
    wait_for_running(first, db)
    second = subprocess.run(args, cwd=tmp_path, env=env(), capture_output=True, text=True,
                            timeout=120)
    assert second.returncode == 1
    err = [ln for ln in second.stderr.splitlines() if ln.strip()]
    assert len(err) == 1 and "in use" in err[0] and "Traceback" not in second.stderr
    out, errs = first.communicate(timeout=600)
    assert first.returncode == 0, errs
    rows = query(db, "SELECT * FROM trials ORDER BY number")
    assert [r["state"] for r in rows] == ["complete", "complete"]  # the first run, untouched
    # a different run of the same database is not blocked
    other = run_cli("search", spec, "--trials", "1", "--epochs", "1", "--db", db, "--name", "s",
                    cwd=tmp_path)
    assert other.returncode == 0, other.stderr


def test_timeout_stops_a_running_trial_at_the_deadline(tmp_path):
    spec = write_spec(tmp_path, epochs=100_000)  # hours of training, were it not stopped
    db = tmp_path / "runs.db"
    t0 = time.monotonic()
    proc = run_cli("search", spec, "--trials", "3", "--db", db, "--timeout", "3", cwd=tmp_path,
                   timeout=120)
    took = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr
    assert "timeout after 3 s" in proc.stdout
    rows = query(db, "SELECT * FROM trials")
    assert len(rows) == 1 and rows[0]["state"] == "failed"
    assert rows[0]["error"] == "interrupted: the search's timeout was reached"
    assert query(db, "SELECT status FROM runs")[0][0] == "stopped"
    assert took < 60  # one epoch is ~0.1 s; the trial alone would run for hours


def test_backend_ray_without_ray_names_the_extra_and_writes_nothing(tmp_path):
    spec = write_spec(tmp_path, epochs=1)
    db = tmp_path / "runs.db"
    code = ("import sys; sys.modules['ray'] = None; sys.argv = ['autoarch'] + sys.argv[1:]; "
            "from autoarch.cli import main; main()")
    proc = subprocess.run([sys.executable, "-c", code, "search", str(spec), "--backend", "ray",
                           "--db", str(db)], cwd=tmp_path, env=env(), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "autoarch[ray]" in lines[0]
    assert not db.exists()


@pytest.mark.parametrize("flag,value", [("--trials", str(10**30)), ("--epochs", "0"),
                                        ("--seed", str(2**40)), ("--timeout", "nan"),
                                        ("--workers", "0"), ("--data", "csv(")])
def test_bad_flag_values_are_one_line_errors(tmp_path, flag, value):
    spec = write_spec(tmp_path, epochs=1)
    proc = run_cli("search", spec, flag, value, "--db", tmp_path / "runs.db", cwd=tmp_path)
    assert proc.returncode == 1
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and flag in lines[0], proc.stderr
    assert not (tmp_path / "runs.db").exists()

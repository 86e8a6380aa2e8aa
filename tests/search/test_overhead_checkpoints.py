"""The history's checkpoints, copied into the database file by a thread of the writer
(search/history.py ``_Checkpoints``) rather than by the commit that overflows the WAL:
the WAL stays bounded, readers see every row, and a search killed while the thread
checkpoints resumes with a sound database that agrees with its journal.

Real SQLite files throughout, read back with sqlite3; the kills are real processes.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from search_testing import env, query, run_cli, write_spec
from test_overhead_journal import assert_agrees, rows, studies

import autoarch.search.history as history_mod
from autoarch.search.history import History


def wal(db: Path) -> Path:
    return db.with_name(db.name + "-wal")


def test_the_thread_checkpoints_and_the_wal_stays_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(history_mod, "CHECKPOINT_PAGES", 20)
    monkeypatch.setattr(history_mod, "CHECKPOINT_EVERY_S", 0.0)
    db = tmp_path / "h.db"
    h = History(db)
    h.db.execute("PRAGMA wal_autocheckpoint = 0")  # (no backstop: the thread alone)
    run_id = h.create_run(name="r", spec_text="s", strategy="random")
    limit = 20 * (4096 + 24)
    sizes, payload = [], os.urandom(3000).hex()  # about two pages a row
    for epoch in range(300):  # 600 pages: 30 times the limit
        with h.transaction():
            h.add_supernet_epoch(run_id, {"epoch": epoch})
            h.update_run(run_id, config=f'"{payload}{epoch}"')
        sizes.append(wal(db).stat().st_size)
        time.sleep(0.002)
    names = [t.name for t in threading.enumerate()]
    assert any(n.startswith("autoarch checkpoints") for n in names), names
    # the WAL started over again and again (without a checkpoint the file would hold
    # all 600 pages, and the writer's own are off): the thread checkpointed
    assert max(sizes) < 10 * limit, max(sizes)
    assert sum(1 for a, b in zip(sizes, sizes[1:], strict=False) if b < a) >= 3
    n = query(db, "SELECT count(*) AS n FROM supernet_epochs")[0]["n"]
    assert n == 300
    h.close()
    assert not wal(db).exists()  # the writer, closing last, checkpointed the rest
    assert not any(t.name.startswith("autoarch checkpoints") and t.is_alive()
                   for t in threading.enumerate())
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT count(*) FROM supernet_epochs").fetchone()[0] == 300
    finally:
        conn.close()


#: ``autoarch ARGS`` with a checkpoint after nearly every commit: a kill at any moment
#: is likely to land while the thread copies the WAL into the database
CHECKPOINTING = (
    "import sys\n"
    "import autoarch.search.history as h\n"
    "h.CHECKPOINT_PAGES, h.CHECKPOINT_EVERY_S = 2, 0.0\n"
    "from autoarch.cli import main\n"
    "sys.argv = ['autoarch', *sys.argv[1:]]\n"
    "main()\n"
)


def test_a_search_killed_while_it_checkpoints_resumes_sound_and_agreeing(tmp_path):
    spec = write_spec(tmp_path, epochs=1)
    db = tmp_path / "runs.db"
    args = ["search", spec, "--trials", "20", "--db", db, "--name", "r", "--seed", "5"]
    for kill, done_before in enumerate((2, 5, 8)):
        proc = subprocess.Popen([sys.executable, "-c", CHECKPOINTING, *map(str, args)],
                                cwd=tmp_path, env=env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
            try:
                if query(db, "SELECT count(*) AS n FROM trials WHERE state = 'complete'"
                         )[0]["n"] >= done_before:
                    break
            except sqlite3.Error:  # the schema is not there yet
                continue
        time.sleep(0.05 * kill)  # (somewhere else in the trial each time)
        assert proc.poll() is None, proc.communicate()[1]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert query(db, "PRAGMA integrity_check")[0][0] == "ok"
    done = run_cli(*args, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "rebuilt" not in done.stdout + done.stderr  # mended, not rebuilt
    assert query(db, "PRAGMA integrity_check")[0][0] == "ok"
    recorded = rows(db, "r")
    ran = [r for r in recorded.values() if r["state"] in ("complete", "pruned") or (
        r["state"] == "failed" and not r["error"].startswith("interrupted"))]
    assert len(ran) == 20  # none lost, none counted twice
    assert all(r["state"] != "running" for r in recorded.values())
    # (a kill between a proposal's ask and its row leaves the journal a failed trial
    # that the history skips: the numbers stay lined up)
    assert_agrees(studies(db)["r"], db, "r", gaps_ok=True)

"""The history database as a file: made whole or not at all, ours only, read without
writing, damage told in one line, a run locked across processes, an unused file removed.

The references are the operating system's and SQLite's own: processes SIGKILLed at
every SQL statement, file bytes, mtimes and folder listings before and after, the
test's own sqlite3 connections, the schema as docs/search.md documents it, and root
without the capability to ignore file permissions (a real read-only file).
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from autoarch.search.history import History, HistoryError

ROOT = Path(__file__).resolve().parents[2]
#: the mark a history database carries (``PRAGMA application_id``): the bytes "AAhd"
MARK = int.from_bytes(b"AAhd", "big")
PR_CAPBSET_DROP, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 24, 1, 2  # <linux/prctl.h>


# -- helpers


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "AUTOARCH_DEBUG"}


def python(code: str, *args: str | Path, preexec_fn: Callable[[], None] | None = None,
           cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
                          env=env(), capture_output=True, text=True, timeout=300, cwd=cwd,
                          preexec_fn=preexec_fn)


def autoarch_cli(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "autoarch", *map(str, args)], cwd=cwd,
                          env=env(), capture_output=True, text=True, timeout=300)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    return proc


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


def snapshot(folder: Path) -> dict[str, tuple[str, int, int]]:
    """Every entry of ``folder``: its bytes' hash, mtime (ns) and size."""
    out = {}
    for p in sorted(folder.iterdir()):
        st = p.stat()
        digest = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        out[p.name] = (digest, st.st_mtime_ns, st.st_size)
    return out


def without_dac_override() -> None:
    """In the child: root without the capabilities that let it ignore permissions."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def read_only_runner() -> Callable[[], None] | None:
    if os.geteuid() != 0:
        return None
    probe = subprocess.run(["true"], preexec_fn=without_dac_override, check=False)
    if probe.returncode != 0:
        pytest.skip("cannot drop CAP_DAC_OVERRIDE here: no real read-only file for root")
    return without_dac_override


def documented_schema() -> dict[str, set[str]]:
    """Tables and columns as the table in docs/search.md lists them."""
    text = (ROOT / "docs" / "search.md").read_text()
    schema = {}
    for line in text.splitlines():
        m = re.match(r"\| `(\w+)` \| (.*?) \| (.*) \|$", line)
        if not m:
            continue
        table, key, columns = m.groups()
        while re.search(r"\([^()]*\)", columns):  # drop remarks, nested ones too
            columns = re.sub(r"\([^()]*\)", "", columns)
        schema[table] = set(re.findall(r"`(\w+)`", key)) | set(re.findall(r"`(\w+)`", columns))
    assert set(schema) == {"runs", "candidates", "trials", "epochs", "weights",
                           "supernet_epochs", "supernet_scores"}, schema
    return schema


def whole(schema: dict[str, set[str]], documented: dict[str, set[str]]) -> bool:
    """The documented tables, each with at least its documented columns."""
    return set(schema) == set(documented) and all(documented[t] <= schema[t] for t in schema)


# (plain connections: a ``mode=ro`` one would leave -wal and -shm files behind)


def schema_of(db: Path) -> dict[str, set[str]]:
    conn = sqlite3.connect(db)
    try:
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%'")]
        return {t: {r[1] for r in conn.execute(f"PRAGMA table_info({t})")} for t in tables}
    finally:
        conn.close()


def pragma(db: Path, name: str) -> int:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(f"PRAGMA {name}").fetchone()[0]
    finally:
        conn.close()


def make_history(db: Path, runs: dict[str, list[tuple[str, float | None]]]) -> None:
    """A history with ``runs``: name -> [(state, objective or None)], through History."""
    h = History(db)
    for name, trials in runs.items():
        run_id = h.create_run(name=name, model="m", spec_text="model m", strategy="random",
                              objectives=json.dumps(["maximize(val_accuracy)"]),
                              trials_requested=len(trials))
        for i, (state, value) in enumerate(trials):
            tid = h.start_trial(run_id, i, choices=json.dumps({"m.w": i}), params=100 + i,
                                flops=200 + i)
            extra = {"objective": [value], "metrics": {"val_accuracy": value}} \
                if value is not None else {"error": "boom"}
            h.finish_trial(tid, state, **extra)
    h.close()


# -- 1. the schema is made in one transaction


KILL_DRIVER = r"""
import json, os, signal, sqlite3, sys
from autoarch.search.history import History

folder = sys.argv[1]
real_connect = sqlite3.connect


def create(path, kill_at):
    seen = [0]

    def connect(*args, **kwargs):
        conn = real_connect(*args, **kwargs)

        def trace(sql):
            seen[0] += 1
            if seen[0] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)

        conn.set_trace_callback(trace)
        return conn

    sqlite3.connect = connect
    History(path).close()
    return seen[0]


def in_child(fn):
    pid = os.fork()
    if pid == 0:
        try:
            fn()
        finally:
            os._exit(0)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def count():
    with open(os.path.join(folder, "count"), "w") as f:
        f.write(str(create(os.path.join(folder, "count.db"), 0)))


in_child(count)
n = int(open(os.path.join(folder, "count")).read())
codes = {k: in_child(lambda: create(os.path.join(folder, f"k{k}.db"), k))
         for k in range(1, n + 1)}
print(json.dumps(codes))
"""


def test_a_kill_at_any_statement_of_the_first_creation_leaves_a_usable_file(tmp_path):
    proc = python(KILL_DRIVER, tmp_path)
    assert proc.returncode == 0, proc.stderr
    codes = {int(k): v for k, v in json.loads(proc.stdout).items()}
    assert len(codes) >= 10  # connect, pragmas, BEGIN, every CREATE, the marks, COMMIT, WAL
    assert set(codes.values()) == {-signal.SIGKILL}, codes  # each one really killed
    documented = documented_schema()
    for k in codes:
        db = tmp_path / f"k{k}.db"
        # a reader before any writer: the empty file, or the whole schema
        try:
            History(db, readonly=True).close()
            assert whole(schema_of(db), documented), k
        except HistoryError as e:
            assert "is empty" in e.message or "no history database" in e.message, (k, e)
        h = History(db)  # the next search: it opens, and the schema is whole
        h.close()
        assert whole(schema_of(db), documented), k
        assert pragma(db, "application_id") == MARK
        assert pragma(db, "user_version") == 1
        assert pragma(db, "journal_mode") == "wal"


def test_a_transaction_commits_all_or_nothing(tmp_path):
    db = tmp_path / "h.db"
    h = History(db)
    with pytest.raises(RuntimeError), h.transaction():
        h.create_run(name="a", spec_text="x", strategy="random")
        h.create_run(name="b", spec_text="x", strategy="random")
        raise RuntimeError("half way")
    with h.transaction():
        h.create_run(name="c", spec_text="x", strategy="random")
        with h.transaction():  # joins the outer one
            h.create_run(name="d", spec_text="x", strategy="random")
    h.close()
    conn = sqlite3.connect(db)
    assert [r[0] for r in conn.execute("SELECT name FROM runs ORDER BY id")] == ["c", "d"]
    conn.close()


# -- 2. files that are not ours are refused before anything is written


def _optuna(path: Path) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optuna.create_study(storage=f"sqlite:///{path}", study_name="s")


def _other_app(path: Path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")  # in WAL mode, so that a reader could add files
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    conn.execute("INSERT INTO notes (body) VALUES ('mine')")
    conn.close()


def _our_names_other_id(path: Path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    for t in ("runs", "candidates", "trials", "epochs", "weights"):
        conn.execute(f"CREATE TABLE {t} (x)")
    conn.execute("PRAGMA application_id = 1234")
    conn.close()


def _no_tables(path: Path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA user_version = 7")
    conn.close()


FOREIGN: dict[str, Callable[[Path], None]] = {
    "optuna": _optuna,
    "other-app": _other_app,
    "our-table-names-other-app-id": _our_names_other_id,
    "sqlite-without-tables": _no_tables,
    "random-bytes": lambda p: p.write_bytes(os.urandom(8192)),
    "text": lambda p: p.write_text("not a database\n"),
}


@pytest.mark.parametrize("kind", list(FOREIGN))
def test_a_foreign_file_is_refused_untouched(tmp_path, kind):
    db = tmp_path / "x.db"
    FOREIGN[kind](db)
    assert db.stat().st_size > 0
    conn = None
    try:  # the reference: what SQLite itself sees in the file
        conn = sqlite3.connect(f"file:{db}?immutable=1", uri=True)
        tables = sorted(r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'"))
    except sqlite3.DatabaseError:
        tables = None
    finally:
        if conn is not None:
            conn.close()
    os.utime(db, ns=(1_000_000_000, 1_000_000_000))  # an mtime any write would change
    before = snapshot(tmp_path)
    for kwargs in ({}, {"create": False}, {"readonly": True}):
        with pytest.raises(HistoryError) as e:
            History(db, **kwargs)
        text = e.value.format()
        assert "\n" not in text and "is not an autoarch history database" in text, text
        if tables:
            assert all(t in text for t in tables), (text, tables)
        elif tables is None:
            assert "file is not a database" in text
        assert snapshot(tmp_path) == before, kwargs  # no byte, mtime, -wal, -shm or lock


def _schema_1(path: Path) -> None:
    """A history as autoarch wrote it before the application_id mark (its schema code)."""
    import sqlite_utils

    conn = sqlite3.connect(path, isolation_level=None)
    db = sqlite_utils.Database(conn)
    db.enable_wal()
    db["runs"].create({"id": int, "name": str, "model": str, "spec_file": str,
                       "spec_text": str, "spec_hash": str, "strategy": str, "objectives": str,
                       "config": str, "trials_requested": int, "seed": int, "epochs": int,
                       "study_name": str, "study_storage": str, "started_at": str,
                       "finished_at": str, "status": str, "autoarch_version": str},
                      pk="id", not_null={"name", "spec_text", "strategy", "status"})
    db["runs"].create_index(["name"], unique=True)
    db["candidates"].create({"arch_hash": str, "model": str, "choices": str, "graph": str,
                             "params": int, "trainable_params": int, "nonzero_params": int,
                             "flops": int, "memory": int, "nodes": int, "first_run_id": int,
                             "first_seen_at": str}, pk="arch_hash",
                            foreign_keys=[("first_run_id", "runs", "id")])
    db.execute("""CREATE TABLE trials (id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs(id), number INTEGER NOT NULL,
        arch_hash TEXT REFERENCES candidates(arch_hash), choices TEXT, train_config TEXT,
        state TEXT NOT NULL CHECK (state IN ('running', 'complete', 'failed', 'invalid',
        'pruned')), metrics TEXT, objective TEXT, error TEXT, traceback TEXT,
        duplicate_of INTEGER, params INTEGER, flops INTEGER, started_at TEXT,
        finished_at TEXT, duration_s FLOAT)""")
    db["epochs"].create({"trial_id": int, "epoch": int, "train_loss": float,
                         "train_accuracy": float, "val_loss": float, "val_accuracy": float,
                         "lr": float, "wall_s": float}, pk=("trial_id", "epoch"),
                        foreign_keys=[("trial_id", "trials", "id")])
    db["weights"].create({"trial_id": int, "run_id": int, "data": bytes, "saved_at": str},
                         pk="trial_id", foreign_keys=[("trial_id", "trials", "id"),
                                                      ("run_id", "runs", "id")])
    db.execute("PRAGMA user_version = 1")
    db.execute("INSERT INTO runs (name, spec_text, strategy, status) "
               "VALUES ('old', 'x', 'random', 'finished')")
    conn.close()


def test_a_schema_1_history_without_the_mark_is_still_ours(tmp_path):
    db = tmp_path / "old.db"
    _schema_1(db)
    assert pragma(db, "application_id") == 0
    before = snapshot(tmp_path)
    h = History(db, readonly=True)
    assert [r["name"] for r in h.runs()] == ["old"]
    h.close()
    assert snapshot(tmp_path) == before  # reading it changed nothing
    h = History(db)  # a writer marks it
    h.create_run(name="new", spec_text="x", strategy="random")
    h.close()
    assert pragma(db, "application_id") == MARK
    conn = sqlite3.connect(db)
    assert [r[0] for r in conn.execute("SELECT name FROM runs ORDER BY id")] == ["old", "new"]
    conn.close()


# -- 3. readers never write


def test_a_reader_changes_no_byte_and_makes_no_file(tmp_path):
    db = tmp_path / "h.db"
    make_history(db, {"a": [("complete", 0.5), ("failed", None)]})
    assert pragma(db, "journal_mode") == "wal"
    os.utime(db, ns=(1_000_000_000, 1_000_000_000))
    before = snapshot(tmp_path)
    h = History(db, readonly=True)
    run = h.get_run("a")
    assert [t["state"] for t in h.trials(run["id"])] == ["complete", "failed"]
    assert h.counted(run["id"]) == 2
    h.close()
    proc = autoarch_cli("history", db, "--json", cwd=tmp_path)
    assert proc.returncode == 0 and json.loads(proc.stdout)["runs"][0]["name"] == "a"
    assert autoarch_cli("best", db, cwd=tmp_path).returncode == 0
    assert snapshot(tmp_path) == before  # no -wal, no -shm, no lock file, same mtime
    with pytest.raises(HistoryError, match="no history database"):
        History(tmp_path / "missing.db", readonly=True)
    assert snapshot(tmp_path) == before


def test_a_reader_sees_what_an_open_writer_committed(tmp_path):
    db = tmp_path / "h.db"
    writer = History(db)
    writer.create_run(name="live", spec_text="x", strategy="random")
    assert Path(f"{db}-wal").exists()  # the row is in the WAL, not yet in the main file
    reader = History(db, readonly=True)
    assert [r["name"] for r in reader.runs()] == ["live"]
    reader.close()
    writer.close()


READ = """
import sys
from autoarch.search.history import History, HistoryError
h = History(sys.argv[1], readonly=True)
print(",".join(r["name"] for r in h.runs()))
h.close()
try:
    History(sys.argv[1])
except HistoryError as e:
    print(e.format())
"""

KILLED_WRITER = """
import os, signal, sys
from autoarch.search.history import History
h = History(sys.argv[1])
h.create_run(name="only-in-the-wal", spec_text="x", strategy="random")
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("wal_left", [False, True])
def test_a_read_only_database_in_a_read_only_folder(tmp_path, wal_left):
    how = read_only_runner()
    folder = tmp_path / "ro"
    folder.mkdir()
    db = folder / "h.db"
    make_history(db, {"a": [("complete", 0.5)]})
    names = "a"
    if wal_left:  # a killed writer left its last run in the -wal only
        assert python(KILLED_WRITER, db).returncode == -signal.SIGKILL
        assert Path(f"{db}-wal").stat().st_size > 0
        names = "a,only-in-the-wal"
    for p in folder.iterdir():
        p.chmod(0o444)
    folder.chmod(0o555)
    try:
        before = snapshot(folder)
        proc = python(READ, db, preexec_fn=how)
        assert proc.returncode == 0, proc.stderr
        listed, refused = proc.stdout.strip().splitlines()
        assert listed == names
        assert refused.startswith("error: ") and "read-only" in refused
        assert snapshot(folder) == before
    finally:
        folder.chmod(0o755)


# -- 4. damage is one line


def _good(tmp_path: Path) -> Path:
    db = tmp_path / "h.db"
    make_history(db, {"a": [("complete", 0.5), ("complete", 0.7)]})
    return db


def _corrupt_root_page(db: Path, table: str) -> None:
    conn = sqlite3.connect(db)
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?",
                        [table]).fetchone()[0]
    conn.close()
    with open(db, "r+b") as f:
        f.seek((root - 1) * page_size)
        f.write(b"\xa5" * page_size)


def _truncate(db: Path) -> None:
    with open(db, "r+b") as f:
        f.truncate(db.stat().st_size * 3 // 4)


def _newer_schema(db: Path) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA user_version = 2")
    conn.close()


DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "malformed-runs": (lambda db: _corrupt_root_page(db, "runs"), "is damaged"),
    "malformed-trials": (lambda db: _corrupt_root_page(db, "trials"), "is damaged"),
    "truncated": (_truncate, "is damaged"),
    "random-bytes": (lambda db: db.write_bytes(os.urandom(16384)), "file is not a database"),
    "newer-schema": (_newer_schema, "has history schema 2"),
}


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_damage_is_one_history_error(tmp_path, kind):
    damage, said = DAMAGE[kind]
    db = _good(tmp_path)
    damage(db)
    before = snapshot(tmp_path)
    with pytest.raises(HistoryError) as e:  # a writer refuses it at once
        History(db)
    assert said in e.value.message and "\n" not in e.value.format()
    assert snapshot(tmp_path) == before
    message = None
    try:  # a reader fails when it opens the file, or at the latest when it reads the damage
        h = History(db, readonly=True)
        try:
            for r in h.runs():
                h.trials(r["id"])
        finally:
            h.close()
    except HistoryError as e:
        message = e.format()
    assert message is not None and said in message and "\n" not in message, message
    assert snapshot(tmp_path) == before


def test_text_that_is_not_utf8_is_shown_not_fatal(tmp_path):
    db = _good(tmp_path)
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("UPDATE runs SET model = CAST(X'FF6D' AS TEXT)")
    conn.execute("UPDATE trials SET error = CAST(X'6F6BC3' AS TEXT) WHERE number = 1")
    conn.close()
    h = History(db, readonly=True)
    assert h.runs()[0]["model"] == b"\xffm".decode("utf-8", "replace")
    assert h.trials(1)[1]["error"] == b"ok\xc3".decode("utf-8", "replace")
    h.close()
    proc = autoarch_cli("history", db, "--run", "a", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["run"]["model"] == "\ufffdm"


# -- 5. a run is written by one process at a time


HOLDER = """
import sys
from autoarch.search.history import History
h = History(sys.argv[1])
if sys.argv[2]:
    h.lock_run(sys.argv[2])
print("ready", flush=True)
sys.stdin.read()
h.close()
"""


def hold(db: Path, run: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(HOLDER), str(db), run],
                            env=env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def test_a_run_in_use_is_refused_until_its_process_dies(tmp_path):
    db = tmp_path / "h.db"
    History(db).close()
    holder = hold(db, "r")
    try:
        h = History(db)
        with pytest.raises(HistoryError) as e:
            h.lock_run("r")
        text = e.value.format()
        assert f"run r in {db} is in use by another process (pid {holder.pid})" in text
        assert "\n" not in text
        other = h.lock_run("s")  # another run of the same database is free
        # a third process is refused too
        proc = python("""
            import sys
            from autoarch.search.history import History, HistoryError
            h = History(sys.argv[1])
            for name in ("r", "s", "t"):
                try:
                    h.lock_run(name)
                    print(name, "locked")
                except HistoryError as e:
                    print(name, e.message)
            """, db)
        assert proc.stdout.splitlines() == [
            f"r run r in {db} is in use by another process (pid {holder.pid})",
            f"s run s in {db} is in use by another process (pid {os.getpid()})",
            "t locked"]
        holder.kill()  # SIGKILL: no chance to release anything
        holder.wait()
        t0 = time.monotonic()
        lock = h.lock_run("r")
        assert time.monotonic() - t0 < 1.0
        assert lock.name == "r"
        other.release()
        h.close()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.db"]  # the lock file went too


def test_two_histories_of_one_process_do_not_share_a_run(tmp_path):
    db = tmp_path / "h.db"
    a, b = History(db), History(db)
    a.lock_run("r")
    with pytest.raises(HistoryError, match="in use by another History of this process"):
        b.lock_run("r")
    b.close()  # closing b keeps a's lock: one descriptor per process
    proc = python("""
        import sys
        from autoarch.search.history import History, HistoryError
        try:
            History(sys.argv[1]).lock_run("r")
        except HistoryError as e:
            print(e.message)
        """, db)
    assert "in use by another process" in proc.stdout
    a.unlock_run("r")
    b = History(db)
    b.lock_run("r")
    b.close()
    a.close()


# -- 6. an unused database this History made is removed


def test_close_discards_only_an_unused_file_it_made(tmp_path):
    db = tmp_path / "new.db"
    h = History(db)
    assert h.created and db.exists()
    h.close(discard_if_unused=True)
    assert list(tmp_path.iterdir()) == []  # no .db, -wal, -shm or lock file

    h = History(db)
    h.create_run(name="a", spec_text="x", strategy="random")
    h.close(discard_if_unused=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.db"]  # a run: kept

    empty = tmp_path / "empty.db"
    History(empty).close()
    h = History(empty)  # it exists: not this object's to remove
    assert not h.created
    h.close(discard_if_unused=True)
    assert empty.exists()


def test_close_keeps_a_new_file_another_process_has_open(tmp_path):
    db = tmp_path / "new.db"
    h = History(db)
    holder = hold(db, "")
    try:
        h.close(discard_if_unused=True)
        assert db.exists()
    finally:
        holder.communicate("")
    assert holder.returncode == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.db"]


# -- 7. interrupted trials do not count


def test_every_interruption_is_not_counted(tmp_path):
    db = tmp_path / "h.db"
    h = History(db)
    run_id = h.create_run(name="r", spec_text="x", strategy="random")
    h.db.execute("INSERT INTO candidates (arch_hash) VALUES ('a')")
    rows = [("running", None), ("invalid", "shape"), ("failed", "interrupted"),
            ("failed", "interrupted: the process died during this trial"),
            ("failed", "interrupted: the search's timeout was reached"),
            ("failed", "was interrupted"), ("failed", None), ("failed", "boom"),
            ("pruned", None), ("complete", None)]
    for i, (state, error) in enumerate(rows):
        tid = h.start_trial(run_id, i, arch_hash="a", train_config="{}")
        if state != "running":
            h.finish_trial(tid, state, error=error)
    expected = [i for i, (state, error) in enumerate(rows)
                if state in ("complete", "pruned")
                or (state == "failed" and not (error or "").startswith("interrupted"))]
    assert h.counted(run_id) == len(expected) == 5
    assert h.evaluated(run_id, "a", "{}")["number"] == expected[0] == 5
    h.close()


# -- 8. `best` picks a run with a result


def test_best_without_run_takes_the_latest_run_with_a_complete_trial(tmp_path):
    db = tmp_path / "h.db"
    make_history(db, {"a-1": [("complete", 0.9)], "c-tpe": [("complete", 0.4)],
                      "z": [("failed", None)]})
    proc = autoarch_cli("best", db, "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["run"] == "c-tpe"
    assert json.loads(proc.stdout)["best"][0]["objective"] == [0.4]
    proc = autoarch_cli("best", db, cwd=tmp_path)
    assert "run c-tpe (the latest run with a complete trial)" in proc.stdout
    line = one_line_error(autoarch_cli("best", db, "--run", "c-tpf", cwd=tmp_path))
    assert "no run named 'c-tpf'" in line and "did you mean 'c-tpe'?" in line
    assert "runs: a-1, c-tpe, z" in line and "::" not in line
    none = tmp_path / "none.db"
    make_history(none, {"x": [("failed", None)]})
    line = one_line_error(autoarch_cli("best", none, cwd=tmp_path))
    assert "no run in" in line and "has a complete trial" in line

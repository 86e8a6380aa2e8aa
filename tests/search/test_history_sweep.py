"""Every history command against every kind of --db file that can go wrong.

`autoarch history`, `history --run`, `best`, `best -o` and `search` are run as real
processes on: a missing file, an empty file, random bytes, a truncated and a
page-corrupted autoarch database, an Optuna RDB file, another program's SQLite
database, a read-only database in a read-only folder, and a directory. Each ends
with exit 0 where the command can do its work (reading a read-only database,
searching into a missing or empty file) and otherwise exit 1 with exactly one
`error:` line and no traceback; and no file autoarch did not make changes: the
hash, size and mtime of every entry of the case's folder are compared before and
after (so a new -wal, -shm or lock file shows too).

The commands are forked from one driver process that has imported autoarch once,
so the sweep costs about one search plus 45 small forks. For root, the driver runs
without CAP_DAC_OVERRIDE, so a read-only file is read-only for it as for any user.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

PR_CAPBSET_DROP, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 24, 1, 2  # <linux/prctl.h>
MARK = int.from_bytes(b"AAhd", "big")  # PRAGMA application_id of a history database

SPEC = """
model tiny(x: [64]) -> [10] {
  h = linear(x, choice(8, 16))
  return linear(h, 10)
}
train { data = digits  epochs = 1 }
search { strategy = random  trials = 1 }
"""

DRIVER = r"""
import json, os, sys, traceback
import autoarch.cli, autoarch.search.engine, autoarch.search.history  # imported once
import autoarch.search.data, autoarch.search.strategies, autoarch.search.study
import autoarch.search.trainer, autoarch.backends.torch, optuna, sklearn.datasets

for line in sys.stdin:
    job = json.loads(line)
    pid = os.fork()
    if pid == 0:
        code = 70
        try:
            os.chdir(job["cwd"])
            for fd, name in ((1, job["stdout"]), (2, job["stderr"])):
                f = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.dup2(f, fd)
                os.close(f)
            sys.argv = ["autoarch", *job["args"]]
            try:
                autoarch.cli.main()
                code = 0
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (e.code is not None)
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    print(json.dumps(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])), flush=True)
"""


def _without_dac_override() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def _permissions_bind() -> tuple[Callable[[], None] | None, bool]:
    """How to start the driver so that file permissions hold for it; whether they do."""
    if os.geteuid() != 0:
        return None, True
    probe = subprocess.run(["true"], preexec_fn=_without_dac_override, check=False)
    return (_without_dac_override, True) if probe.returncode == 0 else (None, False)


class Driver:
    def __init__(self, logs: Path):
        self.logs, self.n = logs, 0
        how, self.permissions = _permissions_bind()
        env = {k: v for k, v in os.environ.items() if k != "AUTOARCH_DEBUG"}
        self.proc = subprocess.Popen([sys.executable, "-c", DRIVER], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env,
                                     preexec_fn=how)

    def __call__(self, *args: str | Path, cwd: Path) -> tuple[int, str, str]:
        """Run `autoarch ARGS` in a fresh process: (exit code, stdout, stderr)."""
        self.n += 1
        out, err = self.logs / f"{self.n}.out", self.logs / f"{self.n}.err"
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"cwd": str(cwd), "args": [str(a) for a in args],
                                          "stdout": str(out), "stderr": str(err)}) + "\n")
        self.proc.stdin.flush()
        code = json.loads(self.proc.stdout.readline())
        return code, out.read_text(), err.read_text()

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Driver]:
    d = Driver(tmp_path_factory.mktemp("logs"))
    yield d
    d.close()


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory, driver: Driver) -> Path:
    """One real search's history: run `good`, one trial of one epoch."""
    folder = tmp_path_factory.mktemp("good")
    (folder / "tiny.spec").write_text(textwrap.dedent(SPEC).lstrip())
    code, out, err = driver("search", "tiny.spec", "--db", "good.db", "--name", "good",
                            cwd=folder)
    assert code == 0, out + err
    return folder / "good.db"


def snapshot(folder: Path) -> dict[str, tuple[str, int, int]]:
    out = {}
    for p in sorted(folder.rglob("*")):
        st = p.stat()
        digest = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        out[str(p.relative_to(folder))] = (digest, st.st_mtime_ns, st.st_size)
    return out


def _copy(good: Path, db: Path) -> None:
    shutil.copyfile(good, db)


def _truncated(good: Path, db: Path) -> None:
    _copy(good, db)
    with open(db, "r+b") as f:
        f.truncate(db.stat().st_size // 2)


def _malformed(good: Path, db: Path) -> None:
    _copy(good, db)
    conn = sqlite3.connect(db)
    page = conn.execute("PRAGMA page_size").fetchone()[0]
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'runs'").fetchone()[0]
    conn.close()
    with open(db, "r+b") as f:  # the runs table's root page, overwritten
        f.seek((root - 1) * page)
        f.write(random.Random(1).randbytes(page))


def _optuna(good: Path, db: Path) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optuna.create_study(storage=f"sqlite:///{db}", study_name="theirs")


def _other_app(good: Path, db: Path) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    conn.execute("INSERT INTO notes (body) VALUES ('mine')")
    conn.close()


def _read_only(good: Path, db: Path) -> None:
    _copy(good, db)
    db.chmod(0o444)
    db.parent.chmod(0o555)


SETUPS: dict[str, Callable[[Path, Path], None]] = {
    "missing": lambda good, db: None,
    "empty": lambda good, db: db.write_bytes(b""),
    "random-bytes": lambda good, db: db.write_bytes(random.Random(0).randbytes(16384)),
    "truncated": _truncated,
    "malformed": _malformed,
    "optuna": _optuna,
    "other-app": _other_app,
    "read-only": _read_only,
    "directory": lambda good, db: db.mkdir(),
}
COMMANDS = ("history", "history --run", "best", "best -o", "search")
NOT_OURS = "is not an autoarch history database"
#: case -> (what every failing command says, the commands that work)
EXPECTED: dict[str, tuple[str, set[str]]] = {
    "missing": ("no history database at", {"search"}),
    "empty": ("is empty", {"search"}),
    "random-bytes": (f"{NOT_OURS} (file is not a database)", set()),
    "truncated": ("is damaged", set()),
    "malformed": ("is damaged", set()),
    "optuna": (f"{NOT_OURS} (it has tables alembic_version", set()),
    "other-app": (f"{NOT_OURS} (it has tables notes)", set()),
    "read-only": ("is read-only", {"history", "history --run", "best", "best -o"}),
    "directory": ("is a directory", set()),
}


def _weights(db: Path) -> bytes:
    conn = sqlite3.connect(f"file:{db}?immutable=1", uri=True)
    try:
        return conn.execute("SELECT data FROM weights").fetchone()[0]
    finally:
        conn.close()


@pytest.mark.parametrize("case", list(SETUPS))
def test_every_command_on_every_kind_of_db(tmp_path, driver, good, case):
    if case == "read-only" and not driver.permissions:
        pytest.skip("root cannot drop CAP_DAC_OVERRIDE here: no read-only file for it")
    folder = tmp_path / "case"
    folder.mkdir()
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    (outputs / "tiny.spec").write_text(textwrap.dedent(SPEC).lstrip())
    db = folder / "x.db"
    SETUPS[case](good, db)
    if db.is_file():
        os.utime(db, ns=(1_000_000_000, 1_000_000_000))  # any write would move it
    said, works = EXPECTED[case]
    try:
        before = snapshot(folder)
        for command in COMMANDS:
            out_file = outputs / f"{command.replace(' ', '')}.pt"
            args: list[str | Path] = {
                "history": ["history", db],
                "history --run": ["history", db, "--run", "good"],
                "best": ["best", db],
                "best -o": ["best", db, "-o", out_file],
                "search": ["search", "tiny.spec", "--db", db, "--trials", "1", "--epochs", "1"],
            }[command]
            code, out, err = driver(*args, cwd=outputs)
            where = (case, command, code, out, err)
            assert "Traceback" not in out + err, where
            if command in works:
                assert code == 0, where
            else:
                assert code == 1, where
                lines = err.strip().splitlines()
                assert len(lines) == 1 and lines[0].startswith("error: "), where
                assert said in lines[0], where
                assert str(db) in lines[0], where
            if command == "best -o":
                if code == 0:  # the kept weights, byte for byte
                    assert out_file.read_bytes() == _weights(db)
                else:
                    assert not out_file.exists()
            if command != "search" or command not in works:
                assert snapshot(folder) == before, where  # nothing written, nothing made
    finally:
        folder.chmod(0o755)
    if "search" in works:  # the file became a history of ours, with the run, and no leftovers
        conn = sqlite3.connect(db)
        assert conn.execute("PRAGMA application_id").fetchone()[0] == MARK
        assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 1
        conn.close()
        left = {p.name for p in folder.iterdir()}
        assert not {f"{db.name}-wal", f"{db.name}-shm", f"{db.name}.lock"} & left, left

"""What the search tests share: specs written and loaded, the history read with
sqlite3 (an independent reader), and the environment of a CLI subprocess.

Importable from every test as ``search_testing``: pytest puts this folder on
``sys.path`` for ``tests/conftest.py``.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import autoarch

#: a small digits space for the CLI and process tests (18 candidates)
SPEC = """
model small(x: [64]) -> [10] {
  h = linear(x, choice(8, 16, 24, 32, 40, 48))
  h = act(h, choice(relu, gelu, tanh))
  return linear(h, 10)
}
train { data = digits  epochs = EPOCHS }
search { strategy = random  trials = 4 }
"""


def spec_of(tmp_path: Path, text: str, name: str = "t.spec") -> autoarch.Spec:
    """``text`` written to ``tmp_path / name`` and loaded."""
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip())
    return autoarch.load(path)


def write_spec(tmp_path: Path, epochs: int = 1, extra: str = "") -> Path:
    """:data:`SPEC` with ``epochs`` (and ``extra`` text after it) as ``small.spec``."""
    path = tmp_path / "small.spec"
    path.write_text(textwrap.dedent(SPEC).replace("EPOCHS", str(epochs)).lstrip() + extra)
    return path


def query(db: Path, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
    """Rows of ``sql`` on the history database, read with sqlite3 itself."""
    conn = sqlite3.connect(db, timeout=30)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def env() -> dict[str, str]:
    """This process's environment for a CLI subprocess, without ``AUTOARCH_DEBUG``."""
    return {k: v for k, v in os.environ.items() if k != "AUTOARCH_DEBUG"}


def cli(*args: str | Path) -> list[str]:
    """The command line of ``autoarch ARGS`` run with this interpreter."""
    return [sys.executable, "-m", "autoarch", *map(str, args)]


def run_cli(*args: str | Path, cwd: Path, extra_env: dict[str, str] | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``autoarch ARGS`` run to its end; whatever it exits with, never a traceback."""
    proc = subprocess.run(cli(*args), cwd=cwd, env={**env(), **(extra_env or {})},
                          capture_output=True, text=True, timeout=timeout)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    return proc

"""`autoarch report` and `autoarch plot` as a user runs them: files written, exit codes,
one-line errors, PNGs that are PNGs, and user ops the reporting process lacks."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
from report_testing import (
    broken_run,
    empty_db,
    empty_run,
    failing_run,
    figure,
    figures,
    pareto_run,
    png_size,
    section,
    single_runs,
    table_rows,
)
from search_testing import query, run_cli

KINDS = ("history", "pareto", "importance", "curves", "arch")


@pytest.fixture(scope="module")
def hist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("report_cli")
    db = tmp / "runs.db"
    single_runs(db, tmp)
    pareto_run(db, tmp, trials=6)
    failing_run(db, tmp)
    broken_run(db, tmp)
    empty_run(db, tmp)
    return db


def one_line_error(proc, *words: str) -> None:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for w in words:
        assert w in lines[0], lines[0]


def test_report_of_every_run(hist, tmp_path):
    out = tmp_path / "r.html"
    proc = run_cli("report", hist, "-o", out, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {out}" in proc.stdout
    page = out.read_text()
    names = [r["name"] for r in query(hist, "SELECT name FROM runs ORDER BY id")]
    assert re.findall(r'<section class="run" id="[^"]*" data-run="([^"]*)"', page) == names
    assert len(table_rows(page, "top", "random")) == 3  # -k 10, three trials


def test_report_of_named_runs_with_k(hist, tmp_path):
    out = tmp_path / "two.html"
    proc = run_cli("report", hist, "--run", "pareto", "-r", "failing", "-k", "2", "-o", out,
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    page = out.read_text()
    assert re.findall(r'<section class="run" id="[^"]*" data-run="([^"]*)"', page) == [
        "pareto", "failing"]
    assert len(table_rows(page, "top", "pareto")) == 2
    assert len(figure(page, "curves", "pareto")["data"]) == 2
    progress = figure(page, "progress")
    assert {t["meta"]["run"] for t in progress["data"]} == {"pareto", "failing"}
    assert "needs at least 4" not in section(page, "pareto")  # six trials: importances


def test_report_default_output_is_report_html(hist, tmp_path):
    proc = run_cli("report", hist, "--run", "empty", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    page = (tmp_path / "report.html").read_text()
    assert "this run has no trials yet" in page and not figures(page)


@pytest.mark.parametrize("setup,args,words", [
    ("empty_db", (), ("holds no runs yet",)),
    ("zero_bytes", (), ("is empty",)),
    ("missing", (), ("no history database",)),
    ("not_sqlite", (), ("not an autoarch history database",)),
    ("hist", ("--run", "pareot"), ("no run named 'pareot'", "did you mean 'pareto'")),
    ("hist", ("-o", "nowhere/r.html"), ("folder nowhere does not exist",)),
])
def test_report_errors_are_one_line(hist, tmp_path, setup, args, words):
    db = tmp_path / "x.db"
    if setup == "hist":
        db = hist
    elif setup == "empty_db":
        empty_db(db)
    elif setup == "zero_bytes":
        db.write_bytes(b"")
    elif setup == "not_sqlite":
        db.write_text("hello")
    proc = run_cli("report", db, *args, cwd=tmp_path)
    one_line_error(proc, *words)
    assert not (tmp_path / "report.html").exists()


@pytest.mark.parametrize("run", ["random", "pareto"])
@pytest.mark.parametrize("kind", KINDS)
def test_plot_each_kind_as_a_png(hist, tmp_path, kind, run):
    out = tmp_path / f"{kind}.png"
    proc = run_cli("plot", hist, "--kind", kind, "--run", run, "-o", out, cwd=tmp_path)
    if kind == "importance" and run == "random":  # three trials
        one_line_error(proc, "run random", "needs at least 4 complete trials")
        return
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {out}" in proc.stdout
    w, h = png_size(out)
    assert 300 <= w <= 12_000 and 200 <= h <= 12_000, (w, h)
    assert 5_000 < out.stat().st_size < 5_000_000


def test_plot_history_of_several_runs_and_default_output(hist, tmp_path):
    proc = run_cli("plot", hist, "--kind", "history", "--run", "random", "--run", "tpe",
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "best so far of 2 run(s)" in proc.stdout
    png_size(tmp_path / "history.png")


def test_plot_pareto_axes(hist, tmp_path):
    proc = run_cli("plot", hist, "--kind", "pareto", "--run", "pareto", "--x", "flops",
                   "--y", "params", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("plot", hist, "--kind", "pareto", "--run", "pareto", "--x", "flop",
                   cwd=tmp_path)
    one_line_error(proc, "--x flop is not an axis of run pareto", "did you mean 'flops'")


@pytest.mark.parametrize("args,words", [
    (("--kind", "paretto"), ("unknown --kind 'paretto'", "did you mean 'pareto'")),
    (("--kind", "arch", "--x", "params"), ("--x and --y choose the axes of --kind pareto",)),
    (("--kind", "arch", "--run", "random", "--run", "tpe"), ("draws one run",)),
    (("--kind", "pareto", "--run", "empty"), ("run empty", "no complete trial yet")),
    (("--kind", "curves", "--run", "broken"), ("run broken", "no complete trial yet")),
    (("--kind", "arch", "--run", "broken"), ("run broken", "no best architecture")),
    (("--kind", "importance", "--run", "failing"), ("needs at least 4",)),
    (("--kind", "history", "--run", "empty", "--run", "broken"), ("nothing to plot",)),
])
def test_plot_errors_are_one_line(hist, tmp_path, args, words):
    proc = run_cli("plot", hist, *args, cwd=tmp_path)
    one_line_error(proc, *words)
    assert not list(tmp_path.glob("*.png"))


def test_plot_of_a_database_without_runs(tmp_path):
    empty_db(tmp_path / "e.db")
    one_line_error(run_cli("plot", tmp_path / "e.db", "--kind", "arch", cwd=tmp_path),
                   "holds no runs yet")


# -- ops registered from Python, which the reporting process may lack

OPS = '''
import autoarch
from torch import nn

@autoarch.op(shape=lambda x, out, **_: (*x[:-1], out))
class ReportGated(nn.Module):
    def __init__(self, x: autoarch.Shape, out: int):
        super().__init__()
        self.a, self.b = nn.Linear(x[-1], out), nn.Linear(x[-1], out)

    def forward(self, x):
        return self.a(x) * self.b(x).sigmoid()
'''

USER_SPEC = """
model u(x: [64]) -> [10] {
  h = report_gated(x, choice(8, 16))
  return linear(act(h, choice(relu, gelu)), 10)
}
train { data = digits  epochs = 1 }
search { strategy = random  trials = 2 }
"""


def test_a_user_op_the_reporting_process_lacks(tmp_path):
    (tmp_path / "my_ops.py").write_text(textwrap.dedent(OPS))
    (tmp_path / "u.spec").write_text(textwrap.dedent(USER_SPEC))
    db = tmp_path / "u.db"
    proc = run_cli("search", "u.spec", "--plugin", "my_ops.py", "--db", db, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    nodes = 5  # input, report_gated, act, linear, output
    proc = run_cli("report", db, "-o", "u.html", cwd=tmp_path,
                   extra_env={"AUTOARCH_NO_DOT": "1"})
    assert proc.returncode == 0, proc.stderr
    page = (tmp_path / "u.html").read_text()
    assert "the IR recorded in the history" in page
    ops = next(t for t in figure(page, "arch")["data"] if t["name"] == "ops")
    assert len(ops["x"]) == nodes and "report_gated" in [c[1] for c in ops["customdata"]]
    proc = run_cli("report", db, "--plugin", "my_ops.py", "-o", "v.html", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "rebuilt from the run&#x27;s spec" in (tmp_path / "v.html").read_text()
    proc = run_cli("plot", db, "--kind", "arch", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"{nodes} ops" in proc.stdout
    png_size(tmp_path / "arch.png")

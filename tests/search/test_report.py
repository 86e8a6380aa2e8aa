"""The report's parts against the history, read independently with sqlite3.

Every number a figure or table shows is counted again from the database (which
trials are complete, the best value so far, the Pareto front by dominance written
here, the epochs of a trial) or from the spec (the nodes of the best candidate's
graph), never taken from the report's own functions.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from report_testing import (
    CONSTRAINT,
    broken_run,
    empty_db,
    empty_run,
    failing_run,
    figure,
    figures,
    pareto_run,
    section,
    single_runs,
    spec,
    table_rows,
    width,
)
from search_testing import query

import autoarch
from autoarch.search import plots, report
from autoarch.search.arch_drawing import architecture, graphviz_dot
from autoarch.search.history import History, HistoryError
from autoarch.search.report_page import render

K = 3


@pytest.fixture(scope="module")
def hist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("report")
    db = tmp / "runs.db"
    single_runs(db, tmp)
    pareto_run(db, tmp)
    failing_run(db, tmp)
    broken_run(db, tmp)
    empty_run(db, tmp)
    return db


def page_of(db: Path, runs: list[str] | None = None, k: int = K) -> str:
    h = History(db, readonly=True)
    try:
        chosen, note = report.select_runs(h, runs)
        return render(h, db, chosen, k, note)
    finally:
        h.close()


@pytest.fixture(scope="module")
def page(hist: Path) -> str:
    return page_of(hist)


def trials(db: Path, run: str, where: str = "1") -> list[dict[str, Any]]:
    rows = query(db, "SELECT t.* FROM trials t JOIN runs r ON r.id = t.run_id "
                     f"WHERE r.name = ? AND ({where}) ORDER BY t.number", (run,))
    return [dict(r) | {"objective": json.loads(r["objective"]) if r["objective"] else None,
                       "choices": json.loads(r["choices"] or "{}")} for r in rows]


def best_number(rows: list[dict[str, Any]], maximize: bool = True) -> int:
    """The first trial with the best first objective value."""
    sign = -1 if maximize else 1
    return min(rows, key=lambda r: (sign * r["objective"][0], r["number"]))["number"]


# -- best so far


@pytest.mark.parametrize("run", ["random", "tpe", "pareto", "failing"])
def test_best_so_far_plots_every_complete_trial_and_the_running_best(hist, page, run):
    fig = figure(page, "progress")
    done = trials(hist, run, "state = 'complete'")
    objectives = json.loads(query(hist, "SELECT objectives FROM runs WHERE name = ?",
                                  (run,))[0]["objectives"])
    points = [t for t in fig["data"] if t["meta"] == {"part": "points", "run": run}]
    lines = [t for t in fig["data"] if t["meta"] == {"part": "best", "run": run}]
    assert len(points) == len(lines) == len(objectives)  # one panel per objective
    for i, (pts, line) in enumerate(zip(points, lines, strict=True)):
        assert pts["x"] == [t["number"] for t in done]
        assert pts["y"] == [t["objective"][i] for t in done]
        maximize = objectives[i].startswith("maximize")
        running = [(max if maximize else min)(t["objective"][i] for t in done[:j + 1])
                   for j in range(len(done))]
        assert line["y"] == running


def test_runs_without_complete_trials_draw_no_points(page):
    fig = figure(page, "progress")
    assert not [t for t in fig["data"] if t["meta"]["run"] in ("broken", "empty")]


# -- trade-offs and the Pareto front


def _front(rows: list[dict[str, Any]], maximize: tuple[bool, ...]) -> set[int]:
    """Non-dominated trials, by hand."""
    def key(r: dict[str, Any]) -> list[float]:
        return [v if m else -v for v, m in zip(r["objective"], maximize, strict=True)]

    def dominates(a: list[float], b: list[float]) -> bool:
        return all(x >= y for x, y in zip(a, b, strict=True)) and a != b

    return {r["number"] for r in rows if not any(dominates(key(s), key(r)) for s in rows)}


def test_pareto_front_is_highlighted_among_every_complete_trial(hist, page):
    fig = figure(page, "tradeoff", "pareto")
    done = trials(hist, "pareto", "state = 'complete'")
    other, front = fig["data"]
    assert len(other["x"]) + len(front["x"]) == len(done)
    own = [t for t in done if t["duplicate_of"] is None]
    assert set(front["customdata"]) == _front(own, (True, False))
    by_number = {t["number"]: t for t in done}
    # y: the first objective, x: the second (params)
    for trace in (other, front):
        for n, x, y in zip(trace["customdata"], trace["x"], trace["y"], strict=True):
            assert [y, x] == by_number[n]["objective"]
    # the menus put params, FLOPs or an objective on either axis
    xmenu, ymenu = fig["layout"]["updatemenus"]
    assert [b["label"] for b in xmenu["buttons"]] == ["val_accuracy", "params", "flops"]
    flops = next(b for b in xmenu["buttons"] if b["label"] == "flops")
    for trace, xs in zip((other, front), flops["args"][0]["x"], strict=True):
        assert xs == [by_number[n]["flops"] for n in trace["customdata"]]


def test_one_objective_marks_the_best_trial_against_params(hist, page):
    fig = figure(page, "tradeoff", "random")
    done = trials(hist, "random", "state = 'complete'")
    other, best = fig["data"]
    assert best["customdata"] == [best_number(done)]
    assert len(other["x"]) + 1 == len(done)
    assert fig["layout"]["xaxis"]["title"]["text"] == "params"
    assert "one objective" in section(page, "random")


# -- decision importance


def score(model: Any, trial: Any) -> float:
    w = width(trial.choices)
    bonus = {"relu": 0.0, "gelu": 0.01, "tanh": 0.02}[next(
        v for v in trial.choices.values() if isinstance(v, str))]
    return w / 100 + bonus


def test_importance_of_each_decision_from_valid_complete_trials_only(tmp_path):
    db = tmp_path / "imp.db"
    # widths 8, 16 and 24 are valid (9 candidates), the rest invalid
    s = spec(tmp_path, CONSTRAINT.replace("1300", "1900"))
    autoarch.search(s, objective=score, trials=8, db=db, name="imp", seed=3)
    assert query(db, "SELECT count(*) n FROM trials WHERE state = 'invalid'")[0]["n"] > 0
    complete = query(db, "SELECT count(*) n FROM trials WHERE state = 'complete'")[0]["n"]
    h = History(db, readonly=True)
    try:
        imp = report.importance(db, report.default_run(h, "imp"))
    finally:
        h.close()
    assert imp.note is None and imp.trials == complete  # invalid ones left out
    values = imp.values["maximize(val_accuracy)"]
    assert set(values) == {"small.h#1", "small.h#2"}
    assert sum(values.values()) == pytest.approx(1.0)
    assert values["small.h#1"] > values["small.h#2"]  # width moves the score most
    page = page_of(db)
    bars = figure(page, "importance", "imp")["data"][0]
    assert dict(zip(bars["y"], bars["x"], strict=True)) == pytest.approx(values)


def test_importance_says_why_when_it_cannot_be_computed(hist, page, tmp_path):
    # three complete trials only
    assert "needs at least 4 complete trials" in section(page, "failing")
    assert "needs at least 4 complete trials; the study has 0" in section(page, "broken")
    assert "has no study empty" in section(page, "empty")
    # a space of one decision
    text = "model one(x: [64]) -> [10] { return linear(act(linear(x, 16), " \
           "choice(relu, gelu, tanh, sigmoid)), 10) }\ntrain { data = digits }\n"
    (tmp_path / "one.spec").write_text(text)
    db = tmp_path / "one.db"
    autoarch.search(autoarch.load(tmp_path / "one.spec"), objective=lambda m, t: 0.5,
                    trials=5, db=db, seed=0)
    assert "only one decision (" in page_of(db)
    # a journal that is gone or damaged is a note, not an error
    journal = Path(f"{hist}.optuna.log")
    copy = tmp_path / "copy.db"
    shutil.copy(hist, copy)
    Path(f"{copy}.optuna.log").write_text("not a journal\nnor is this\n")
    assert "could not be read" in section(page_of(copy, ["random"]), "random")
    assert journal.exists()


# -- learning curves, the table, failures


@pytest.mark.parametrize("run", ["random", "pareto", "failing"])
def test_learning_curves_of_the_top_k(hist, page, run):
    fig = figure(page, "curves", run)
    own = trials(hist, run, "state = 'complete' AND duplicate_of IS NULL")
    assert len(fig["data"]) == min(K, len(own))
    for trace in fig["data"]:
        number = int(trace["name"].lstrip("#"))
        t = next(t for t in own if t["number"] == number)
        epochs = query(hist, "SELECT epoch, val_accuracy FROM epochs WHERE trial_id = ? "
                             "ORDER BY epoch", (t["id"],))
        assert trace["x"] == [e["epoch"] for e in epochs]
        assert trace["y"] == [e["val_accuracy"] for e in epochs]
    if run != "pareto":  # the best comes first
        assert fig["data"][0]["name"] == f"#{best_number(own)}"


@pytest.mark.parametrize("run", ["random", "tpe", "pareto", "failing", "broken"])
def test_the_table_has_the_top_k_trials_best_first(hist, page, run):
    rows = table_rows(page, "top", run)
    own = trials(hist, run, "duplicate_of IS NULL")
    assert len(rows) == min(K, len(own))
    assert [int(r[0]) for r in rows] == list(range(1, len(rows) + 1))
    done = [t for t in own if t["state"] == "complete"]
    if done:
        assert int(rows[0][1]) == best_number(done)
    else:
        assert {r[2] for r in rows} == {"failed"}


def test_the_table_lists_complete_then_failed_then_invalid(hist):
    rows = table_rows(page_of(hist, ["failing"], k=100), "top", "failing")
    own = trials(hist, "failing", "duplicate_of IS NULL")
    states = [r[2] for r in rows]
    assert len(rows) == len(own)
    assert states == sorted(states, key=["complete", "pruned", "failed", "invalid"].index)
    by_number = {t["number"]: t for t in own}
    for r in rows:  # params and choices as recorded
        t = by_number[int(r[1])]
        assert r[4] == (f"{t['params']:,}" if t["params"] is not None else "")
        assert r[-1] == ", ".join(f"{k}={v}" for k, v in t["choices"].items())


def test_failed_and_invalid_trials_are_counted_and_grouped_by_reason(hist, page):
    rows = table_rows(page, "failures", "failing")
    counts = {(r["state"], r["error"].split(" (")[0]): r["n"] for r in query(
        hist, "SELECT state, error, count(*) n FROM trials t JOIN runs r ON r.id = t.run_id "
              "WHERE r.name = 'failing' AND state IN ('failed', 'invalid') "
              "GROUP BY state, substr(error, 1, 24)")}
    assert {(r[0], r[2]): int(r[1]) for r in rows} == counts
    assert counts == {("failed", "RuntimeError: width 16 is cursed"): 6,
                      ("invalid", "violates params <= 1300"): 12}
    text = section(page, "failing")
    states = {r["state"]: r["n"] for r in query(
        hist, "SELECT state, count(*) n FROM trials t JOIN runs r ON r.id = t.run_id "
              "WHERE r.name = 'failing' GROUP BY state")}
    assert "Trials by state: " + ", ".join(f"{s} {n}" for s, n in sorted(states.items())) in text
    assert "no trial failed or was invalid" in section(page, "random")
    assert table_rows(page, "failures", "broken") == [
        ["failed", "3", "ValueError: nothing works", "#0, #1, #2"]]


# -- the best architecture


def _best_graph(db: Path, run: str) -> Any:
    """The best trial's graph, built from the spec file the run was made from."""
    done = trials(db, run, "state = 'complete' AND duplicate_of IS NULL")
    best = next(t for t in done if t["number"] == best_number(done))
    spec_file = query(db, "SELECT spec_file FROM runs WHERE name = ?", (run,))[0]["spec_file"]
    return autoarch.load(Path(db).parent / Path(spec_file).name).build(best["choices"]).nx


def test_the_best_architecture_drawn_by_graphviz(hist, page):
    if graphviz_dot() is None:
        pytest.skip("graphviz's dot is not installed (the plotly drawing is tested below)")
    g = _best_graph(hist, "random")
    m = re.search(r'<div class="arch-svg figure" data-kind="arch" data-run="random" '
                  r'data-nodes="(\d+)">(<svg.*?</svg>)</div>', section(page, "random"), re.S)
    assert m and int(m.group(1)) == g.number_of_nodes()
    svg = m.group(2)
    assert svg.count('class="node"') == g.number_of_nodes()
    assert svg.count('class="edge"') == g.number_of_edges()
    for _, nd in g.nodes(data=True):
        assert f"[{', '.join(map(str, nd['shape']))}]" in svg


def test_the_best_architecture_without_graphviz(hist, monkeypatch):
    monkeypatch.setenv("AUTOARCH_NO_DOT", "1")
    page = page_of(hist, ["random", "pareto"])
    assert '<div class="arch-svg' not in page
    for run in ("random", "pareto"):
        g = _best_graph(hist, run)
        fig = figure(page, "arch", run)
        ops = next(t for t in fig["data"] if t["name"] == "ops")
        assert len(ops["x"]) == g.number_of_nodes()
        assert sorted(c[1] for c in ops["customdata"]) == sorted(
            nd["op"] for _, nd in g.nodes(data=True))
        arrows = [a for a in fig["layout"]["annotations"] if a.get("showarrow")]
        assert len(arrows) == g.number_of_edges()
        params = {c[0]: int(c[4].replace(",", "")) for c in ops["customdata"]}
        assert params == {i: nd["params"] for i, nd in g.nodes(data=True)}


def test_an_architecture_whose_spec_does_not_rebuild_comes_from_the_recorded_ir(
        hist, tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOARCH_NO_DOT", "1")
    db = tmp_path / "copy.db"
    shutil.copy(hist, db)
    conn = sqlite3.connect(db)
    # as if the spec called an op registered from Python in the process that searched
    conn.execute("UPDATE runs SET spec_text = replace(spec_text, 'act(', 'my_own_act(')")
    conn.commit()
    page = page_of(db, ["random"])
    assert "the IR recorded in the history" in page and "my_own_act" in page
    g = _best_graph(hist, "random")
    ops = next(t for t in figure(page, "arch", "random")["data"] if t["name"] == "ops")
    assert len(ops["x"]) == g.number_of_nodes()
    # and without the recorded IR either: a note
    conn.execute("UPDATE candidates SET graph = NULL")
    conn.commit()
    conn.close()
    text = section(page_of(db, ["random"]), "random")
    assert "cannot be drawn" in text and 'data-kind="arch"' not in text


# -- runs that have little or nothing to show


def test_an_empty_run_and_a_failed_run_give_a_page_of_notes(page):
    empty = section(page, "empty")
    assert "this run has no trials yet" in empty
    assert "no complete trial yet: nothing to plot" in empty
    assert "no best architecture" in empty
    assert "data-kind" not in empty  # no figure, no table
    broken = section(page, "broken")
    assert "no complete trial yet" in broken and 'data-kind="tradeoff"' not in broken


def test_a_database_without_runs_is_a_one_line_error(tmp_path):
    db = tmp_path / "empty.db"
    empty_db(db)
    h = History(db, readonly=True)
    try:
        with pytest.raises(HistoryError, match="holds no runs yet"):
            report.select_runs(h, None)
        with pytest.raises(HistoryError, match="has no run named 'nope'"):
            report.select_runs(h, ["nope"])
    finally:
        h.close()


def test_a_regression_run_minimises_val_loss(tmp_path):
    text = """
    model f(x: [2]) -> [1] {
      return choice(linear(act(linear(x, 16), gelu), 1), kan(x, 1, basis = rbf))
    }
    train { data = kan_fit  epochs = 2 }
    search { strategy = grid  trials = 2  objective = minimize(val_loss) }
    """
    (tmp_path / "f.spec").write_text(text)
    db = tmp_path / "reg.db"
    autoarch.search(autoarch.load(tmp_path / "f.spec"), db=db, name="reg")
    page = page_of(db)
    done = trials(db, "reg", "state = 'complete'")
    best = min(done, key=lambda t: t["objective"][0])
    line = next(t for t in figure(page, "progress")["data"] if t["meta"]["part"] == "best")
    assert line["y"][-1] == best["objective"][0]
    assert figure(page, "tradeoff", "reg")["data"][1]["customdata"] == [best["number"]]
    curves = figure(page, "curves", "reg")
    assert curves["layout"]["yaxis"]["title"]["text"] == "val_loss"


def test_a_oneshot_run_shows_its_supernet(tmp_path):
    text = """
    model m(x: [64]) -> [10] {
      h = linear(x, choice(16, 32))
      h = choice(mlp(layernorm(h), expand = choice(1, 2)), kan(h, 16, groups = 4))
      return linear(h, 10)
    }
    train { data = digits  batch = 64  epochs = 1 }
    search { strategy = oneshot  supernet_epochs = 1  evaluate = 4  retrain = 1  then = random }
    """
    (tmp_path / "o.spec").write_text(text)
    db = tmp_path / "one.db"
    autoarch.search(autoarch.load(tmp_path / "o.spec"), db=db, name="one")
    page = page_of(db)
    assert "One-shot run: 1 supernet epochs, 4 candidates scored" in page
    scored = [f for f in figures(page) if f["kind"] == "supernet"]
    assert len(scored) == 2
    points = sum(len(t["x"]) for t in scored[1]["data"])
    assert points == query(db, "SELECT count(*) n FROM supernet_scores")[0]["n"]
    retrained = scored[1]["data"][1]["customdata"]
    hashes = {r["arch_hash"] for r in query(db, "SELECT arch_hash FROM trials")}
    assert retrained and all(
        query(db, "SELECT arch_hash FROM supernet_scores WHERE number = ?", (n,))[0][
            "arch_hash"] in hashes for n in retrained)


# -- the file itself


def test_the_page_is_self_contained(page):
    assert page.count("<script") == len(figures(page)) + 2  # plotly.js, the figures, ours
    assert len(re.findall(r"plotly\.js v\d", page)) == 1  # embedded once
    for pattern in (r"<script[^>]*\bsrc=", r"<link[^>]*href=[\"']?(https?:)?//",
                    r"<img[^>]*src=[\"']?(https?:)?//", r"url\(\s*[\"']?(https?:)?//",
                    r"@import", r"<iframe"):
        assert not re.search(pattern, page, re.I), pattern


def test_text_from_the_history_is_escaped(hist, tmp_path):
    db = tmp_path / "copy.db"
    shutil.copy(hist, db)
    shutil.copy(f"{hist}.optuna.log", f"{db}.optuna.log")
    conn = sqlite3.connect(db)
    conn.execute("UPDATE runs SET name = '<b>x</b></script>', study_name = study_name "
                 "WHERE name = 'random'")
    conn.commit()
    conn.close()
    page = page_of(db, ["<b>x</b></script>"])
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page
    assert figure(page, "tradeoff", "<b>x</b></script>")  # its JSON still parses


# -- PNGs: the same data, drawn with matplotlib


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def test_each_png_draws_the_data_of_its_part(hist):
    h = History(hist, readonly=True)
    try:
        run = report.default_run(h, "pareto")
        t = report.tradeoff(h, run)
        c = report.curves(h, run, K)
        a = architecture(h, run)
        series = [s for r in report.select_runs(h, None)[0] for s in report.progress(r)]
        figs = {"history": plots.progress_png([s for s in series if s.numbers]),
                "pareto": plots.tradeoff_png(t), "curves": plots.curves_png(c),
                "arch": plots.arch_png(a)}
    finally:
        h.close()
    done = trials(hist, "pareto", "state = 'complete'")
    ax = figs["pareto"].axes[0]
    assert sum(len(col.get_offsets()) for col in ax.collections) == len(done)
    assert len(figs["curves"].axes[0].lines) == len(c.series)
    boxes = [t for t in figs["arch"].axes[0].texts if t.get_bbox_patch() is not None]
    assert len(boxes) == _best_graph(hist, "pareto").number_of_nodes()
    for name, fig in figs.items():
        data = _png(fig)
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 5000, name

"""The report in a real browser: headless Chromium through selenium.

The page must load without a single browser console error, draw every figure
(plotly's SVG, or graphviz's), draw as many markers as the history has complete
trials, and sort its tables when a header is clicked. Skipped, saying why, only
where Chromium or its driver is not installed (Debian: ``apt-get install chromium
chromium-driver``; ``.ci/run`` installs them when it can).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from report_testing import broken_run, empty_run, failing_run, pareto_run
from search_testing import query

from autoarch.search import report
from autoarch.search.arch_drawing import graphviz_dot
from autoarch.search.history import History
from autoarch.search.report_page import render

K = 3


def _find(*names: str) -> str | None:
    for n in names:
        found = shutil.which(n) or (n if os.path.isabs(n) and os.access(n, os.X_OK) else None)
        if found:
            return found
    return None


CHROMIUM = _find("chromium", "chromium-browser", "google-chrome", "/usr/bin/chromium")
DRIVER = _find("chromedriver", "/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if CHROMIUM is None or DRIVER is None:
        missing = " and ".join(n for n, p in (("chromium", CHROMIUM), ("chromedriver", DRIVER))
                               if p is None)
        pytest.skip(f"{missing} not installed (apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1300,1000", "--disable-extensions"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    driver.set_page_load_timeout(120)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def hist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("report_browser")
    db = tmp / "runs.db"
    pareto_run(db, tmp, trials=5)
    failing_run(db, tmp)
    broken_run(db, tmp)
    empty_run(db, tmp)
    return db


def write_page(db: Path, path: Path) -> Path:
    h = History(db, readonly=True)
    try:
        runs, note = report.select_runs(h, None)
        path.write_text(render(h, db, runs, K, note), encoding="utf-8")
    finally:
        h.close()
    return path


def complete(db: Path, run: str, own: bool = False) -> int:
    extra = " AND duplicate_of IS NULL" if own else ""
    return query(db, "SELECT count(*) n FROM trials t JOIN runs r ON r.id = t.run_id WHERE "
                     f"r.name = ? AND state = 'complete'{extra}", (run,))[0]["n"]


def own_trials(db: Path, run: str) -> int:
    return query(db, "SELECT count(*) n FROM trials t JOIN runs r ON r.id = t.run_id WHERE "
                     "r.name = ? AND duplicate_of IS NULL", (run,))[0]["n"]


def open_page(driver: Any, path: Path) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get_log("browser")  # drop what an earlier page logged
    driver.get(path.as_uri())
    WebDriverWait(driver, 60).until(lambda d: d.execute_script(
        "return document.readyState === 'complete' && [...document.querySelectorAll("
        "'div.plot')].every(e => e.querySelector('.main-svg'))"))


def severe(driver: Any) -> list[dict[str, Any]]:
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


FIGURES_JS = """
return [...document.querySelectorAll('.figure')].map(e => ({
  kind: e.dataset.kind, run: e.dataset.run || null, plotly: e.classList.contains('plot'),
  svgs: e.querySelectorAll('svg').length, paths: e.querySelectorAll('path').length,
  points: e.querySelectorAll('.scatterlayer .point').length,
  nodes: e.querySelectorAll('g.node').length}));
"""


@pytest.mark.parametrize("dot", [True, False], ids=["graphviz", "own-layout"])
def test_the_report_renders_in_chromium_without_console_errors(browser, hist, tmp_path,
                                                               monkeypatch, dot):
    if dot and graphviz_dot() is None:
        pytest.skip("graphviz's dot is not installed (the own-layout case runs)")
    if not dot:
        monkeypatch.setenv("AUTOARCH_NO_DOT", "1")
    page = write_page(hist, tmp_path / "report.html")
    open_page(browser, page)
    assert severe(browser) == []
    found = browser.execute_script(FIGURES_JS)
    assert found, "no figures"
    for f in found:
        assert f["svgs"] > 0 and f["paths"] > 0, f
    kinds = [(f["kind"], f["run"]) for f in found]
    for run in ("pareto", "failing"):
        assert ("tradeoff", run) in kinds and ("curves", run) in kinds and ("arch", run) in kinds
    arch = [f for f in found if f["kind"] == "arch"]
    assert all(f["plotly"] is (not dot) for f in arch)
    if dot:
        assert all(f["nodes"] == 5 for f in arch)  # input, linear, act, linear, output
    # as many markers drawn as the history has complete trials
    for run in ("pareto", "failing"):
        tradeoff = next(f for f in found if f["kind"] == "tradeoff" and f["run"] == run)
        assert tradeoff["points"] == complete(hist, run)
    progress = next(f for f in found if f["kind"] == "progress")
    assert progress["points"] == complete(hist, "pareto") * 2 + complete(hist, "failing")
    # a table of k rows per run (fewer when the run has fewer trials)
    rows = browser.execute_script(
        "return Object.fromEntries([...document.querySelectorAll('section.run')].map(s => "
        "[s.dataset.run, s.querySelectorAll('table[data-kind=top] tbody tr').length]))")
    assert rows == {r: min(K, own_trials(hist, r)) for r in ("pareto", "failing", "broken",
                                                              "empty")} | {"empty": 0}
    assert severe(browser) == []


def test_tables_sort_when_a_header_is_clicked(browser, hist, tmp_path):
    page = write_page(hist, tmp_path / "report.html")
    open_page(browser, page)
    table = browser.find_element("css selector",
                                 "section[data-run=failing] table[data-kind=top]")
    headers = table.find_elements("css selector", "th")

    def column(name: str) -> list[str]:
        i = [h.text.rstrip(" ▲▼") for h in headers].index(name)
        return [r.find_elements("css selector", "td")[i].text
                for r in table.find_elements("css selector", "tbody tr")]

    trial = next(h for h in headers if h.text == "trial")
    best_first = column("trial")
    trial.click()
    assert [int(v) for v in column("trial")] == sorted(int(v) for v in best_first)
    trial.click()
    assert [int(v) for v in column("trial")] == sorted((int(v) for v in best_first),
                                                       reverse=True)
    state = next(h for h in headers if h.text == "state")
    state.click()
    assert column("state") == sorted(column("state"))
    assert severe(browser) == []

"""Histories for the report and plot tests, made by real searches on a tiny digits
space, and readers of a report's HTML (its figures' embedded JSON, its tables).

Importable from every test as ``report_testing`` (pytest puts this folder on
``sys.path`` for ``tests/conftest.py``).
"""

from __future__ import annotations

import html
import json
import re
import struct
import textwrap
from pathlib import Path
from typing import Any

import autoarch
from autoarch.search.history import History

#: 6 widths x 3 activations; params = 64*w + w + 10*w + 10 = 75*w + 10
SPEC = """
model small(x: [64]) -> [10] {
  h = linear(x, choice(8, 16, 24, 32, 40, 48))
  h = act(h, choice(relu, gelu, tanh))
  return linear(h, 10)
}
train { data = digits  epochs = 1 }
search { strategy = random  trials = 4 EXTRA }
"""
TWO_OBJECTIVES = "objective = [maximize(val_accuracy), minimize(params)]"
#: widths 24 and over break it (params 1810 and more)
CONSTRAINT = "\n  constraint params <= 1300"


def spec(tmp: Path, extra: str = "", name: str = "small.spec") -> autoarch.Spec:
    path = tmp / name
    path.write_text(textwrap.dedent(SPEC).replace("EXTRA", extra).lstrip())
    return autoarch.load(path)


def width(choices: dict[str, Any]) -> int:
    return next(v for k, v in choices.items() if isinstance(v, int))


def fit_or_fail(model: Any, trial: Any) -> float:
    """An objective function: width 16 raises; the others report two epochs."""
    w = width(trial.choices)
    if w == 16:
        raise RuntimeError(f"width {w} is cursed")
    for epoch in (1, 2):
        trial.report(epoch, val_accuracy=w / 100 * epoch / 2, val_loss=1 / (w * epoch))
    return w / 100


def always_fail(model: Any, trial: Any) -> float:
    raise ValueError("nothing works")


def single_runs(db: Path, tmp: Path) -> None:
    """Two single-objective runs, trained: random (3 trials of 2 epochs) and tpe (3 of 1)."""
    s = spec(tmp)
    autoarch.search(s, strategy="random", trials=3, epochs=2, db=db, name="random", seed=0)
    autoarch.search(s, strategy="tpe", trials=3, epochs=1, db=db, name="tpe", seed=1)


def pareto_run(db: Path, tmp: Path, trials: int = 4) -> None:
    """Two objectives (val_accuracy, params), trained one epoch."""
    autoarch.search(spec(tmp, TWO_OBJECTIVES, "two.spec"), strategy="nsga2", trials=trials,
                    epochs=1, db=db, name="pareto", seed=2)


def failing_run(db: Path, tmp: Path) -> None:
    """The grid in its order (width slowest, docs/space.md): width 8 complete and 16
    failed (three candidates each), then widths 24 to 48 invalid, until the grid is
    exhausted."""
    autoarch.search(spec(tmp, CONSTRAINT, "c.spec"), strategy="grid", objective=fit_or_fail,
                    trials=20, db=db, name="failing")


def broken_run(db: Path, tmp: Path) -> None:
    """Every trial failed."""
    autoarch.search(spec(tmp, name="b.spec"), objective=always_fail, trials=3, db=db,
                    name="broken", seed=5)


def empty_run(db: Path, tmp: Path, name: str = "empty") -> None:
    """A run recorded without a trial, as a search killed before its first leaves it."""
    h = History(db)
    try:
        h.create_run(name=name, model="small", spec_file="small.spec",
                     spec_text=textwrap.dedent(SPEC).replace("EXTRA", ""), strategy="random",
                     objectives='["maximize(val_accuracy)"]', trials_requested=4, seed=0,
                     status="interrupted")
    finally:
        h.close()


def empty_db(db: Path) -> None:
    """A history database with its schema and no run."""
    History(db).close()


# -- reading a report back


def figures(page: str) -> list[dict[str, Any]]:
    """Every plotly figure of a page: its JSON, with ``kind`` and ``run`` beside."""
    out = []
    for m in re.finditer(r'<script type="application/json" id="(plot-\d+)-json"([^>]*)>(.*?)'
                         r"</script>", page, re.S):
        attrs = dict(re.findall(r'(data-[a-z]+)="([^"]*)"', m.group(2)))
        fig = json.loads(m.group(3))
        fig.update(id=m.group(1), kind=attrs.get("data-kind"),
                   run=html.unescape(attrs.get("data-run", "")) or None)
        out.append(fig)
    return out


def figure(page: str, kind: str, run: str | None = None) -> dict[str, Any]:
    found = [f for f in figures(page) if f["kind"] == kind and (run is None or f["run"] == run)]
    assert len(found) == 1, (kind, run, [(f["kind"], f["run"]) for f in figures(page)])
    return found[0]


def table_rows(page: str, kind: str, run: str | None = None) -> list[list[str]]:
    """The cells' text of a table (``data-kind``), in the run's section when named."""
    part = section(page, run) if run else page
    m = re.search(rf'<table class="sortable" data-kind="{kind}">(.*?)</table>', part, re.S)
    assert m, f"no {kind} table"
    body = re.search(r"<tbody>(.*?)</tbody>", m.group(1), re.S).group(1)
    return [[html.unescape(re.sub(r"<[^>]+>", "", c)) for c in
             re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)]


def section(page: str, run: str) -> str:
    m = re.search(rf'<section class="run" id="[^"]*" data-run="{re.escape(html.escape(run))}">'
                  r"(.*?)</section>", page, re.S)
    assert m, f"no section for run {run}"
    return m.group(1)


def png_size(path: Path) -> tuple[int, int]:
    """Width and height of a PNG file, from its header (a ValueError if it is not one)."""
    data = path.read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise ValueError(f"{path} is not a PNG file")
    return struct.unpack(">II", data[16:24])

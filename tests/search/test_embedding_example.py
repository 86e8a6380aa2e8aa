"""examples/embedding/embed.py, run as a user runs it: a block of one's own, data of
one's own and a training loop of one's own, searched, recorded, and resumed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from search_testing import env, query

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "embedding" / "embed.py"


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, str(EXAMPLE), *args], cwd=tmp_path, env=env(),
                          capture_output=True, text=True, timeout=600)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def test_the_embedding_example_searches_records_and_resumes(tmp_path):
    db = tmp_path / "e.db"
    first = run(tmp_path, "--trials", "4", "--db", str(db))
    assert first.returncode == 0, first.stderr
    assert "best: trial" in first.stdout
    rows = query(db, "SELECT * FROM trials ORDER BY number")
    assert len([r for r in rows if r["state"] in ("complete", "pruned")]) == 4
    for r in rows:
        if r["state"] == "invalid":  # over the spec's constraint: never trained
            assert "violates" in r["error"] and r["train_config"] is None
            continue
        cfg = json.loads(r["train_config"])
        assert cfg["objective_fn"] == "__main__.fit" and cfg["data"] == "dataset(leaning)"
        if r["state"] == "complete":
            metrics = json.loads(r["metrics"])
            # the loop's own number, beside the objective
            assert 0 <= metrics["test_accuracy"] <= 1
    # the user block is in the candidates: its op in the recorded graph
    graphs = [r["graph"] for r in query(db, "SELECT graph FROM candidates")]
    assert any("gated_linear" in g for g in graphs)
    # every trained trial reported its epochs (pruned ones fewer)
    for r in rows:
        if r["duplicate_of"] is None and r["state"] == "complete":
            n = query(db, "SELECT count(*) AS n FROM epochs WHERE trial_id = ?", (r["id"],))
            assert n[0]["n"] == 6
    # the same command with more trials resumes the run: nothing is trained twice
    again = run(tmp_path, "--trials", "6", "--db", str(db))
    assert again.returncode == 0, again.stderr
    rows = query(db, "SELECT * FROM trials ORDER BY number")
    assert len([r for r in rows if r["state"] in ("complete", "pruned")]) == 6
    assert len({r["number"] for r in rows}) == len(rows)
    assert query(db, "SELECT count(*) AS n FROM runs")[0]["n"] == 1

"""`autoarch export DB`: trials of real (tiny) searches as .pt, Python, ONNX and frozen specs.

The references are independent of the exporter: the history read with sqlite3 (the
trial's recorded architecture hash, its objective values, the weights blob), the
model that blob holds rebuilt by ``autoarch.load_model``, and onnxruntime. The Python
files run in a separate interpreter in which autoarch cannot be imported.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from textwrap import dedent

import pytest
import torch
from search_testing import query, run_cli

import autoarch
from autoarch.dsl.errors import CommandError
from autoarch.search.export import export

#: a space whose candidates decide per repeat iteration (and how many iterations)
SPEC = """
model tiny(x: [64]) -> [10] {
  h = reshape(x, [8, 8])
  repeat choice(1, 2) as i {
    h = h + choice(kan: kan(layernorm(h), 8, basis = choice(rational, bspline)),
                   attention: attention(layernorm(h), heads = 2, kind = choice(gla, softmax)),
                   mlp: mlp(h, expand = 2, sparsity = 0.5))
  }
  return linear(flatten(h), 10)
}
train { data = digits  epochs = 1 }
"""
PARETO = "search { objective = [maximize(val_accuracy), minimize(params)] }\n"
BROKEN = "train { data = digits  epochs = 1  optimizer = sgd(lr = 1e12) }\n"


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> Path:
    """One history: run `one` (3 trials, one objective), `front` (6 trials, two
    objectives: a Pareto front) and `broken` (trials that fail)."""
    folder = tmp_path_factory.mktemp("hist")
    path = folder / "h.db"
    (folder / "tiny.spec").write_text(SPEC)
    spec = autoarch.load(folder / "tiny.spec")
    autoarch.search(spec, trials=3, epochs=1, db=str(path), name="one", seed=1)
    (folder / "front.spec").write_text(SPEC + PARETO)
    autoarch.search(autoarch.load(folder / "front.spec"), trials=6, epochs=1, db=str(path),
                    name="front", seed=2)
    (folder / "broken.spec").write_text(SPEC.replace("train { data = digits  epochs = 1 }\n",
                                                     BROKEN))
    autoarch.search(autoarch.load(folder / "broken.spec"), trials=1, epochs=1, db=str(path),
                    name="broken", seed=3)
    return path


def trials_of(db: Path, run: str) -> list:
    return query(db, "SELECT trials.* FROM trials JOIN runs ON runs.id = trials.run_id "
                     "WHERE runs.name = ? ORDER BY number", (run,))


def weights_of(db: Path, run: str, number: int) -> bytes | None:
    rows = query(db, "SELECT weights.data FROM weights JOIN trials ON trials.id = "
                     "weights.trial_id JOIN runs ON runs.id = trials.run_id "
                     "WHERE runs.name = ? AND trials.number = ?", (run, number))
    return rows[0]["data"] if rows else None


def best_number(db: Path, run: str) -> int:
    done = [t for t in trials_of(db, run) if t["state"] == "complete"
            and t["duplicate_of"] is None]
    return max(done, key=lambda t: (json.loads(t["objective"])[0], -t["number"]))["number"]


def pareto_front(db: Path, run: str) -> list[int]:
    """Trial numbers of the front (maximize accuracy, minimize params), by hand."""
    done = [t for t in trials_of(db, run) if t["state"] == "complete"
            and t["duplicate_of"] is None]
    vals = {t["number"]: json.loads(t["objective"]) for t in done}

    def dominates(a, b):
        return a[0] >= b[0] and a[1] <= b[1] and (a[0] > b[0] or a[1] < b[1])

    return sorted(n for n in vals if not any(dominates(vals[m], vals[n]) for m in vals))


def reference_model(db: Path, run: str, number: int, folder: Path) -> torch.nn.Module:
    blob = weights_of(db, run, number)
    assert blob is not None
    path = folder / f"ref-{run}-{number}.pt"
    path.write_bytes(blob)
    return autoarch.load_model(path).eval()


RUNNER = dedent("""
    import importlib.util, sys
    sys.modules["autoarch"] = None           # `import autoarch` raises ImportError now
    import torch
    spec = importlib.util.spec_from_file_location("exported", sys.argv[1])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.load()
    x = torch.load(sys.argv[2], weights_only=True)
    with torch.no_grad():
        torch.save(model(x), sys.argv[3])
""")


def run_exported(py: Path, x: torch.Tensor) -> torch.Tensor:
    folder = py.parent
    torch.save(x, folder / "x.pt")
    proc = subprocess.run([sys.executable, "-I", "-c", RUNNER, str(py), str(folder / "x.pt"),
                           str(folder / "y.pt")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return torch.load(folder / "y.pt", weights_only=True)


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


# ---- formats ---------------------------------------------------------------------------


def test_pt_is_the_kept_weights_of_the_best_trial(db, tmp_path):
    proc = run_cli("export", db, "--format", "pt", "-o", tmp_path / "m.pt", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    # default run: the latest with a complete trial (broken has none), its best trial
    assert "run front" in proc.stderr  # the latest run with a complete trial
    front = pareto_front(db, "front")
    number = front[0]
    assert f"trial #{number}" in proc.stdout
    assert (tmp_path / "m.pt").read_bytes() == weights_of(db, "front", number)


def test_py_runs_without_autoarch_and_matches_the_trained_model(db, tmp_path):
    number = best_number(db, "one")
    proc = run_cli("export", db, "-r", "one", "-f", "py", "-o", tmp_path / "tiny.py",
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.pt", "tiny.py"]
    source = (tmp_path / "tiny.py").read_text()
    assert "import autoarch" not in source and f"trial #{number} of run one" in source
    x = torch.randn(7, 64)
    want = reference_model(db, "one", number, tmp_path)(x).detach()
    got = run_exported(tmp_path / "tiny.py", x)
    assert (got - want).abs().max().item() <= 1e-5


def test_onnx_agrees_with_the_trained_model_in_onnxruntime(db, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    number = best_number(db, "one")
    proc = run_cli("export", db, "--run", "one", "--format", "onnx", "-o",
                   tmp_path / "m.onnx", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    session = ort.InferenceSession(str(tmp_path / "m.onnx"),
                                   providers=["CPUExecutionProvider"])
    x = torch.randn(4, 64)
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    want = reference_model(db, "one", number, tmp_path)(x).detach()
    assert abs(torch.from_numpy(got) - want).max().item() <= 1e-4


@pytest.mark.parametrize("run", ["one", "front"])
def test_spec_of_every_trial_is_one_candidate_of_its_recorded_architecture(db, tmp_path, run):
    for t in trials_of(db, run):
        if t["state"] != "complete":
            continue
        out = tmp_path / f"{run}-{t['number']}.spec"
        proc = run_cli("export", db, "-r", run, "-t", str(t["number"]), "-f", "spec", "-o",
                       out, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr  # kept weights or not: none needed
        frozen = autoarch.load(out)
        assert frozen.space().count() == 1
        assert frozen.build({}).hash == t["arch_hash"]
        text = out.read_text()
        assert text.startswith(f"# trial #{t['number']} of run {run}")
        assert "choice(" not in text
    check = run_cli("check", out, cwd=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr


def test_every_member_of_a_pareto_front_exports(db, tmp_path):
    front = pareto_front(db, "front")
    assert front
    for number in front:
        py = tmp_path / f"front{number}.py"
        done = export(db, format="py", path=py, run="front", trial=number)
        assert (done.run, done.trial, done.paths) == ("front", number,
                                                      [py, py.with_suffix(".pt")])
        x = torch.randn(3, 64)
        want = reference_model(db, "front", number, tmp_path)(x).detach()
        assert (run_exported(py, x) - want).abs().max().item() <= 1e-5
    # no --trial: the first of the front
    assert export(db, format="pt", path=tmp_path / "first.pt", run="front").trial == front[0]


# ---- mistakes: one line, exit 1, nothing written -----------------------------------------


def mistakes(db: Path) -> list[tuple[list[str], str]]:
    kept_not = [t["number"] for t in trials_of(db, "one") if t["state"] == "complete"
                and weights_of(db, "one", t["number"]) is None]
    assert kept_not, "every trial's weights were kept: no case for the error"
    failed = trials_of(db, "broken")[0]
    assert failed["state"] != "complete"
    return [
        (["-r", "nope", "-f", "pt", "-o", "m.pt"], "has no run named 'nope'"),
        (["-r", "one", "-t", "99", "-f", "pt", "-o", "m.pt"], "run one has no trial #99"),
        (["-r", "broken", "-t", str(failed["number"]), "-f", "py", "-o", "m.py"],
         f"is {failed['state']}, not complete"),
        (["-r", "one", "-t", str(kept_not[0]), "-f", "py", "-o", "m.py"], "were not kept"),
        (["-f", "tflite", "-o", "m.tflite"], "unknown format 'tflite'"),
        (["-f", "py", "-o", "m.txt"], "does not end in .py"),
        (["-f", "pt", "-o", "missing/m.pt"], "folder missing does not exist"),
        (["-f", "spec", "-o", "."], "is a directory"),
    ]


def test_each_mistake_is_one_line_and_writes_nothing(db, tmp_path):
    (tmp_path / "keep.txt").write_text("x")
    for args, message in mistakes(db):
        proc = run_cli("export", db, *args, cwd=tmp_path)
        line = one_line_error(proc)
        assert message in line, (args, line)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"], args


def test_the_python_api_raises_the_same_errors(db, tmp_path):
    with pytest.raises(CommandError, match="has no trial #99"):
        export(db, format="spec", path=tmp_path / "x.spec", run="one", trial=99)
    with pytest.raises(CommandError, match="unknown format"):
        export(db, format="tflite", path=tmp_path / "x")
    assert list(tmp_path.iterdir()) == []


def test_a_history_with_no_complete_trial_says_so(tmp_path):
    spec_path = tmp_path / "b.spec"
    spec_path.write_text(SPEC.replace("train { data = digits  epochs = 1 }\n", BROKEN))
    autoarch.search(autoarch.load(spec_path), trials=1, epochs=1, db=str(tmp_path / "b.db"))
    line = one_line_error(run_cli("export", tmp_path / "b.db", "-f", "spec", "-o", "x.spec",
                                  cwd=tmp_path))
    assert "has a complete trial yet" in line
    assert not (tmp_path / "x.spec").exists()


PLUGIN = '''
import torch
from torch import nn

import autoarch


@autoarch.op(shape=lambda x, **_: x)
class BesselUnit(nn.Module):
    """exp(-|x|) I0(x): torch.onnx has no ONNX form for it."""

    def __init__(self, x: autoarch.Shape):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.special.i0e(x)
'''


def test_a_user_op_exports_to_python_and_onnx_names_it_when_it_cannot(tmp_path):
    pytest.importorskip("onnxruntime")
    (tmp_path / "bessel_ops.py").write_text(PLUGIN)
    (tmp_path / "b.spec").write_text(dedent("""
        model b(x: [64]) -> [10] {
          h = linear(x, 16)
          h = bessel_unit(h)
          return linear(h, 10)
        }
        train { data = digits  epochs = 1 }
    """).lstrip())
    plugin = ("--plugin", "bessel_ops.py")
    proc = run_cli("search", "b.spec", "--trials", "1", "--db", "b.db", *plugin, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("export", "b.db", "-f", "py", "-o", "b.py", *plugin, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "torch.special.i0e" in (tmp_path / "b.py").read_text()
    line = one_line_error(run_cli("export", "b.db", "-f", "onnx", "-o", "b.onnx", *plugin,
                                  cwd=tmp_path))
    assert "op 'bessel_unit' at b.spec:3:7" in line and "cannot be expressed in ONNX" in line
    assert "bessel_i0e" in line and not (tmp_path / "b.onnx").exists()

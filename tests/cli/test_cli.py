"""The `autoarch` command line, run as a real process (`python -m autoarch`).

Counts are checked against the formulas of the spec-language contract and costs
against hand-written parameter / FLOP formulas, not against the library's output.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.spec"))


def autoarch(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "AUTOARCH_DEBUG"}
    proc = subprocess.run([sys.executable, "-m", "autoarch", *map(str, args)], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=120)
    # A user mistake is never a Python traceback, whatever the exit code.
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    return proc


def autoarch_json(*args: str | Path) -> dict:
    proc = autoarch(*args, "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def write(tmp_path: Path, text: str, name: str = "bad.spec") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


# ---- start-up ----------------------------------------------------------------


def test_import_autoarch_stays_light() -> None:
    code = ("import autoarch, sys; "
            "heavy = [m for m in ('torch', 'ray', 'triton') if m in sys.modules]; "
            "assert not heavy, heavy")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_console_script_is_installed_next_to_python() -> None:
    script = Path(sys.executable).parent / ("autoarch.exe" if os.name == "nt" else "autoarch")
    assert script.exists()
    proc = subprocess.run([str(script), "--help"], capture_output=True, text=True)
    assert proc.returncode == 0
    for command in ("check", "show", "sample", "ops"):
        assert command in proc.stdout


# ---- check ---------------------------------------------------------------------


@pytest.mark.parametrize("spec", EXAMPLES, ids=lambda p: p.name)
def test_check_every_example(spec: Path) -> None:
    proc = autoarch("check", spec)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok" in proc.stdout


def test_check_reports_a_shape_error_and_exits_1(tmp_path: Path) -> None:
    # Half the candidates add [32] to [64]: the space is fine, the candidates are not.
    path = write(tmp_path, """
        model m(x: [64]) -> [10] {
          h = linear(x, choice(32, 64))
          h = h + linear(x, 64)
          return linear(h, 10)
        }
    """)
    proc = autoarch("check", path.name, cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.startswith("bad.spec:3:7: error: residual add of different shapes")
    assert proc.stderr.splitlines()[2].endswith("^" * len("h + linear(x, 64)"))
    assert "1 invalid" in proc.stdout
    allowed = autoarch("check", path.name, "--allow-invalid", cwd=tmp_path)
    assert allowed.returncode == 0


def test_check_location_line_does_not_wrap(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    path = write(deep, """
        model m(x: [64]) -> [10] {
          h = linear(x, choice(32, 64))
          h = h + linear(x, 64)
          return linear(h, 10)
        }
    """)
    proc = autoarch("check", path)
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[0].startswith(f"{path}:3:7: error: residual add")


def test_check_require_rejections_are_not_errors(tmp_path: Path) -> None:
    path = write(tmp_path, """
        model m(x: [64]) -> [10] {
          let w = choice(32, 64)
          require w == 32, "only the narrow net"
          return linear(linear(x, w), 10)
        }
    """)
    proc = autoarch("check", path)
    assert proc.returncode == 0, proc.stderr
    assert "rejected" in proc.stdout


@pytest.mark.parametrize(("text", "line", "col", "expect"), [
    # an unknown op, with the closest name as a hint
    ("model m(x: [64]) -> [10] {\n  h = lineer(x, 10)\n  return h\n}\n", 2, 7, "linear"),
    # a syntax error
    ("model m(x: [64]) -> [10] {\n  h = linear(x, 10\n  return h\n}\n", 3, 3, "error"),
    # a value out of range
    ("model m(x: [64]) -> [10] {\n  return dropout(linear(x, 10), 1.5)\n}\n", 2, None, "error"),
], ids=["unknown-op", "syntax", "value"])
def test_spec_errors_are_located_with_a_caret(tmp_path: Path, text: str, line: int,
                                              col: int | None, expect: str) -> None:
    path = write(tmp_path, text)
    # every command loads the spec the same way; check them all on the first case only
    commands = ("check", "show", "sample") if "lineer" in text else ("check",)
    for command in commands:
        proc = autoarch(command, path.name, cwd=tmp_path)
        assert proc.returncode == 1, (command, proc.stdout, proc.stderr)
        first = proc.stderr.splitlines()[0]
        prefix = f"bad.spec:{line}:" + (f"{col}:" if col else "")
        assert first.startswith(prefix) and ": error: " in first, proc.stderr
        assert expect in proc.stderr
        source, caret = proc.stderr.splitlines()[1:3]
        assert source.strip().startswith(f"{line} |")
        assert caret.strip().startswith("| ") and caret.rstrip().endswith("^")


def test_caret_stays_under_the_mistake_on_a_long_line(tmp_path: Path) -> None:
    wide = "linear(" * 6 + "x" + ", 64)" * 6
    path = write(tmp_path, f"model m(x: [64]) -> [10] {{\n  h = {wide} + lineer(x, 64)\n"
                           "  return linear(h, 10)\n}\n")
    proc = autoarch("check", path.name, cwd=tmp_path)
    assert proc.returncode == 1
    source, caret = proc.stderr.splitlines()[1:3]
    assert caret.index("^") == source.index("lineer")
    assert caret.count("^") == len("lineer")


def test_missing_file_and_usage_errors(tmp_path: Path) -> None:
    proc = autoarch("check", "nowhere.spec", cwd=tmp_path)
    assert proc.returncode == 1
    assert "no such file" in proc.stderr
    usage = autoarch("show", cwd=tmp_path)
    assert usage.returncode == 2


# ---- show ------------------------------------------------------------------------

CONTRACT_COUNTS = {
    "quickstart.spec": (3 * (6 + 6**2 + 6**3), 3 * (6 + 6**2 + 6**3)),
    "nb201.spec": (5**6, 5**6),
    "hourglass.spec": (2 * sum(3**k for k in range(2, 7)),) * 2,
    "tabular.spec": (None, 3 * 3 * (5 + 5**2 + 5**3 + 5**4)),
    # this repository's own examples (their header comments give the formulas)
    "transformer12.spec": ((4 * 3 * 6) ** 12,) * 2,
    "vit_patches.spec": (2 * 2 * 3 * sum(6**k for k in range(1, 5)),) * 2,
    "kat.spec": (2 * 2 * sum(2**k for k in range(1, 6)),) * 2,
    "conditional.spec": (3 * 2 * 2 * sum(2**k for k in range(1, 5)),) * 2,
}


@pytest.mark.parametrize("name", sorted(CONTRACT_COUNTS))
def test_show_json_counts(name: str) -> None:
    data = autoarch_json("show", ROOT / "examples" / name, "-n", "4")
    count, discrete = CONTRACT_COUNTS[name]
    assert data["count"] == count
    assert data["discrete_count"] == discrete
    names = [d["name"] for d in data["decisions"]]
    assert len(names) == len(set(names))
    for d in data["decisions"]:
        assert {"name", "kind", "domain"} <= d.keys()


def test_show_json_decisions_of_the_quickstart() -> None:
    data = autoarch_json("show", ROOT / "examples" / "quickstart.spec", "-n", "4")
    by_name = {d["name"]: d for d in data["decisions"]}
    assert by_name["digits.width"]["kind"] == "categorical"
    assert by_name["digits.width"]["domain"] == [32, 64, 128]
    # 1 width + 1 depth + up to 3 blocks x (kind + one sub-choice per alternative)
    assert len(data["decisions"]) == 2 + 3 * 4
    assert data["params"]["min"] <= data["params"]["max"]


def test_show_json_continuous_decision() -> None:
    data = autoarch_json("show", ROOT / "examples" / "tabular.spec", "-n", "4")
    lr = next(d for d in data["decisions"] if d["name"] == "lr")
    assert lr["kind"] == "float"
    assert lr["domain"]["low"] == pytest.approx(1e-4) and lr["domain"]["log"] is True


def test_show_table() -> None:
    proc = autoarch("show", ROOT / "examples" / "quickstart.spec", "-n", "4")
    assert proc.returncode == 0, proc.stderr
    assert "digits.width" in proc.stdout
    assert "774" in proc.stdout


# ---- sample ------------------------------------------------------------------------


def hourglass_costs(choices: dict) -> tuple[int, int, int]:
    """(params, trainable params, FLOPs) of an hourglass candidate, by hand.

    Frozen lift 64 -> w; per block layernorm(w) and w -> k -> w; head w -> 10.
    """
    w = choices["hourglass.wide"]
    ks = [v for k, v in choices.items() if k.startswith("hourglass.repeat[")]
    assert len(ks) == choices["hourglass.repeat"]
    lift = 64 * w + w
    blocks = sum(2 * w + (w * k + k) + (k * w + w) for k in ks)
    head = w * 10 + 10
    flops = 2 * (64 * w + sum(2 * w * k for k in ks) + w * 10)
    return lift + blocks + head, blocks + head, flops


def test_sample_json_is_deterministic_and_costed() -> None:
    spec = ROOT / "examples" / "hourglass.spec"
    first = autoarch_json("sample", spec, "-n", "3", "--seed", "7")
    again = autoarch_json("sample", spec, "-n", "3", "--seed", "7")
    assert first == again
    cands = first["candidates"]
    assert len(cands) == 3
    for c in cands:
        assert {"choices", "params", "flops", "hash"} <= c.keys()
        assert c["valid"] is True
        params, trainable, flops = hourglass_costs(c["choices"])
        assert (c["params"], c["trainable_params"], c["flops"]) == (params, trainable, flops)
        assert isinstance(c["hash"], str) and c["hash"]
    other = autoarch_json("sample", spec, "-n", "3", "--seed", "8")
    assert other["candidates"][0] == cands[1]  # seeds run on: seed 8 is the second of seed 7


def test_sample_json_quickstart() -> None:
    data = autoarch_json("sample", ROOT / "examples" / "quickstart.spec", "-n", "3",
                         "--seed", "7")
    assert len(data["candidates"]) == 3
    for c in data["candidates"]:
        assert c["choices"]["digits.width"] in (32, 64, 128)
        assert c["params"] > 0 and c["flops"] > 0


def test_sample_reports_invalid_candidates(tmp_path: Path) -> None:
    path = write(tmp_path, """
        model m(x: [64]) -> [10] {
          h = linear(x, 32)
          h = h + linear(x, 64)
          return linear(h, 10)
        }
    """)
    proc = autoarch("sample", path, "-n", "1", "--json")
    assert proc.returncode == 0, proc.stderr
    (cand,) = json.loads(proc.stdout)["candidates"]
    assert cand["valid"] is False
    assert cand["where"] == f"{path}:3:7"


# ---- ops -------------------------------------------------------------------------


def test_ops_lists_the_registry() -> None:
    proc = autoarch("ops")
    assert proc.returncode == 0, proc.stderr
    for name in ("linear", "attention", "kan", "mlp", "conv", "patchify"):
        assert name in proc.stdout
    data = autoarch_json("ops")
    names = [op["name"] for op in data["ops"]]
    assert names == sorted(names)
    assert {"linear", "attention", "kan"} <= set(names)
    assert not {"input", "output", "add"} & set(names)  # internal nodes stay hidden


def test_ops_one_op() -> None:
    data = autoarch_json("ops", "kan")
    args = {a["name"]: a for a in data["args"]}
    assert args["x"]["required"] and args["out"]["required"]
    assert args["basis"]["default"] == "rational"
    assert args["basis"]["symbols"] == ["rational", "bspline", "rbf", "relu"]
    assert data["signature"].startswith("kan(x, out, basis = rational, groups = 8")
    text = autoarch("ops", "attention")
    assert text.returncode == 0
    assert "hedgehog" in text.stdout and "[n, d]" in text.stdout


def test_ops_unknown_name_suggests() -> None:
    proc = autoarch("ops", "lineer")
    assert proc.returncode == 1
    assert "unknown op 'lineer'" in proc.stderr
    assert "did you mean 'linear'" in proc.stderr


def test_show_separates_require_rejections_from_invalid_candidates() -> None:
    import autoarch as api

    path = ROOT / "examples" / "conditional.spec"
    data = autoarch_json("show", path, "--samples", "24", "--seed", "3")
    spec = api.load(path)
    outcomes = {"rejected": 0, "invalid": 0}
    for i in range(24):
        try:
            spec.build(spec.space().sample(3 + i))
        except api.RequireError:
            outcomes["rejected"] += 1
        except api.CandidateError:
            outcomes["invalid"] += 1
    assert (data["rejected"], data["invalid"]) == (outcomes["rejected"], outcomes["invalid"])
    assert data["rejected"] > 0


def test_compile_prints_code_and_saves_a_loadable_model(tmp_path: Path) -> None:
    import torch

    import autoarch as api

    path = ROOT / "examples" / "hourglass.spec"
    target = tmp_path / "model.pt"
    proc = autoarch("compile", path, "--sample", "2", "--seed", "0",
                    "-c", "hourglass.wide=512", "--print-code", "-o", target)
    assert proc.returncode == 0, proc.stderr
    assert "def forward(self, x):" in proc.stdout and "hourglass.wide = 512" in proc.stdout
    spec = api.load(path)
    choices = {**spec.space().sample(2), "hourglass.wide": 512}
    want = api.compile(spec, choices, seed=0)
    got = api.load_model(target)
    x = torch.randn(2, 64)
    torch.testing.assert_close(got(x), want(x))


def test_compile_with_a_missing_decision_is_a_located_error() -> None:
    proc = autoarch("compile", ROOT / "examples" / "hourglass.spec", "-c", "hourglass.wide=256")
    assert proc.returncode == 1
    assert "no value for decision hourglass.repeat" in proc.stderr


# ---- user text is printed as it is --------------------------------------------------

#: text that rich would read as markup (a closing tag that closes nothing, a style) or
#: as an emoji code, if the consoles read either
TAGS = ("[/x]", "[bold]b", ":x:")
TAG_SPEC = """
model m(x: [64]) -> [10] {
  let tag = choice("[/x]", "[bold]b", ":x:")
  return linear(x, 10)
}
"""


def wide_env() -> dict[str, str]:
    # wide enough that no table cell folds a tag over two lines
    return {k: v for k, v in os.environ.items() if k != "AUTOARCH_DEBUG"} | {"COLUMNS": "300"}


def autoarch_wide(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "autoarch", *map(str, args)], cwd=cwd,
                          env=wide_env(), capture_output=True, text=True, timeout=120)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    return proc


def assert_verbatim(text: str, tags: tuple[str, ...] = TAGS) -> None:
    for tag in tags:
        assert tag in text, (tag, text)
    assert "\N{CROSS MARK}" not in text  # what rich makes of :x:


@pytest.mark.parametrize("args", [
    ("show",), ("sample", "-n", "12"),
    ("compile", "-c", "m.tag=[/x]"), ("compile", "-c", "m.tag=[bold]b"),
    ("compile", "-c", "m.tag=:x:"),
], ids=lambda a: " ".join(a))
def test_string_choices_print_verbatim(tmp_path: Path, args: tuple[str, ...]) -> None:
    path = write(tmp_path, TAG_SPEC, "tags.spec")
    proc = autoarch_wide(args[0], path, *args[1:])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    tags = TAGS if args[0] != "compile" else (args[-1].partition("=")[2],)
    assert_verbatim(proc.stdout, tags)
    if args[0] == "compile":
        assert f"    m.tag = {tags[0]}" in proc.stdout.splitlines()


def test_file_names_and_source_lines_print_verbatim(tmp_path: Path) -> None:
    # the candidate with tag "[/x]" has a shape error: check prints its source line
    path = write(tmp_path, """
        model m(x: [64]) -> [10] {
          let tag = choice("[/x]", "[bold]b", ":x:")
          h = linear(x, 32 if tag == "[/x]" else 64) + linear(x, 64)  # [bold]b :x:
          return linear(h, 10)
        }
    """, "[bold]b :x: [x].spec")  # no "/" in a file name
    proc = autoarch_wide("check", path.name, cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stderr.startswith("[bold]b :x: [x].spec:3:7: error: residual add")
    assert proc.stderr.splitlines()[1].endswith(
        'h = linear(x, 32 if tag == "[/x]" else 64) + linear(x, 64)  # [bold]b :x:')
    assert proc.stdout.startswith("[bold]b :x: [x].spec: 1 invalid")
    assert_verbatim(proc.stdout + proc.stderr)


RUN_NAME = "[/x] [bold]b :x:"


@pytest.fixture(scope="module")
def tagged_history(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """A real history: one trial of TAG_SPEC (trained), in a run named with all three tags.

    Returns the database, the search's output and the chosen tag.
    """
    folder = tmp_path_factory.mktemp("tagged")
    (folder / "tags.spec").write_text(textwrap.dedent("""
        model m(x: [64]) -> [10] {
          let tag = choice("[/x]", "[bold]b", ":x:")
          return linear(linear(x, choice(8, 16)), 10)
        }
        train { data = digits  epochs = 1 }
    """))
    proc = autoarch_wide("search", "tags.spec", "--trials", "1", "--epochs", "1",
                         "--db", "runs.db", "--name", RUN_NAME, cwd=folder)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with sqlite3.connect(folder / "runs.db") as db:  # the stored truth, read directly
        (choices,) = db.execute("SELECT choices FROM trials").fetchone()
    return folder / "runs.db", proc.stdout, json.loads(choices)["m.tag"]


def test_search_prints_run_names_and_choices_verbatim(tagged_history) -> None:
    _, output, tag = tagged_history
    assert f"starting run {RUN_NAME}: 0/1 trials done" in output
    assert f"m.tag = {tag}" in output  # the best table at the end
    assert_verbatim(output, (RUN_NAME, tag))


@pytest.mark.parametrize("args", [("history",), ("history", "--run", RUN_NAME), ("best",)],
                         ids=["history", "history --run", "best"])
def test_history_and_best_print_run_names_and_choices_verbatim(
        tagged_history, args: tuple[str, ...]) -> None:
    db, _, tag = tagged_history
    proc = autoarch_wide(args[0], db, *args[1:])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert_verbatim(proc.stdout, (RUN_NAME,) if args == ("history",) else (RUN_NAME, tag))


# ---- warnings ---------------------------------------------------------------------------

BIDI_SPEC = """
model m(x: [64]) -> [10] {
  # reads backwards: \u202e
  let tag = choice("a\u202eb", "c")
  return linear(x, 10)
}
"""
BIDI_WARNING = "warning: bidirectional control character U+202E (RIGHT-TO-LEFT OVERRIDE) in "


@pytest.mark.parametrize("args", [("check",), ("show",), ("sample", "-n", "1"),
                                  ("compile", "-c", "m.tag=c"), ("show", "--json")],
                         ids=lambda a: " ".join(a))
def test_every_command_prints_the_spec_warnings(tmp_path: Path, args: tuple[str, ...]) -> None:
    write(tmp_path, BIDI_SPEC, "bidi.spec")
    proc = autoarch(args[0], "bidi.spec", *args[1:], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    heads = [ln for ln in lines if ": warning: " in ln]
    tail = ": the line may display in another order than it is read"
    assert heads == [f"bidi.spec:2:22: {BIDI_WARNING}a comment{tail}",
                     f"bidi.spec:3:22: {BIDI_WARNING}a string{tail}"], proc.stderr
    assert "\u202e" not in proc.stderr
    if args == ("check",):
        assert proc.stdout.rstrip().endswith("; 2 warnings")
    if args == ("show", "--json"):
        assert json.loads(proc.stdout)["model"] == "m"  # stdout stays JSON


def test_warnings_come_before_an_error(tmp_path: Path) -> None:
    write(tmp_path, BIDI_SPEC.replace("linear(x, 10)", "lineer(x, 10)"), "bidi.spec")
    proc = autoarch("check", "bidi.spec", cwd=tmp_path)
    assert proc.returncode == 1
    heads = [ln for ln in proc.stderr.splitlines() if ln.startswith("bidi.spec:")]
    assert [h.split(": ")[1] for h in heads] == ["warning", "warning", "error"], proc.stderr


# ---- help -------------------------------------------------------------------------------

#: every command's on/off flags, and options that take a value, with the value's type
FLAGS = {"check": ["--allow-invalid"], "show": ["--json"], "sample": ["--json"],
         "ops": ["--json"], "compile": ["--print-code"], "search": [],
         "history": ["--json"], "best": ["--json"]}
VALUED = {"check": ("--seed", "<int>"), "show": ("--seed", "<int>"),
          "sample": ("--seed", "<int>"), "ops": None, "compile": ("--output", "<str>"),
          "search": ("--db", "<str>"), "history": ("--run", "<str>"), "best": ("--run", "<str>")}


def _help_row(text: str, option: str) -> list[str]:
    """The words of the help row of ``option``, table borders left out."""
    row = next(ln for ln in text.splitlines() if f" {option} " in ln)
    return [w for w in row.replace("│", " ").split() if w != "*"]


@pytest.mark.parametrize("command", ["", *FLAGS])
def test_help_shows_flags_as_flags(command: str) -> None:
    proc = autoarch_wide(*([command] if command else []), "--help")
    assert proc.returncode == 0, proc.stderr
    assert "<bool>" not in proc.stdout, proc.stdout
    for flag in ["--help", *FLAGS.get(command, [])]:
        words = _help_row(proc.stdout, flag)
        assert words[0] == flag and not words[1].startswith("<"), words
    if VALUED.get(command):  # an option that takes a value still says which kind
        option, kind = VALUED[command]
        assert kind in _help_row(proc.stdout, option), proc.stdout

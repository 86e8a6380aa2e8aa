"""Static checks and site naming: naming returns its names, checks (the Program builder)
stores them, and neither module imports the other in a cycle.

Expected names are written by hand from the rules in docs/space.md.
"""

from __future__ import annotations

import ast as pyast
from pathlib import Path

from autoarch.compiler import checks, naming
from autoarch.dsl import ast
from autoarch.dsl.parser import parse

COMPILER = Path(checks.__file__).resolve().parent

SPEC = """\
def block(x, k = 2) = linear(x, 8 * k)
model m(x: [8]) -> [4] {
  let width = choice(8, 16)
  h = linear(x, width)
  repeat int(1, 3) as i {
    h = h + choice(a: block(h), b: block(h, k = choice(2, 4)))
  }
  with init = choice(xavier, kaiming) { h = linear(h, 4) }
  repeat 2 { h = linear(h, int(4, 8)) }
  return linear(h, 4)
}
train { epochs = choice(1, 2) }
"""

#: (the node's source text, its local name), by hand: decisions after the statement or
#: `with` key they stand in, then labels and keywords; repeats after `as i` or "repeat";
#: def calls after the def, numbered when the same def is called twice in one scope
EXPECTED = {
    ("Call", "choice(8, 16)"): "width",
    ("Repeat", "repeat int(1, 3) as i"): "i",
    ("Call", "int(1, 3)"): "i",
    ("Call", "choice(a: block(h), b: block(h, k = choice(2, 4)))"): "h",
    ("Call", "block(h)"): "block#1",
    ("Call", "block(h, k = choice(2, 4))"): "block#2",
    ("Call", "choice(2, 4)"): "h.b.k",
    ("Call", "choice(xavier, kaiming)"): "init",
    ("Repeat", "repeat 2"): "repeat",
    ("Call", "int(4, 8)"): "h",
    ("Call", "choice(1, 2)"): "epochs",
}


def _text(node: ast.Node, source: str) -> str:
    sp = node.span
    line = source.split("\n")[sp.line - 1]
    end = sp.end_column - 1 if sp.end_line == sp.line else len(line)
    text = line[sp.column - 1: end]
    return text.split(" {")[0] if isinstance(node, ast.Repeat) else text


def _by_text(module: ast.Module, names: dict[int, str]) -> dict[tuple[str, str], str]:
    nodes = {id(n): n for n in ast.walk(module)}
    assert set(names) <= set(nodes), "every key is the id of a node of the module"
    return {(type(nodes[k]).__name__, _text(nodes[k], module.source)): v
            for k, v in names.items()}


def test_name_sites_returns_the_names_of_a_bare_module():
    module = parse(SPEC, "t.spec")
    names = naming.name_sites(module)  # no Program needed
    assert isinstance(names, dict)
    assert _by_text(module, names) == EXPECTED


def test_the_program_stores_the_names_naming_returns():
    module = parse(SPEC, "t.spec")
    prog = checks.analyze(module)
    assert prog.names == naming.name_sites(module)
    assert _by_text(module, prog.names) == EXPECTED


def test_every_decision_call_and_def_call_and_repeat_has_a_name():
    module = parse(SPEC, "t.spec")
    names = naming.name_sites(module)
    defs = {d.name for d in module.items if isinstance(d, ast.Def)}
    for node in ast.walk(module):
        named = isinstance(node, ast.Repeat) or (
            isinstance(node, ast.Call) and (node.func in checks.DECISION_CALLS
                                            or node.func in defs))
        # the def's own body calls only `linear`: no site there
        assert (id(node) in names) == named, _text(node, SPEC)


def _imports(path: Path) -> set[str]:
    """Modules a source file imports, anywhere in it (TYPE_CHECKING blocks included)."""
    out: set[str] = set()
    for node in pyast.walk(pyast.parse(path.read_text())):
        if isinstance(node, pyast.ImportFrom):
            base = "." * node.level + (node.module or "")
            out.add(base)
            out.update(f"{base}.{a.name}" if node.module else f"{base}{a.name}"
                       for a in node.names)
        elif isinstance(node, pyast.Import):
            out.update(a.name for a in node.names)
    return out


def test_naming_does_not_import_checks():
    imported = _imports(COMPILER / "naming.py")
    assert not {m for m in imported if m.split(".")[-1] == "checks"}, imported
    assert ".naming" in _imports(COMPILER / "checks.py")  # the one direction there is

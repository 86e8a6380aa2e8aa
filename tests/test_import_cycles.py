"""The package has no import cycles, counting every import statement.

Imports inside functions and under ``TYPE_CHECKING`` count too: a lazy import
hides a cycle from the interpreter, not from the design. The reference is the
source itself, parsed with :mod:`ast`, not the import system's behaviour.
"""

from __future__ import annotations

import ast
import importlib.util
import pkgutil
from pathlib import Path

import networkx as nx

import autoarch

#: the subpackages (installed from their own folders, see package-dir in pyproject.toml)
PACKAGES = ("autoarch.cli", "autoarch.dsl", "autoarch.compiler", "autoarch.backends",
            "autoarch.kernels", "autoarch.search")


def _modules() -> dict[str, Path]:
    """Every module of the installed package, by dotted name."""
    out = {"autoarch": Path(autoarch.__file__)}
    for info in pkgutil.iter_modules(autoarch.__path__, "autoarch."):  # autoarch/*.py
        if not info.ispkg:
            out[info.name] = Path(importlib.util.find_spec(info.name).origin)
    for pkg in PACKAGES:
        found = [pkg] + [i.name for i in pkgutil.walk_packages(
            importlib.import_module(pkg).__path__, pkg + ".")]
        for name in found:
            spec = importlib.util.find_spec(name)
            assert spec is not None and spec.origin is not None, name
            out[name] = Path(spec.origin)
    return out


def _resolve(module: str, is_package: bool, level: int, name: str | None) -> str:
    if level == 0:
        return name or ""
    parts = module.split(".")
    base = parts if is_package else parts[:-1]
    base = base[:len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def import_graph(mods: dict[str, Path] | None = None) -> nx.DiGraph:
    mods = mods if mods is not None else _modules()
    g = nx.DiGraph()
    g.add_nodes_from(mods)
    for name, path in mods.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(name, is_package, node.level, node.module)
                subs = [f"{base}.{a.name}" for a in node.names]
                # `from . import x` of a submodule x does not run through the package
                targets = [s for s in subs if s in mods] or [base]
                if len(targets) < len(subs):
                    targets.append(base)
            for t in targets:
                while t and t not in mods:  # `from x import y` where y is not a module
                    t = t.rpartition(".")[0]
                if t and t != name and t.startswith("autoarch"):
                    g.add_edge(name, t)
    return g


def test_the_graph_sees_known_imports():
    g = import_graph()
    assert g.has_edge("autoarch.search.driver", "autoarch.search.history")
    assert g.has_edge("autoarch.compiler.spec", "autoarch.dsl")  # `from ..dsl import ...`
    assert len(g) > 40


def cycles(g: nx.DiGraph) -> list[list[str]]:
    return [sorted(c) for c in nx.strongly_connected_components(g) if len(c) > 1]


def test_no_import_cycles():
    found = cycles(import_graph())
    assert found == [], "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_a_lazy_or_type_only_cycle_is_found(tmp_path):
    """The check can fail: two modules that import each other inside a function and
    under TYPE_CHECKING, a third that only imports one of them."""
    (tmp_path / "a.py").write_text("def f():\n    from .b import g\n")
    (tmp_path / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                   "    from . import a\n")
    (tmp_path / "c.py").write_text("from .a import f\n")
    mods = {f"autoarch.x.{n}": tmp_path / f"{n}.py" for n in "abc"}
    assert cycles(import_graph(mods)) == [["autoarch.x.a", "autoarch.x.b"]]

"""Plugins on the command line: ops from an installed package's `autoarch.ops` entry
point, from `--plugin MODULE` and from `--plugin path/to/ops.py`; a broken plugin is
one line, never a traceback.

The packages are installed for real (`pip install --target`, offline) into temporary
folders that the `autoarch` processes see through PYTHONPATH. Costs are checked
against the op's formula worked out by hand: 2 (d out + out) parameters.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import autoarch

ROOT = Path(__file__).resolve().parents[2]

OPS_MODULE = '''\
import torch
from torch import nn

import autoarch


@autoarch.op(shape=lambda x, out, **_: (*x[:-1], out))
class DemoGate(nn.Module):
    """[..., d] -> [..., out]: value(x) * sigmoid(gate(x))."""

    def __init__(self, x: autoarch.Shape, out: int):
        super().__init__()
        self.value = nn.Linear(x[-1], out)
        self.gate = nn.Linear(x[-1], out)

    def forward(self, x):
        return self.value(x) * torch.sigmoid(self.gate(x))
'''

SPEC = """\
model m(x: [8]) -> [4] {
  return demo_gate(x, 4)
}
"""

#: demo_gate(x: [8], 4): two Linear(8, 4) with biases
PARAMS = 2 * (8 * 4 + 4)


def _package(root: Path, dist: str, module: str, source: str) -> Path:
    """A source tree of distribution ``dist`` with one module and an entry point."""
    src = root / dist
    (src / module).mkdir(parents=True)
    (src / module / "__init__.py").write_text(source)
    (src / "pyproject.toml").write_text(textwrap.dedent(f"""\
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "{dist}"
        version = "0.1"

        [project.entry-points."autoarch.ops"]
        {module.split("_")[0]} = "{module}"

        [tool.setuptools]
        packages = ["{module}"]
        """))
    return src


def _install(src: Path, target: Path) -> Path:
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index",
                           "--no-build-isolation", "--quiet", "--target", str(target), str(src)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return target


@pytest.fixture(scope="module")
def sites(tmp_path_factory) -> dict[str, Path]:
    """Folders with a package installed: "good" (demo_gate) and "broken" (raises)."""
    root = tmp_path_factory.mktemp("plugins")
    good = _package(root / "src", "demo-ops", "demo_ops", OPS_MODULE)
    broken = _package(root / "src", "broken-ops", "broken_ops",
                      "raise RuntimeError('the plugin is broken')\n")
    return {"good": _install(good, root / "site-good"),
            "broken": _install(broken, root / "site-broken")}


def autoarch_cli(*args: str | Path, cwd: Path, pythonpath: Path | None = None,
                 **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items()
               if k not in ("AUTOARCH_DEBUG", "AUTOARCH_NO_PLUGINS", "PYTHONPATH")}
    if pythonpath is not None:
        environ["PYTHONPATH"] = str(pythonpath)
    environ.update(env)
    proc = subprocess.run([sys.executable, "-m", "autoarch", *map(str, args)], cwd=cwd,
                          env=environ, capture_output=True, text=True, timeout=180)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    return proc


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "uses.spec"
    path.write_text(SPEC)
    return path


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


# ---- entry points -----------------------------------------------------------


def test_an_installed_entry_point_is_loaded_for_check_compile_and_ops(sites, spec_file):
    site, cwd = sites["good"], spec_file.parent
    proc = autoarch_cli("check", spec_file, cwd=cwd, pythonpath=site)
    assert proc.returncode == 0 and ": ok" in proc.stdout, proc.stdout + proc.stderr
    proc = autoarch_cli("compile", spec_file, "--print-code", "-o", cwd / "m.pt", cwd=cwd,
                        pythonpath=site)
    assert proc.returncode == 0, proc.stderr
    assert f"params {PARAMS}," in proc.stdout and "self.demo_gate(x)" in proc.stdout
    assert (cwd / "m.pt").exists()
    listing = json.loads(autoarch_cli("ops", "--json", cwd=cwd, pythonpath=site).stdout)
    ops = {op["name"]: op for op in listing["ops"]}
    assert ops["demo_gate"]["plugin"] == "demo_ops" and ops["linear"]["plugin"] is None
    assert [a["name"] for a in ops["demo_gate"]["args"]] == ["x", "out", "init", "sparsity",
                                                              "frozen"]


def test_no_plugins_skips_entry_points(sites, spec_file):
    proc = autoarch_cli("check", spec_file, cwd=spec_file.parent, pythonpath=sites["good"],
                        AUTOARCH_NO_PLUGINS="1")
    assert proc.returncode == 1 and "unknown op 'demo_gate'" in proc.stderr


@pytest.mark.parametrize("command", [["check"], ["ops"]])
def test_a_broken_entry_point_is_one_line(sites, spec_file, command):
    args = [*command, spec_file] if command == ["check"] else command
    line = one_line_error(autoarch_cli(*args, cwd=spec_file.parent,
                                       pythonpath=sites["broken"]))
    assert "'broken = broken_ops'" in line and "broken-ops 0.1" in line
    assert "RuntimeError: the plugin is broken" in line and "AUTOARCH_NO_PLUGINS=1" in line


# ---- --plugin ----------------------------------------------------------------


def test_plugin_by_module_name(tmp_path, spec_file):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "my_ops.py").write_text(OPS_MODULE)
    proc = autoarch_cli("show", spec_file, "--plugin", "my_ops", "--json", cwd=tmp_path,
                        pythonpath=tmp_path / "lib")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["params"] == {"min": PARAMS, "max": PARAMS}


def test_plugin_by_file_path(tmp_path, spec_file):
    (tmp_path / "blocks").mkdir()
    (tmp_path / "blocks" / "ops.py").write_text(OPS_MODULE)
    proc = autoarch_cli("check", "--plugin", "blocks/ops.py", spec_file, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    proc = autoarch_cli("ops", "demo_gate", "--plugin", "blocks/ops.py", cwd=tmp_path)
    assert proc.returncode == 0 and "blocks/ops.py" in proc.stdout


@pytest.mark.parametrize(("plugin", "words"), [
    ("nonexistent", "plugin 'nonexistent' cannot be imported: ModuleNotFoundError"),
    ("missing/ops.py", "plugin missing/ops.py: no such file"),
    ("raises.py", "plugin raises.py cannot be imported: ZeroDivisionError"),
])
def test_a_plugin_that_cannot_be_loaded_is_one_line(tmp_path, spec_file, plugin, words):
    (tmp_path / "raises.py").write_text("1 / 0\n")
    line = one_line_error(autoarch_cli("check", spec_file, "--plugin", plugin, cwd=tmp_path))
    assert words in line


def test_load_plugins_from_python_says_what_is_wrong():
    with pytest.raises(autoarch.CommandError, match="plugin 'no_such_plugin_module'"):
        autoarch.load_plugins("no_such_plugin_module")

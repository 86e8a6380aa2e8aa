"""The built wheel holds every file the package reads at run time.

A file beside the code that the wheel leaves out (a grammar, a kernel's C source, a
shipped table) works from a checkout and an editable install and fails for everyone
who installs the wheel, so the wheel is built for real (setuptools, as pip builds it)
from a copy of the source tree and its contents compared with the package folders.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def package_dirs() -> dict[str, Path]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapping = config.get("package-dir", {})
    return {name: ROOT / mapping.get(name, name.replace(".", "/")) for name in config["packages"]}


def data_files() -> set[str]:
    """Each package folder's own files that are not Python, as paths in the wheel."""
    found = set()
    for name, folder in package_dirs().items():
        for path in folder.iterdir():
            if path.is_file() and path.suffix not in (".py", ".pyc"):
                found.add(f"{name.replace('.', '/')}/{path.name}")
        for sub in folder.iterdir():  # data folders (not packages themselves)
            if sub.is_dir() and sub.name != "__pycache__" and not (sub / "__init__.py").exists():
                for path in sub.rglob("*"):
                    if path.is_file():
                        found.add(f"{name.replace('.', '/')}/{path.relative_to(folder)}")
    return found


def test_the_wheel_holds_every_data_file_of_the_package(tmp_path):
    if not shutil.which("git") or not (ROOT / ".git").exists():
        pytest.skip("needs the git checkout (its tracked files are what a wheel is built from)")
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    src = tmp_path / "src"
    for rel in tracked:
        if (ROOT / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, src / rel)
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(tmp_path / "dist"), str(src)],
        capture_output=True, text=True, timeout=300)
    if proc.returncode != 0 and "No module named" in proc.stderr:
        pytest.skip(f"cannot build a wheel here: {proc.stderr.strip().splitlines()[-1]}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (wheel,) = (tmp_path / "dist").glob("autoarch-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    tracked_data = {f for f in data_files()
                    if any(Path(t).name == Path(f).name for t in tracked)}
    assert "autoarch/kernels/rational_cpu.c" in tracked_data  # the check sees the C source
    assert tracked_data - names == set()
    # and every module of every package
    for name, folder in package_dirs().items():
        for path in folder.glob("*.py"):
            assert f"{name.replace('.', '/')}/{path.name}" in names

"""Plugins: Python modules that register ops (``@autoarch.op``) when imported.

A plugin is named by its dotted module name (``my_ops``) or by the path of a
``.py`` file (``path/to/ops.py``): :func:`load_plugins`, ``--plugin`` on the
command line. Installed packages declare theirs as entry points of the group
``autoarch.ops``; those load once per process, the first time a spec is loaded
or the ops are listed (:func:`load_entry_points`), unless ``AUTOARCH_NO_PLUGINS=1``.

A plugin that cannot be imported is one line (a :class:`CommandError`) naming it
and what went wrong, never a traceback.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path

from ..dsl.errors import CommandError

#: the entry-point group installed packages declare their op modules in
ENTRY_POINT_GROUP = "autoarch.ops"
#: plugin modules loaded from a file path (module name -> absolute path): how a Ray
#: worker, which cannot import them by name, loads them again
PATH_MODULES: dict[str, str] = {}

_entry_points_loaded = False


def load_plugins(*names: str) -> None:
    """Import plugin modules, by dotted name or ``.py`` path, registering their ops.

    With no names, load the installed packages' ``autoarch.ops`` entry points (once
    per process; ``AUTOARCH_NO_PLUGINS=1`` skips them).

    Example:
        >>> autoarch.load_plugins("my_ops", "experiments/blocks.py")
        >>> spec = autoarch.load("uses_my_ops.spec")
    """
    if not names:
        load_entry_points()
    for name in names:
        if name.endswith(".py") or "/" in name or os.sep in name:
            _load_file(name)
        else:
            _load_module(name)


def _load_module(name: str) -> None:
    try:
        importlib.import_module(name)
    except Exception as e:
        hint = None
        if isinstance(e, ModuleNotFoundError) and e.name == name.split(".")[0]:
            hint = "is it installed, or on PYTHONPATH? A file is given by its path: x/ops.py"
        raise CommandError(f"plugin '{name}' cannot be imported: {_why(e)}",
                           hint=hint) from None


def _load_file(path: str) -> None:
    p = Path(path)
    if not p.is_file():
        raise CommandError(f"plugin {path}: no such file",
                           hint="give the path of a .py file, or a module name like my_ops")
    name = p.stem
    if not name.isidentifier():
        raise CommandError(f"plugin {path}: '{name}' is not a Python module name",
                           hint="rename the file (letters, digits and _)")
    real = os.path.realpath(p)
    loaded = sys.modules.get(name)
    if loaded is not None:
        where = getattr(loaded, "__file__", None)
        if where is not None and os.path.realpath(where) == real:
            return  # loaded already, by name or by this path
        raise CommandError(f"plugin {path}: a module named '{name}' is loaded already "
                           f"(from {where or 'built-ins'})", hint="rename the file")
    spec = importlib.util.spec_from_file_location(name, p)
    if spec is None or spec.loader is None:
        raise CommandError(f"plugin {path} cannot be imported: not a Python file")
    module = importlib.util.module_from_spec(spec)
    # in sys.modules while it runs, as an import would be: pickling and dataclasses need it
    sys.modules[name] = module
    PATH_MODULES[name] = real
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        sys.modules.pop(name, None)
        PATH_MODULES.pop(name, None)
        raise CommandError(f"plugin {path} cannot be imported: {_why(e)}") from None


def load_entry_points() -> None:
    """Load every installed ``autoarch.ops`` entry point, once per process."""
    global _entry_points_loaded
    if _entry_points_loaded or os.environ.get("AUTOARCH_NO_PLUGINS", "") not in ("", "0"):
        return
    from importlib.metadata import entry_points

    _entry_points_loaded = True  # first: a plugin that loads a spec must not recurse
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name):
        try:
            ep.load()
        except Exception as e:
            _entry_points_loaded = False  # the next load says so again
            dist = getattr(ep, "dist", None)
            of = f" of {dist.name} {dist.version}" if dist is not None else ""
            raise CommandError(
                f"plugin entry point '{ep.name} = {ep.value}'{of} cannot be loaded: {_why(e)}",
                hint=(f"fix or uninstall {dist.name}" if dist is not None else "fix it")
                + ", or set AUTOARCH_NO_PLUGINS=1 to skip installed plugins") from None


def _why(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text}" if text else type(e).__name__

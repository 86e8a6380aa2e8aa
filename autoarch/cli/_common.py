"""Helpers shared by the commands: loading, writing outputs, and summarising candidates."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import typer
from typer.core import TyperCommand, TyperGroup, TyperOption

from autoarch.compiler.graph import Graph
from autoarch.compiler.plugins import load_plugins
from autoarch.compiler.spec import Spec, load, to_jsonable
from autoarch.dsl import bidi_controls
from autoarch.dsl.errors import CandidateError, CommandError, SpecError, SpecWarning

from ._console import err, out

#: most candidates one command samples (``-n``, ``--samples``): more is a typo, and
#: would keep it busy for hours
MAX_SAMPLES = 100_000


class _FlagsShowNoValue:
    """Help that shows an on/off flag as a flag: ``--json``, not ``--json <bool>``.

    Typer's rich help prints every option's type, flags' (and ``--help``'s) included,
    as if they took a value. A flag's metavar is what it shows instead: an empty one.
    """

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)  # type: ignore[misc]
        for p in params:
            if isinstance(p, TyperOption) and (p.is_flag or p.count) and p.metavar is None:
                p.metavar = ""
        return params


class Command(_FlagsShowNoValue, TyperCommand):
    """The click command class of every autoarch command: ``app.command(cls=Command)``."""


class Group(_FlagsShowNoValue, TyperGroup):
    """The click group class of the ``autoarch`` app: ``typer.Typer(cls=Group)``."""


def _load_plugin_option(value: list[str] | None) -> list[str] | None:
    if value:
        load_plugins(*value)
    return value


#: ``--plugin MODULE`` (repeatable), on every command that reads a spec or lists ops:
#: the modules are imported while the command line is read, before the spec is loaded
PLUGIN_OPTION: Any = typer.Option(
    None, "--plugin", metavar="MODULE", callback=_load_plugin_option,
    help="import a module (my_ops) or .py file that registers ops with autoarch.op "
         "(repeatable)")


def load_spec(path: str) -> Spec:
    """The spec at ``path``; every command loads its spec here, so this is where the
    spec's warnings are printed (to stderr, before anything else, an error included)."""
    try:
        spec = load(path)
    except SpecError as e:
        if e.source is not None and e.filename is not None:
            print_warnings(bidi_controls(e.source, e.filename))
        raise
    print_warnings(spec.warnings)
    return spec


def print_warnings(warnings: list[SpecWarning]) -> None:
    for w in warnings:
        # soft_wrap: as errors, a long source line must not wrap under the caret
        err.print(w.format(), soft_wrap=True)


def check_output_path(path: str, flag: str = "-o") -> Path:
    """``path`` as a Path, if an output file could be written there; else a CommandError.

    Commands call it before long work, so that a typo in ``-o`` costs nothing.
    """
    if not path:
        raise CommandError(f"{flag} needs a file name", hint=f"for example {flag} model.pt")
    # a link is followed, as open() would: the file it points to is the one replaced
    target = Path(os.path.realpath(path))
    if target.is_dir() or path.endswith(("/", os.sep)):
        what = "is a directory" if target.is_dir() else "names a folder"
        raise CommandError(f"{path} {what}",
                           hint=f"give {flag} a file name, like {Path(path) / 'model.pt'}")
    if target.exists() and not target.is_file():
        # a device or a pipe: it would be replaced by a file, not written
        raise CommandError(f"cannot write {path}: it is not a regular file",
                           hint=f"give {flag} a file name")
    folder = target.parent
    if not folder.is_dir():
        what = "does not exist" if not folder.exists() else "is not a folder"
        raise CommandError(f"cannot write {path}: folder {Path(path).parent} {what}",
                           hint=f"create the folder first, or give {flag} another path")
    if target.exists() and not os.access(target, os.W_OK):
        # replacing it would work (the folder is writable), but it is not ours to replace
        raise CommandError(f"cannot write {path}: it is read-only",
                           hint=f"make it writable, or give {flag} another path")
    return target


def write_output(path: str, write: Callable[[BinaryIO], None], *, flag: str = "-o") -> None:
    """Write an output file whole or not at all: ``write`` fills a temporary file in
    the same folder, which then replaces ``path`` in one rename.

    A failure (no such folder, a directory in the way, no permission, a full disk)
    is a one-line CommandError, and leaves neither a partial file nor a temporary one;
    a file already at ``path`` stays as it was.
    """
    target = check_output_path(path, flag)
    try:
        # the mode a plain open() would give: the old file's, or 0o666 less the umask
        mode = stat.S_IMODE(target.stat().st_mode)
    except OSError:
        umask = os.umask(0o022)
        os.umask(umask)
        mode = 0o666 & ~umask
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".autoarch-", suffix=".tmp")
    except OSError as e:
        raise _write_error(path, e, flag) from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        cause = _os_error(e)
        if cause is None:
            raise
        raise _write_error(path, cause, flag) from None


def _os_error(e: BaseException | None) -> OSError | None:
    """The OSError behind ``e``: torch wraps a failed write in a RuntimeError."""
    seen = 0
    while e is not None and seen < 10:
        if isinstance(e, OSError):
            return e
        e, seen = e.__cause__ or e.__context__, seen + 1
    return None


def _write_error(path: str, e: OSError, flag: str) -> CommandError:
    return CommandError(f"cannot write {path}: {e.strerror or e}",
                        hint=f"check the folder's permissions and free space, or give {flag} "
                             "another path")


def try_build(spec: Spec, choices: dict[str, Any]) -> Graph | CandidateError:
    try:
        return spec.build(choices)
    except CandidateError as e:
        return e.with_source(spec.source)


def candidate_json(choices: dict[str, Any], built: Graph | CandidateError) -> dict[str, Any]:
    row: dict[str, Any] = {"choices": to_jsonable(choices)}
    if isinstance(built, Graph):
        row.update(valid=True, params=built.params, trainable_params=built.trainable_params,
                   flops=built.flops, memory=built.memory, hash=built.hash)
    else:
        row.update(valid=False, reason=built.message,
                   where=f"{built.filename}:{built.line}:{built.column}" if built.span else None)
    return row


def print_json(data: Any) -> None:
    out.print_json(json.dumps(data), highlight=False)


def human(n: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.3g}{unit}"
    return f"{n:g}"

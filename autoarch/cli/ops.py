"""`autoarch ops [NAME]`: the ops and blocks a spec may call, from the registry (the
built-ins, then the ops of plugins with the module each comes from)."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table
from rich.text import Text

from autoarch.compiler.ops import REQUIRED, ArgSpec, OpSpec, get, public_names, user
from autoarch.compiler.plugins import load_entry_points
from autoarch.dsl.errors import CommandError, suggest

from ._common import PLUGIN_OPTION, print_json
from ._console import out


def _default_text(a: ArgSpec) -> str | None:
    """The default as a spec would spell it; None when there is none to show."""
    if a.default is REQUIRED or a.default is None:
        return None
    if isinstance(a.default, bool):
        return "true" if a.default else "false"
    return str(a.default)


def signature(op: OpSpec) -> str:
    """``linear(x, out, init?, sparsity = 0.0, ...)``, in declaration order.

    ``name?`` marks an optional argument whose absence means something the op
    works out itself (``init?``: the layer's own initialisation).
    """
    parts = []
    for a in op.args:
        default = _default_text(a)
        if default is not None:
            parts.append(f"{a.name} = {default}")
        else:
            parts.append(a.name if a.default is REQUIRED else f"{a.name}?")
    return f"{op.name}({', '.join(parts)})"


def _arg_json(a: ArgSpec) -> dict[str, Any]:
    default = a.default
    return {"name": a.name, "type": a.type, "required": default is REQUIRED,
            "default": None if default is REQUIRED else default,
            "symbols": list(a.symbols), "doc": a.doc}


def _where(op: OpSpec) -> str | None:
    """Where a user op comes from (its module, and a plugin file's path); None: built in."""
    return user.definition(op.name).where if op.plugin is not None else None


def _op_json(op: OpSpec) -> dict[str, Any]:
    return {"name": op.name, "signature": signature(op), "doc": op.doc,
            "parametric": op.parametric, "args": [_arg_json(a) for a in op.args],
            "plugin": _where(op)}


def _public_op(name: str) -> OpSpec:
    op = get(name)
    if op is None or op.internal:
        raise CommandError(f"unknown op '{name}'",
                           hint=suggest(name, public_names()) or "`autoarch ops` lists them all")
    return op


def ops(
    name: str | None = typer.Argument(None, help="show one op in detail"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
    plugin: list[str] | None = PLUGIN_OPTION,
) -> None:
    """List the ops and blocks a spec can call, or show one with its arguments."""
    load_entry_points()
    if name is not None:
        op = _public_op(name)
        if as_json:
            print_json(_op_json(op))
            return
        out.print(signature(op), markup=False, highlight=False)
        if op.doc:
            out.print(f"  {op.doc}", markup=False)
        if op.plugin is not None:
            out.print(f"  from {_where(op)}", markup=False, highlight=False)
        table = Table(show_header=True, box=None, pad_edge=False)
        for col in ("argument", "type", "default", "values / notes"):
            table.add_column(col, overflow="fold")
        for a in op.args:
            notes = ", ".join(a.symbols) if a.symbols else a.doc
            default = _default_text(a) or ("required" if a.default is REQUIRED else "optional")
            table.add_row(a.name, a.type, Text(default), Text(notes))
        out.print(table)
        return
    specs = [_public_op(n) for n in public_names()]
    if as_json:
        print_json({"ops": [_op_json(op) for op in specs]})
        return
    theirs = [op for op in specs if op.plugin is not None]
    table = Table(show_header=True, box=None, pad_edge=False)
    table.add_column("op", no_wrap=True)
    table.add_column("signature", overflow="fold")
    table.add_column("doc", overflow="fold")
    if theirs:
        table.add_column("from", overflow="fold")
    for op in [op for op in specs if op.plugin is None] + theirs:
        row = [op.name, Text(signature(op)), Text(op.doc)]
        table.add_row(*row, *([Text(_where(op) or "built in")] if theirs else []))
    out.print(table)

"""`autoarch show FILE`: decisions, counts, and the cost range over a sample."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from autoarch.compiler.graph import Graph
from autoarch.dsl.errors import RequireError

from ._common import (
    MAX_SAMPLES,
    PLUGIN_OPTION,
    human,
    load_spec,
    print_json,
    try_build,
)
from ._console import out


def show(
    file: str = typer.Argument(..., help="the .spec file"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
    samples: int = typer.Option(32, "--samples", "-n", min=0, max=MAX_SAMPLES,
                                help="candidates sampled for costs"),
    seed: int = typer.Option(0, "--seed"),
    plugin: list[str] | None = PLUGIN_OPTION,
) -> None:
    """Show a spec's search space: decisions, domains, conditions, counts and costs."""
    spec = load_spec(file)
    space = spec.space()
    graphs, invalid, rejected = [], 0, 0
    for i in range(samples):
        built = try_build(spec, space.sample(seed + i))
        if isinstance(built, Graph):
            graphs.append(built)
        elif isinstance(built, RequireError):
            rejected += 1
        else:
            invalid += 1
    costs: dict[str, Any] = {}
    for key in ("params", "flops", "memory"):
        vals = [getattr(g, key) for g in graphs]
        costs[key] = {"min": min(vals), "max": max(vals)} if vals else None
    data = {"file": file, "model": spec.name, **space.to_json(), **costs,
            "sampled": samples, "invalid": invalid, "rejected": rejected}
    if as_json:
        print_json(data)
        return
    table = Table(title=f"{spec.name}: {len(space.decisions)} decisions", title_justify="left")
    for col in ("decision", "kind", "domain", "exists when"):
        table.add_column(col, overflow="fold")
    for d in space.decisions:
        table.add_row(d.name, d.kind, d.describe_domain(), d.describe_condition())
    out.print(table)
    count = space.count()
    out.print(f"candidates: {count:,}" if count is not None else
              f"candidates: {space.discrete_count():,} discrete structures x "
              f"{len(space.continuous)} continuous decision(s)", markup=False)
    for key in ("params", "flops", "memory"):
        if costs[key]:
            out.print(f"{key}: {human(costs[key]['min'])} .. {human(costs[key]['max'])} "
                      f"(over {len(graphs)} sampled candidates)", markup=False)
    if rejected:
        out.print(f"{rejected} of {samples} sampled candidates are rejected by `require`",
                  markup=False)
    if invalid:
        out.print(f"{invalid} of {samples} sampled candidates are invalid "
                  "(`autoarch check` shows why)", markup=False)

"""`autoarch sample FILE -n N`: random candidates with their costs."""

from __future__ import annotations

import typer

from ._common import (
    MAX_SAMPLES,
    PLUGIN_OPTION,
    candidate_json,
    human,
    load_spec,
    print_json,
    try_build,
)
from ._console import out


def sample(
    file: str = typer.Argument(..., help="the .spec file"),
    n: int = typer.Option(5, "-n", min=0, max=MAX_SAMPLES, help="how many candidates"),
    seed: int = typer.Option(0, "--seed", help="seed of the first; the rest follow"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
    plugin: list[str] | None = PLUGIN_OPTION,
) -> None:
    """Sample random candidates and print their choices, params, FLOPs and hash."""
    spec = load_spec(file)
    space = spec.space()
    rows = []
    for i in range(n):
        choices = space.sample(seed + i)
        rows.append(candidate_json(choices, try_build(spec, choices)))
    if as_json:
        print_json({"file": file, "model": spec.name, "candidates": rows})
        return
    for i, row in enumerate(rows):
        head = f"[{i}] seed {seed + i}: "
        if row["valid"]:
            head += (f"params {human(row['params'])}, flops {human(row['flops'])}, "
                     f"hash {row['hash']}")
        else:
            head += f"invalid ({row['where']}: {row['reason']})"
        out.print(head, markup=False)
        for k, v in row["choices"].items():
            out.print(f"    {k} = {v}", markup=False)

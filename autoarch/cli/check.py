"""`autoarch check FILE`: parse, resolve and build candidates; exit 1 on any error."""

from __future__ import annotations

import typer

from autoarch.compiler.deciders import FirstDecider
from autoarch.dsl.errors import CandidateError, RequireError

from ._common import MAX_SAMPLES, PLUGIN_OPTION, load_spec, try_build
from ._console import err, out

#: spaces this small are built in full
BUILD_ALL_UP_TO = 64


def check(
    file: str = typer.Argument(..., help="the .spec file"),
    samples: int = typer.Option(16, "--samples", "-n", min=0, max=MAX_SAMPLES,
                                help="random candidates to build"),
    seed: int = typer.Option(0, "--seed", help="seed of the random candidates"),
    allow_invalid: bool = typer.Option(
        False, "--allow-invalid", help="only report candidates with shape errors"),
    plugin: list[str] | None = PLUGIN_OPTION,
) -> None:
    """Check a spec: syntax, names, types, and candidates built from its space."""
    spec = load_spec(file)
    space = spec.space()
    n = space.discrete_count()
    if n <= BUILD_ALL_UP_TO and not space.continuous:
        candidates = list(space.enumerate())
        how = f"all {len(candidates)}"
    else:
        first = spec.elaborate(FirstDecider(), build=False).choices
        candidates = [first] + [space.sample(seed + i) for i in range(samples)]
        how = f"the first and {samples} sampled"
    failures: list[CandidateError] = []
    rejected = 0
    for choices in candidates:
        built = try_build(spec, choices)
        if isinstance(built, RequireError):
            rejected += 1
        elif isinstance(built, CandidateError):
            failures.append(built)
    seen: set[str] = set()
    for f in failures:
        text = f.format()
        if text not in seen:
            seen.add(text)
            err.print(text, markup=False)
    status = "ok" if not failures else f"{len(failures)} invalid"
    warned = len(spec.warnings)
    out.print(f"{file}: {status} — built {how} candidates of {n:,}"
              + (f"; {rejected} rejected by `require`" if rejected else "")
              + (f"; {warned} warning{'s' if warned != 1 else ''}" if warned else ""),
              markup=False)
    if failures and not allow_invalid:
        raise typer.Exit(1)

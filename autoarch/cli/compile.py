"""`autoarch compile FILE`: build one candidate into a torch module; print or save it."""

from __future__ import annotations

import typer

from autoarch.compiler.spec import to_jsonable
from autoarch.dsl.errors import CommandError

from ._common import PLUGIN_OPTION, check_output_path, human, load_spec, write_output
from ._console import out


def compile_(
    file: str = typer.Argument(..., help="the .spec file"),
    choice: list[str] | None = typer.Option(None, "--choice", "-c",
                                            help="NAME=VALUE (repeatable)"),
    sample: int | None = typer.Option(None, "--sample",
                                      help="start from the candidate sampled with this seed"),
    seed: int | None = typer.Option(None, "--seed", help="seed of the initial weights"),
    print_code: bool = typer.Option(False, "--print-code", help="print the generated forward"),
    output: str | None = typer.Option(None, "--output", "-o", help="save the model here"),
    plugin: list[str] | None = PLUGIN_OPTION,
) -> None:
    """Compile one candidate to a torch.fx module: --choice NAME=VALUE for each decision."""
    import autoarch

    spec = load_spec(file)
    if seed is not None and not -(2**63) <= seed < 2**64:  # what torch.manual_seed takes
        raise CommandError(f"--seed {seed} is out of range",
                           hint="a seed of the weights is an integer from 0 to 2**64 - 1")
    if output is not None:
        check_output_path(output)
    choices = dict(spec.space().sample(sample)) if sample is not None else {}
    for item in choice or []:
        name, sep, value = item.partition("=")
        if not sep:
            raise CommandError(f"--choice {item!r} is not NAME=VALUE",
                               hint="for example --choice digits.width=64")
        if not name.strip():
            raise CommandError(f"--choice {item!r} names no decision",
                               hint="for example --choice digits.width=64")
        choices[name.strip()] = value.strip()
    graph = spec.build(choices)
    spec.check_params(graph)  # before torch allocates the weights
    model = autoarch.compile(spec, graph.choices, seed=seed)
    out.print(f"{spec.name}: {len(graph)} ops, params {human(graph.params)}, "
              f"flops {human(graph.flops)}, hash {graph.hash}", markup=False)
    for k, v in to_jsonable(graph.choices).items():
        out.print(f"    {k} = {v}", markup=False)
    if print_code:
        out.print(model.code, markup=False)
    if output is not None:
        write_output(output, lambda f: autoarch.save_model(model, spec, graph.choices, f,
                                                           seed=seed))
        out.print(f"saved to {output}", markup=False)

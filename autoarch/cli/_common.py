"""Helpers shared by the commands: loading, and summarising candidates."""

from __future__ import annotations

import json
from typing import Any

from autoarch.compiler.graph import Graph
from autoarch.compiler.spec import Spec, load, to_jsonable
from autoarch.dsl.errors import CandidateError

from ._console import out


def load_spec(path: str) -> Spec:
    return load(path)


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

"""Saved models: a plain dict that ``torch.load(path, weights_only=True)`` accepts.

``{"format": "autoarch.model", "version", "spec" (the spec's text), "filename",
"choices", "seed", "state_dict"}``: enough to rebuild the module from the spec and
load its weights, with no pickled code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, BinaryIO

import torch
from torch import nn

from ...compiler.spec import Spec, loads
from ...compiler.values import to_json
from ...dsl.errors import SpecError
from .lower import lower_graph

FORMAT = "autoarch.model"


def save_model(model: nn.Module, spec: Spec, choices: dict[str, Any],
               path: str | Path | BinaryIO, *, seed: int | None = None) -> None:
    """Write the model dict to ``path`` (a file name or a binary file object)."""
    from ... import __version__

    torch.save({
        "format": FORMAT, "version": __version__, "spec": spec.source,
        "filename": spec.filename, "choices": {k: to_json(v) for k, v in choices.items()},
        "seed": seed, "state_dict": model.state_dict(),
    }, path if hasattr(path, "write") else Path(path))


def load_model(path: str | Path) -> nn.Module:
    """Rebuild a saved model: its spec, its candidate, then its weights."""
    data = torch.load(Path(path), weights_only=True)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise SpecError(f"{path} is not a model saved by autoarch")
    spec = loads(data["spec"], data["filename"])
    model = lower_graph(spec.build(data["choices"]), seed=data.get("seed"))
    model.load_state_dict(data["state_dict"])
    return model

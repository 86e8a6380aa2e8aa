"""Init schemes (`init = ...`): applied to every module a lowering makes. Being written."""

from __future__ import annotations

from typing import Any

from torch import nn


def apply_init(module: nn.Module, init: Any) -> None:
    """Initialise ``module``'s weights by the scheme ``init`` (a name or a SymbolCall)."""
    raise NotImplementedError(f"init {init} is not lowered yet")

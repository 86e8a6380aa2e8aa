"""Sparsity masks (`sparsity = ...`). Being written."""

from __future__ import annotations

from typing import Any

from torch import nn


def apply_sparsity(module: nn.Module, sparsity: Any) -> None:
    raise NotImplementedError(f"sparsity {sparsity} is not lowered yet")

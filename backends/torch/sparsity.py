"""Sparsity masks (`sparsity = s` or `sparsity = nm(n, m)`), enforced for the module's life.

Each weight matrix (every nn.Linear and nn.Conv2d weight of the op's module)
gets a fixed 0/1 mask as a parametrization: the module computes with
``weight * mask`` whatever an optimizer does to the underlying parameter, so the
effective weights stay sparse. The parameter count is unchanged (the IR's
``params``); ``Graph.nonzero_params`` (``compiler.graph.pruned_weights``) is
what survives the masks:

- a fraction ``s``: ``floor(s * W)`` of the op's ``W`` matrix entries are pruned,
  the smallest in magnitude at initialisation, spread over the matrices in
  proportion to their sizes;
- ``nm(n, m)``: in every ``m`` consecutive weights along the input dimension (for
  a conv, input channels x kernel positions, flattened), the ``n`` largest stay.
  The input width must be a multiple of ``m``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize


class WeightMask(nn.Module):
    """The parametrization: the weight times a fixed mask."""

    def __init__(self, mask: torch.Tensor):
        super().__init__()
        self.register_buffer("mask", mask)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight * self.mask


def weight_matrices(module: nn.Module) -> list[tuple[nn.Module, str]]:
    """(module, parameter name) of every weight a mask applies to: the weights of linear
    and conv layers, and any parameter a block lists in ``sparse_weight_names``."""
    out = []
    for m in module.modules():
        if isinstance(m, nn.Linear | nn.Conv2d):
            out.append((m, "weight"))
        out.extend((m, name) for name in getattr(m, "sparse_weight_names", ()))
    return out


def magnitude_mask(weight: torch.Tensor, prune: int) -> torch.Tensor:
    mask = torch.ones_like(weight)
    if prune:
        smallest = torch.topk(weight.detach().abs().flatten(), prune, largest=False).indices
        mask.view(-1)[smallest] = 0
    return mask


def nm_mask(weight: torch.Tensor, n: int, m: int) -> torch.Tensor:
    rows = weight.detach().reshape(weight.shape[0], -1)
    width = rows.shape[1]
    if width % m:
        raise ValueError(f"nm({n}, {m}) needs an input width divisible by {m}, got {width}")
    groups = rows.abs().reshape(rows.shape[0], width // m, m)
    keep = torch.topk(groups, n, dim=-1).indices
    mask = torch.zeros_like(groups).scatter_(-1, keep, 1.0)
    return mask.reshape(weight.shape)


def apply_sparsity(module: nn.Module, sparsity: Any) -> None:
    """Mask ``module``'s weight matrices; ``sparsity`` is a fraction or an ``nm(n, m)``."""
    layers = weight_matrices(module)
    if not layers:
        return
    weights = [getattr(m, name) for m, name in layers]
    if getattr(sparsity, "name", None) == "nm":
        n, m = sparsity.get("n", 0), sparsity.get("m", 1)
        masks = [nm_mask(w, n, m) for w in weights]
    else:
        sizes = [w.numel() for w in weights]
        prune = [math.floor(sparsity * s) for s in sizes]
        for i in range(math.floor(sparsity * sum(sizes)) - sum(prune)):  # rounding remainder
            prune[i] += 1
        masks = [magnitude_mask(w, k) for w, k in zip(weights, prune, strict=True)]
    for (mod, name), mask in zip(layers, masks, strict=True):
        parametrize.register_parametrization(mod, name, WeightMask(mask))

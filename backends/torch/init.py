"""Init schemes (`init = ...`): applied to every module a lowering makes.

:func:`apply_init` is called by ``Emitter.module`` with the op's ``init``
attribute (a scheme name, or a ``SymbolCall`` for ``normal(std)`` and
``mup(base = w)``). It initialises every *weight matrix* of the module (the
``weight`` of each ``nn.Linear`` and ``nn.Conv1d/2d/3d`` found by
``module.modules()``, so a block such as `mlp` or `glu` gets all of its
linears) and zeroes their biases. Other parameters (norm scales, rational
coefficients, ...) keep the values their module gave them.

``fan_in`` is that of the weight: ``in_features`` for a linear,
``in_channels / groups * kernel volume`` for a conv (as torch counts it).

| scheme | weight | derivation |
| --- | --- | --- |
| ``kaiming`` | N(0, 2 / fan_in) | He et al.: keeps E[h^2] through relu layers |
| ``xavier`` | U(-a, a), a = sqrt(6 / (fan_in + fan_out)) | Glorot & Bengio, gain 1 |
| ``lecun`` | N(0, 1 / fan_in) | with selu: a self-normalizing net (Klambauer et al.) |
| ``orthogonal`` | a (semi-)orthogonal matrix, gain 1 | Saxe et al.; a conv is flattened to [out, fan_in] |
| ``normal(std)`` | N(0, std^2) | |
| ``zeros`` | 0 | |
| ``mup(base = w)`` | see below | Yang et al., Tensor Programs V |
| ``variance_preserving`` | see below | KAT |

``mup(base = w)``: maximal-update parametrization for Adam, relative to a base
model of width ``w`` (Tensor Programs V, table 3 / its base-shape form, table 8).
muP tells weights apart by which of their dimensions grow with width, which a
single module cannot see; here a dimension counts as a *width* when it is at
least ``base`` and as *fixed* (input features, classes) when it is smaller.
With ``n_in`` / ``n_out`` the weight's input / output features (channels for a
conv):

| role | when | init std | Adam lr multiplier ``mup_lr_scale`` |
| --- | --- | --- | --- |
| hidden | n_in >= base, n_out >= base | 1 / sqrt(fan_in) | base / n_in |
| output (readout) | n_in >= base, n_out < base | 1 / sqrt(fan_in) * sqrt(base / n_in) | base / n_in |
| input | n_in < base | 1 / sqrt(fan_in) | 1 |
| bias, any other parameter of the module | | 0 for biases; others untouched | 1 |

At the base width every multiplier is 1 and every std is LeCun's, so a model
tuned at width ``base`` is the same model; above it, hidden and readout
learning rates shrink as 1 / width and the readout's init variance as
1 / width^2 (table 3's 1 / fan_in^2), which is what keeps both the hidden
features' updates and the output's change O(1) as width grows.
Consequences of the threshold rule: scale models *up* from ``base`` (a width
below ``base`` is taken for a fixed dimension); a fixed dimension of at least
``base`` (784 pixels with base 64) is taken for a width, which for an input
layer only changes its multiplier by a width-independent constant (transfer
still holds), but for a readout onto >= ``base`` outputs (a vocabulary) means it
is treated as hidden (init 1 / sqrt(fan_in)), not muP's readout.

What the trainer must do: every parameter gets learning rate
``lr * p.mup_lr_scale`` (Adam/AdamW), i.e. one parameter group per distinct
scale; :func:`mup_param_groups` builds them. With torch's AdamW, whose decay
per step is ``lr * weight_decay * p``, the group's ``weight_decay`` is divided
by the scale so the decay per step stays width-independent (as ``mup``'s
``MuAdamW`` does). Parameters without the attribute (modules with no `init`)
use scale 1. The multipliers are recorded twice: on each parameter
(``p.mup_lr_scale``, ``p.mup_role``) and on the module that owns it
(``module.mup_lr_scales``, a dict from the parameter's local name to its
scale), because ``copy.deepcopy`` of a ``Parameter`` drops its attributes while
a module's attributes survive; :func:`mup_lr_scales` reads both.

``variance_preserving``: KAT's rule, std = sqrt(gain / fan_in) with
gain = 1 / E[F(x)^2], x ~ N(0, 1), F the rational unit applied to the layer's
input (identity for a layer with no rational before it, which makes it LeCun).
:func:`apply_init` gives a plain layer gain 1; a KAN block, which knows the
rational before each of its linears, applies the rule itself with
:func:`second_moment` (E[F(x)^2] by quadrature) and :func:`variance_preserving_`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

#: modules whose ``weight`` is a weight matrix that `init` applies to
WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def apply_init(module: nn.Module, init: Any) -> None:
    """Initialise ``module``'s weights by the scheme ``init`` (a name or a SymbolCall).

    Raises ``ValueError`` for an unknown scheme and ``NotImplementedError`` for
    ``variance_preserving`` (see the module's docstring).
    """
    name = init if isinstance(init, str) else getattr(init, "name", None)
    layers = [m for m in module.modules() if isinstance(m, WEIGHTED)]
    if name == "mup" and not isinstance(init, str):
        base = init.get("base", 0)
        if isinstance(base, bool) or not isinstance(base, int) or base <= 0:
            raise ValueError(f"mup(base = w) needs a positive integer base width, got {base!r}")
        _apply_mup(module, layers, base)
        return
    if name == "variance_preserving":
        # A layer with no rational before it: gain 1 (LeCun). KAN blocks apply the rule
        # with their rationals' gains themselves (RationalKAN.init_variance_preserving).
        for layer in layers:
            variance_preserving_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        return
    fill = _scheme(name, init)
    for layer in layers:
        fill(layer.weight)
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)


def _scheme(name: str | None, init: Any) -> Callable[[torch.Tensor], Any]:
    if name == "kaiming":
        return lambda w: nn.init.kaiming_normal_(w, mode="fan_in", nonlinearity="relu")
    if name == "xavier":
        return nn.init.xavier_uniform_
    if name == "lecun":
        return lambda w: nn.init.normal_(w, 0.0, 1.0 / math.sqrt(fan_in(w)))
    if name == "orthogonal":
        return nn.init.orthogonal_
    if name == "zeros":
        return nn.init.zeros_
    if name == "normal" and not isinstance(init, str):
        std = init.get("std", 0)
        if isinstance(std, bool) or not isinstance(std, int | float) or std <= 0:
            raise ValueError(f"normal(std) needs a positive std, got {std!r}")
        return lambda w: nn.init.normal_(w, 0.0, float(std))
    raise ValueError(f"unknown init {init!s}: expected kaiming, xavier, lecun, orthogonal, "
                     "normal(std), zeros, mup(base = w) or variance_preserving")


def fan_in(w: torch.Tensor) -> int:
    """Inputs per output unit of a weight laid out ``[out, in, *kernel]``."""
    return w[0].numel() if w.dim() >= 2 else w.numel()


# ---- muP -----------------------------------------------------------------------


def _apply_mup(module: nn.Module, layers: list[nn.Module], base: int) -> None:
    for layer in layers:
        w = layer.weight
        n_out, n_in = w.shape[0], w.shape[1]
        std = 1.0 / math.sqrt(fan_in(w))
        if n_in < base:
            role, scale = "input", 1.0
        elif n_out < base:
            role, scale = "output", base / n_in
            std *= math.sqrt(base / n_in)
        else:
            role, scale = "hidden", base / n_in
        nn.init.normal_(w, 0.0, std)
        _record(layer, "weight", scale, role)
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)
    # every other parameter (biases, norm scales, ...) is vector-like: multiplier 1
    for owner in module.modules():
        for local, _ in owner.named_parameters(recurse=False):
            if local not in owner.__dict__.get("mup_lr_scales", {}):
                _record(owner, local, 1.0, "vector")


def _record(owner: nn.Module, local: str, scale: float, role: str) -> None:
    p = getattr(owner, local)
    p.mup_lr_scale = scale
    p.mup_role = role
    scales = owner.__dict__.setdefault("mup_lr_scales", {})
    scales[local] = scale


def mup_lr_scales(model: nn.Module) -> Iterator[tuple[nn.Parameter, float]]:
    """Each parameter of ``model`` with its Adam learning-rate multiplier (1 if none)."""
    seen: set[int] = set()
    for owner in model.modules():
        recorded = owner.__dict__.get("mup_lr_scales", {})
        for local, p in owner.named_parameters(recurse=False):
            if id(p) in seen:
                continue
            seen.add(id(p))
            yield p, float(recorded.get(local, getattr(p, "mup_lr_scale", 1.0)))


def mup_param_groups(model: nn.Module, lr: float, weight_decay: float = 0.0,
                     **options: Any) -> list[dict[str, Any]]:
    """Adam(W) parameter groups with ``lr * scale`` and ``weight_decay / scale`` per scale.

    Example:
        >>> opt = torch.optim.AdamW(mup_param_groups(model, lr=1e-3, weight_decay=0.01))
    """
    groups: dict[float, list[nn.Parameter]] = {}
    for p, scale in mup_lr_scales(model):
        if p.requires_grad:
            groups.setdefault(scale, []).append(p)
    return [{"params": ps, "lr": lr * s, "weight_decay": weight_decay / s, **options}
            for s, ps in sorted(groups.items())]


# ---- variance preserving (KAT) ---------------------------------------------------


def second_moment(fn: Callable[[torch.Tensor], torch.Tensor], points: int = 20001,
                  limit: float = 12.0) -> float:
    """E[fn(x)^2] for x ~ N(0, 1), by the trapezoid rule on [-limit, limit] (float64).

    The integrand is smooth and decays like a Gaussian, so the rule converges
    fast: gelu gives 0.4252 (KAT's gain 1 / 0.4252 = 2.35), silu 0.3557 (2.81).
    """
    x = torch.linspace(-limit, limit, points, dtype=torch.float64)
    density = torch.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
    return float(torch.trapezoid(fn(x).to(torch.float64) ** 2 * density, x))


@torch.no_grad()
def variance_preserving_(w: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor] | None
                         = None) -> torch.Tensor:
    """KAT's init of the weight after unit ``fn``: N(0, gain / fan_in), gain = 1 / E[fn(x)^2].

    ``fn`` None is the identity (gain 1: LeCun's init).
    """
    gain = 1.0 if fn is None else 1.0 / second_moment(fn)
    return nn.init.normal_(w, 0.0, math.sqrt(gain / fan_in(w)))

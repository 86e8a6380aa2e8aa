"""Rational fits of activations, for the denominator form 1 + sum_i |b_i| |x|^i.

Published coefficients (KAT's) were fitted for another denominator and are far
off under this one, so autoarch fits its own: least squares on ``[lo, hi]`` in
float64, L-BFGS from several seeded starts, keeping the smallest maximum error.
The default fits (m = 5, n = 4 on [-3, 3]) are computed once by
``python -m autoarch.kernels.fit`` and shipped as ``rational_fits.json``.
"""

from __future__ import annotations

import json
import math
from functools import cache
from importlib import resources

import torch
import torch.nn.functional as F  # noqa: N812

TARGETS = {
    "gelu": F.gelu,
    "silu": F.silu,
    "swish": F.silu,
    "tanh": torch.tanh,
    "relu": F.relu,
    "identity": lambda x: x,
}
DEFAULT = {"m": 5, "n": 4, "lo": -3.0, "hi": 3.0}


def evaluate(x: torch.Tensor, num: list[float], den: list[float]) -> torch.Tensor:
    a = torch.tensor(num, dtype=x.dtype)
    b = torch.tensor(den, dtype=x.dtype).abs()
    p = sum(a[i] * x**i for i in range(len(num)))
    q = 1 + sum(b[i - 1] * x.abs() ** i for i in range(1, len(den) + 1))
    return p / q


def _fit(name: str, m: int, n: int, lo: float, hi: float, starts: int = 6,
         iterations: int = 1000) -> tuple[list[float], list[float], float]:
    x = torch.linspace(lo, hi, 4001, dtype=torch.float64)
    y = TARGETS[name](x)
    gen = torch.Generator().manual_seed(0)
    best: tuple[list[float], list[float], float] | None = None
    for _ in range(starts):
        a = torch.randn(m + 1, generator=gen, dtype=torch.float64) * 0.3
        b = torch.randn(n, generator=gen, dtype=torch.float64) * 0.3
        num, den = _descend(x, y, a.requires_grad_(), b.requires_grad_(), iterations)
        err = float((evaluate(x, num, den) - y).abs().max())
        if math.isfinite(err) and (best is None or err < best[2]):
            best = (num, den, err)
    assert best is not None
    return best


def _descend(x: torch.Tensor, y: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
             iterations: int) -> tuple[list[float], list[float]]:
    """L-BFGS on the mean squared error from one start."""
    opt = torch.optim.LBFGS([a, b], lr=0.5, max_iter=iterations, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-14, tolerance_change=1e-16)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        p = sum(a[i] * x**i for i in range(len(a)))
        q = 1 + sum(b[i - 1].abs() * x.abs() ** i for i in range(1, len(b) + 1))
        loss = ((p / q - y) ** 2).mean()
        loss.backward()
        return loss

    opt.step(closure)
    return a.detach().tolist(), b.detach().abs().tolist()


@cache
def _shipped() -> dict[str, dict]:
    text = resources.files(__package__).joinpath("rational_fits.json").read_text()
    return json.loads(text)


def fit_rational(name: str, m: int = 5, n: int = 4, lo: float = -3.0, hi: float = 3.0
                 ) -> tuple[list[float], list[float]]:
    """(numerator a_0..a_m, denominator |b_1|..|b_n|) fitted to ``name`` on [lo, hi]."""
    if name not in TARGETS:
        raise ValueError(f"no rational fit for {name!r}; expected one of {', '.join(TARGETS)}")
    key = "swish" if name == "silu" else name
    if {"m": m, "n": n, "lo": lo, "hi": hi} == DEFAULT and key in _shipped():
        fit = _shipped()[key]
        return fit["numerator"], fit["denominator"]
    num, den, _ = _fit(name, m, n, lo, hi)
    return num, den


if __name__ == "__main__":  # regenerate the shipped fits
    out = {}
    for target in ("gelu", "swish", "tanh", "relu", "identity"):
        num, den, err = _fit(target, **DEFAULT, starts=12, iterations=3000)
        out[target] = {"numerator": num, "denominator": den, "max_error": err, **DEFAULT}
        print(f"{target}: max error {err:.5f} on [-3, 3]")
    path = resources.files(__package__).joinpath("rational_fits.json")
    with open(str(path), "w") as f:
        json.dump(out, f, indent=1)

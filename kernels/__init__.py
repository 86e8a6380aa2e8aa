"""Custom kernels with pure-torch references (see the kernels issue).

``rational``: the group-rational unit of KAT, with its closed-form backward;
``fit_rational``: its coefficients fitted to common activations (shipped data);
``gla``: gated linear attention, recurrent reference, chunked form and Triton kernel.
Importing this package imports torch (not triton); ``import autoarch`` does not.
"""

from .fit import fit_rational
from .gla import gla
from .rational import rational

__all__ = ["fit_rational", "gla", "rational"]

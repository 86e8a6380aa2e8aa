"""Lowering of IR graphs to torch: a ``torch.fx.GraphModule`` per candidate.

Importing this package imports torch and registers each op's lowering beside
its registry entry (``OpSpec.lower``). ``import autoarch`` does not import it;
``autoarch.compile`` does, on first use.
"""

from . import attention, basic, blocks, kan  # noqa: F401  (register lowerings)
from .lower import LoweringError, lower_graph, lowering
from .serialize import load_model, save_model

__all__ = ["LoweringError", "load_model", "lower_graph", "lowering", "save_model"]

"""Lowering of IR graphs to torch: a ``torch.fx.GraphModule`` per candidate.

Importing this package imports torch and registers each op's lowering beside
its registry entry (``OpSpec.lower``): ``backends/torch/<family>.py`` for each
family of ``compiler/ops/<family>.py`` (``ops.FAMILIES``). ``import autoarch``
does not import it; ``autoarch.compile`` does, on first use.
"""

from importlib import import_module

from ...compiler.ops import FAMILIES
from .lower import LoweringError, lower_graph, lowering
from .serialize import load_model, save_model

for _family in FAMILIES:  # registers the lowerings
    import_module(f".{_family}", __name__)

__all__ = ["LoweringError", "load_model", "lower_graph", "lowering", "save_model"]

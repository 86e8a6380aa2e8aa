"""The op registry, with every op and block of the language registered on import.

Ops are grouped in families, one module each: ``compiler/ops/<family>.py`` holds
the family's shape, parameter and FLOP rules (and the dimension helpers its
lowering calls), ``backends/torch/<family>.py`` its torch lowering. The ``user``
family holds the ops users register from Python (``autoarch.op``, ``user.py``).
"""

from importlib import import_module

from .registry import (
    REQUIRED,
    ArgSpec,
    OpCall,
    OpError,
    OpSpec,
    all_specs,
    attribute_names,
    get,
    lookup,
    public_names,
    register,
    unregister,
)

#: the op families: a module of this package and one of ``backends/torch`` each, same name
FAMILIES = ("core", "elementwise", "linear", "shape_ops", "conv", "mlp", "kan", "attention",
            "user")

for _family in FAMILIES:
    import_module(f".{_family}", __name__)

__all__ = [
    "FAMILIES", "REQUIRED", "ArgSpec", "OpCall", "OpError", "OpSpec", "all_specs",
    "attribute_names", "get", "lookup", "public_names", "register", "unregister",
]

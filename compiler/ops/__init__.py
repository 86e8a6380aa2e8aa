"""The op registry, with every op and block of the language registered on import."""

from . import attention, conv, core, elementwise, kan, linear, mlp, shape_ops  # noqa: F401
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
)

__all__ = [
    "REQUIRED", "ArgSpec", "OpCall", "OpError", "OpSpec", "all_specs", "attribute_names",
    "get", "lookup", "public_names", "register",
]

"""Runtime values of the spec language, besides Python's int, float, bool, str and tuple."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Symbol:
    """A bare name that is not bound: ``gelu``, ``kaiming``, ``digits``."""

    name: str

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class SymbolCall:
    """A symbol with arguments: ``normal(0.02)``, ``nm(2, 4)``, ``adamw(lr = 1e-3)``."""

    name: str
    args: tuple[Any, ...] = ()
    kwargs: tuple[tuple[str, Any], ...] = ()

    def get(self, key: str, position: int | None = None, default: Any = None) -> Any:
        for k, v in self.kwargs:
            if k == key:
                return v
        if position is not None and position < len(self.args):
            return self.args[position]
        return default

    def __str__(self) -> str:
        parts = [_show(a) for a in self.args] + [f"{k}={_show(v)}" for k, v in self.kwargs]
        return f"{self.name}({', '.join(parts)})"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "args": [to_json(a) for a in self.args],
                "kwargs": {k: to_json(v) for k, v in self.kwargs}}


class Tensor:
    """A node of the candidate's graph, with its static shape (batch excluded).

    A plain slotted class, not a dataclass: elaboration makes one per op.
    """

    __slots__ = ("node", "shape")

    def __init__(self, node: int, shape: tuple[int, ...]):
        self.node = node
        self.shape = shape

    def __repr__(self) -> str:
        return f"Tensor(node={self.node}, shape={list(self.shape)})"


@dataclass(frozen=True, slots=True)
class Abstract:
    """A value not known during space analysis or light elaboration.

    ``taint`` names the decisions it depends on; ``tensor`` says whether it is a
    tensor (True), not one (False), or either (None). Tensors never carry taint:
    nothing structural can depend on a tensor's contents.
    """

    taint: frozenset[str]
    tensor: bool | None = False


ATENSOR = Abstract(frozenset(), True)


def is_tensor(v: Any) -> bool:
    return type(v) is Tensor or (type(v) is Abstract and v.tensor is not False)


def type_name(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "string"
    if isinstance(v, tuple):
        return "list"
    if isinstance(v, Symbol):
        return f"symbol '{v.name}'"
    if isinstance(v, SymbolCall):
        return f"'{v.name}(...)'"
    if isinstance(v, Tensor):
        return f"tensor {list(v.shape)}"
    if isinstance(v, Abstract):
        return "tensor" if v.tensor else "value"
    return type(v).__name__


def _show(v: Any) -> str:
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, tuple):
        return "[" + ", ".join(_show(x) for x in v) + "]"
    return str(v)


def to_json(v: Any) -> Any:
    """A JSON-ready form of a value (symbols become their text)."""
    if isinstance(v, Symbol | SymbolCall):
        return str(v)
    if isinstance(v, tuple | list):
        return [to_json(x) for x in v]
    if isinstance(v, Tensor):
        return {"tensor": list(v.shape)}
    return v

"""The op registry: one :class:`OpSpec` per op or block of the language.

Each entry holds the op's argument schema, its shape rule, its parameter formula
and its FLOP formula (forward FLOPs of one example, counted as
``torch.utils.flop_counter.FlopCounterMode`` counts the lowered module: 2 per
multiply-add in matmul / conv / attention, nothing for elementwise work). The
lowering issue adds a ``lower`` function to the same entries.

Rules receive an :class:`OpCall`: the bound arguments, with every tensor argument
replaced by its shape (a tuple of ints, batch dimension excluded).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ...dsl.errors import suggest

Shape = tuple[int, ...]


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


class OpError(Exception):
    """Raised by a rule; the elaborator turns it into a located SpecError.

    ``kind`` is ``"shape"`` (the candidate is invalid: a ShapeError), ``"value"``
    (the argument is wrong whatever the candidate: a SpecValueError) or ``"error"``
    (the rule itself failed, as a user op's rule with a bug does: a plain SpecError).
    ``arg`` names the argument to point the caret at, if any.
    """

    def __init__(self, message: str, *, arg: str | None = None, kind: str = "shape",
                 hint: str | None = None):
        super().__init__(message)
        self.message, self.arg, self.kind, self.hint = message, arg, kind, hint


@dataclass(frozen=True)
class ArgSpec:
    """One argument of an op.

    ``type`` is one of: ``tensor``, ``int``, ``float`` (any number), ``bool``,
    ``symbol`` (one of ``symbols``), ``ints`` (a list of ints), ``init``,
    ``sparsity``. ``check`` returns an error message for a bad value, or None.
    """

    name: str
    type: str
    default: Any = REQUIRED
    symbols: tuple[str, ...] = ()
    check: Callable[[Any], str | None] | None = None
    doc: str = ""


@dataclass
class OpCall:
    """Bound arguments of one op application, as the rules see them."""

    op: str
    args: dict[str, Any]
    out_shape: Shape | None = None

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["args"][name]
        except KeyError:
            raise AttributeError(name) from None


def _zero(c: OpCall) -> int:
    return 0


@dataclass
class OpSpec:
    name: str
    args: tuple[ArgSpec, ...]
    shape: Callable[[OpCall], Shape]
    params: Callable[[OpCall], int] = _zero
    flops: Callable[[OpCall], int] = _zero
    #: weight entries a ``sparsity`` mask applies to (matrices, not biases or norms)
    sparse_weights: Callable[[OpCall], int] = _zero
    parametric: bool = False
    commutative: bool = False
    internal: bool = False
    doc: str = ""
    lower: Callable[..., Any] | None = None
    #: the module that registered a user op (``autoarch.op``); None for a built-in
    plugin: str | None = None
    #: the common arguments a parametric op takes (None: all of ``PARAMETRIC_ARGS``); a
    #: user op takes those its own signature does not claim, and no ``bias``
    common_args: tuple[ArgSpec, ...] | None = None
    by_name: dict[str, ArgSpec] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.parametric:
            common = PARAMETRIC_ARGS if self.common_args is None else self.common_args
            self.args = self.args + common
        self.by_name = {a.name: a for a in self.args}
        if len(self.by_name) != len(self.args):
            raise ValueError(f"op {self.name!r} declares an argument twice")

    def takes_common(self, name: str) -> bool:
        """Whether the op takes the common argument ``name`` (``frozen``, ...) with its
        common meaning: a user op whose own signature has that name gives it its own."""
        if not self.parametric:
            return False
        common = PARAMETRIC_ARGS if self.common_args is None else self.common_args
        return any(a.name == name for a in common)


# ---- common attributes of every parametric op -----------------------------

INITS = ("kaiming", "xavier", "lecun", "orthogonal", "zeros", "variance_preserving")
INIT_CALLS = ("normal", "mup")
ACTIVATIONS = ("relu", "gelu", "silu", "selu", "elu", "tanh", "sigmoid")


def fraction(v: Any) -> str | None:
    """Check: a number with 0 <= v < 1."""
    if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v < 1:
        return f"must be a number with 0 <= value < 1, got {v!r}"
    return None


PARAMETRIC_ARGS = (
    ArgSpec("init", "init", None, doc="weight initialisation; default: the layer's own"),
    ArgSpec("sparsity", "sparsity", 0.0, doc="fraction pruned at init, or nm(n, m)"),
    ArgSpec("bias", "bool", True),
    ArgSpec("frozen", "bool", False, doc="keep the initial weights fixed"),
)

_REGISTRY: dict[str, OpSpec] = {}


def register(spec: OpSpec) -> OpSpec:
    """Add an op to the registry; registering a name twice is an error."""
    if spec.name in _REGISTRY:
        raise ValueError(f"op {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove a user op (``autoarch.op``) from the registry; built-ins stay."""
    spec = _REGISTRY.get(name)
    if spec is None or spec.plugin is None:
        raise ValueError(f"op {name!r} is not a registered user op")
    del _REGISTRY[name]


def get(name: str) -> OpSpec | None:
    return _REGISTRY.get(name)


def lookup(name: str) -> OpSpec:
    """The op called ``name``; an unknown name fails with the closest matches."""
    spec = _REGISTRY.get(name)
    if spec is None:
        hint = suggest(name, public_names())
        raise KeyError(f"unknown op {name!r}" + (f"; {hint}" if hint else ""))
    return spec


def public_names() -> list[str]:
    return sorted(n for n, s in _REGISTRY.items() if not s.internal)


def all_specs() -> list[OpSpec]:
    return [_REGISTRY[n] for n in sorted(_REGISTRY)]


def attribute_names() -> set[str]:
    """Argument names that a `with` block may give defaults for."""
    return {a.name for s in _REGISTRY.values() if not s.internal for a in s.args
            if a.type != "tensor"}


# ---- helpers for rules ----------------------------------------------------


def numel(shape: Shape) -> int:
    return math.prod(shape)


def lead(shape: Shape) -> int:
    """Number of positions a last-axis op is applied at (tokens, pixels...)."""
    return math.prod(shape[:-1])


def bias_params(c: OpCall, n: int) -> int:
    return n if c.args.get("bias", True) else 0


def dense(d_in: int, d_out: int, c: OpCall) -> int:
    """Parameters of one dense layer d_in -> d_out with the call's bias setting."""
    return d_in * d_out + bias_params(c, d_out)


def need_rank(shape: Shape, ranks: tuple[int, ...], what: str, arg: str = "x") -> None:
    if len(shape) not in ranks:
        names = {1: "a vector [d]", 2: "a sequence [n, d]", 3: "an image [c, h, w]"}
        want = " or ".join(names.get(r, f"rank {r}") for r in ranks)
        raise OpError(f"{what} needs {want}, got shape {list(shape)}", arg=arg)


def positive(v: Any) -> str | None:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        return f"must be a positive integer, got {v!r}"
    return None

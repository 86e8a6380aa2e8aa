"""autoarch: declarative model specs, search spaces of architectures, and their IR.

Example:
    >>> import autoarch
    >>> spec = autoarch.load("examples/quickstart.spec")
    >>> space = spec.space()
    >>> space.count()
    774
    >>> graph = spec.build(space.sample(seed=0))
    >>> graph.params, graph.flops, graph.hash
    >>> result = autoarch.search(spec, strategy="tpe", trials=20, db="runs.db")
"""

from ._version import __version__ as __version__
from .compiler.deciders import FirstDecider, FixedDecider, OptunaDecider, RandomDecider
from .compiler.decisions import Condition, Decision
from .compiler.graph import Graph
from .compiler.ops.registry import OpError
from .compiler.ops.user import Shape, op
from .compiler.plugins import load_plugins
from .compiler.space import Space
from .compiler.spec import Spec, load, loads
from .dsl.errors import (
    AssignmentError,
    CandidateError,
    CommandError,
    RequireError,
    ShapeError,
    SpecError,
    SpecLimitError,
    SpecNameError,
    SpecSyntaxError,
    SpecTypeError,
    SpecValueError,
    SpecWarning,
)


def compile(spec: Spec, choices: dict | None = None, *, seed: int | None = None):  # noqa: A001
    """The candidate ``choices`` of ``spec`` as a trainable ``torch.fx.GraphModule``.

    Imports torch on first use. ``seed`` seeds the initial parameters.

    Example:
        >>> model = autoarch.compile(spec, spec.space().sample(seed=0), seed=0)
        >>> print(model.code)
    """
    from .backends.torch import lower_graph

    graph = spec.build(choices)
    spec.check_params(graph)  # a candidate too large for memory fails before allocating
    return lower_graph(graph, seed=seed)


def save_model(model, spec: Spec, choices: dict, path, *, seed: int | None = None) -> None:
    """Save a compiled candidate as a plain dict (weights, spec text, choices, version)."""
    from .backends.torch import save_model as save

    save(model, spec, choices, path, seed=seed)


def load_model(path):
    """Rebuild a model saved by :func:`save_model` or ``autoarch compile -o``."""
    from .backends.torch import load_model as load

    return load(path)

def supernet(spec: Spec, *, seed: int | None = 0):
    """One weight-sharing supernet holding every candidate of ``spec`` (docs/oneshot.md).

    Raises a located SpecError for a space one supernet cannot hold (a decision in
    `train`, a continuous architecture decision). Imports torch on first use.

    Example:
        >>> net = autoarch.supernet(spec)
        >>> from autoarch.search.supernet import train_supernet, score_candidate
        >>> train_supernet(net, epochs=5, path_sampler="fair")
        >>> score_candidate(net, spec.space().sample(seed=1))["val_accuracy"]
        >>> model = net.extract(spec.space().sample(seed=1))
    """
    from .backends.torch.supernet import Supernet

    return Supernet(spec, seed=seed)


from . import search  # noqa: E402  (callable: autoarch.search(spec, ...))

#: names that import torch when first used (``import autoarch`` does not)
_LAZY = {"Dataset": ".search.data", "Trial": ".search.objective",
         "TrialPruned": ".search.objective", "export": ".search.export",
         "Table": ".search.tables", "tabulate": ".search.tabulate"}


def __getattr__(name: str):  # noqa: ANN202 - module attribute hook
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AssignmentError", "CandidateError", "CommandError", "Condition", "Dataset", "Decision",
    "FirstDecider", "Table", "Trial", "TrialPruned", "export", "tabulate", "OpError", "Shape", "load_plugins", "op",
    "FixedDecider", "Graph", "OptunaDecider", "RandomDecider", "RequireError", "ShapeError",
    "Space", "Spec", "SpecError", "SpecLimitError", "SpecNameError", "SpecSyntaxError",
    "SpecTypeError", "SpecValueError", "SpecWarning", "compile", "load", "load_model", "loads", "save_model", "search", "supernet",
]

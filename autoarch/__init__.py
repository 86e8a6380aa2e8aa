"""autoarch: declarative model specs, search spaces of architectures, and their IR.

Example:
    >>> import autoarch
    >>> spec = autoarch.load("examples/quickstart.spec")
    >>> space = spec.space()
    >>> space.count()
    774
    >>> graph = spec.build(space.sample(seed=0))
    >>> graph.params, graph.flops, graph.hash
"""

from .compiler.deciders import FirstDecider, FixedDecider, OptunaDecider, RandomDecider
from .compiler.decisions import Condition, Decision
from .compiler.graph import Graph
from .compiler.space import Space
from .compiler.spec import Spec, load, loads
from .dsl.errors import (
    AssignmentError,
    CandidateError,
    RequireError,
    ShapeError,
    SpecError,
    SpecLimitError,
    SpecNameError,
    SpecSyntaxError,
    SpecTypeError,
    SpecValueError,
)

__version__ = "0.1.0"

__all__ = [
    "AssignmentError", "CandidateError", "Condition", "Decision", "FirstDecider",
    "FixedDecider", "Graph", "OptunaDecider", "RandomDecider", "RequireError", "ShapeError",
    "Space", "Spec", "SpecError", "SpecLimitError", "SpecNameError", "SpecSyntaxError",
    "SpecTypeError", "SpecValueError", "load", "loads",
]

"""The spec language front end: grammar, AST and parser. Parsing is not meaning."""

from . import ast
from .errors import (
    AssignmentError,
    CandidateError,
    RequireError,
    ShapeError,
    Span,
    SpecError,
    SpecLimitError,
    SpecNameError,
    SpecSyntaxError,
    SpecTypeError,
    SpecValueError,
)
from .parser import parse

__all__ = [
    "AssignmentError", "CandidateError", "RequireError", "ShapeError", "Span", "SpecError",
    "SpecLimitError", "SpecNameError", "SpecSyntaxError", "SpecTypeError", "SpecValueError",
    "ast", "parse",
]

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
    SpecWarning,
)
from .lint import bidi_controls
from .parser import parse

__all__ = [
    "AssignmentError", "CandidateError", "RequireError", "ShapeError", "Span", "SpecError",
    "SpecLimitError", "SpecNameError", "SpecSyntaxError", "SpecTypeError", "SpecValueError",
    "SpecWarning", "ast", "bidi_controls", "parse",
]

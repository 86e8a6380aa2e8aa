"""Custom kernels with pure-torch references (see the kernels issue).

``rational``: the group-rational unit of KAT, with its closed-form backward.
Importing this package imports torch (not triton); ``import autoarch`` does not.
"""

from .rational import rational

__all__ = ["rational"]

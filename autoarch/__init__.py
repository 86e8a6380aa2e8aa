"""autoarch public API (being written)."""
from .dsl import SpecError  # noqa: F401

"""The dense blocks' old module name: they live in ``mlp.py`` (beside compiler/ops/mlp.py).

Kept so that ``from autoarch.backends.torch.blocks import MixtureOfExperts`` still works.
"""

from .mlp import GLU, MLP, MixtureOfExperts, TokenMixer

__all__ = ["GLU", "MLP", "MixtureOfExperts", "TokenMixer"]

"""Logic operations on spike tensors (OR, XOR, XNOR, AND, IAND, NOT) and the a-XNOR similarity."""

from . import axnor, logic
from .axnor import *  # noqa: F403
from .logic import *  # noqa: F403

__all__ = [*logic.__all__, *axnor.__all__]

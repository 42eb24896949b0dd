"""Spiking neurons (multi-step, time-first ``[T, B, ...]``) and surrogate gradients."""

from . import backends, dynamics, factory, lif, surrogate  # noqa: F401
from .backends import *  # noqa: F403
from .dynamics import *  # noqa: F403
from .factory import *  # noqa: F403
from .lif import *  # noqa: F403
from .surrogate import *  # noqa: F403

__all__ = [
    *backends.__all__, *dynamics.__all__, *factory.__all__, *lif.__all__, *surrogate.__all__,
]

"""Time-distributed layers (``[T, B, ...]``) and the layer kits blocks are built from."""

from . import binary, kits, time
from .binary import *  # noqa: F403
from .kits import *  # noqa: F403
from .time import *  # noqa: F403

__all__ = [*time.__all__, *kits.__all__, *binary.__all__]

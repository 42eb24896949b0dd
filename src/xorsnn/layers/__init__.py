"""Time-distributed layers (``[T, B, ...]``) and the layer kits blocks are built from."""

from . import binary, kits, syncbn, time
from .binary import *  # noqa: F403
from .kits import *  # noqa: F403
from .syncbn import *  # noqa: F403
from .time import *  # noqa: F403

__all__ = [*time.__all__, *kits.__all__, *binary.__all__, *syncbn.__all__]

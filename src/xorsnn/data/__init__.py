"""Datasets read from a directory in their official formats, and batch augmentation."""

from . import augment, base, events, idx, loader, registry  # noqa: F401
from .augment import *  # noqa: F403
from .base import *  # noqa: F403
from .events import *  # noqa: F403
from .idx import *  # noqa: F403
from .loader import *  # noqa: F403
from .registry import *  # noqa: F403

__all__ = [
    *augment.__all__, *base.__all__, *events.__all__, *idx.__all__, *loader.__all__, *registry.__all__,
]

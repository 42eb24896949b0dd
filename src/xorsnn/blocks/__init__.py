"""Residual block families: Spiking ResNet, SEW-ResNet, MS-ResNet, OA, XOR (XOResNet-style), ORRC, multi-shortcut."""

from . import common, families, fc, ms, multishortcut, oa, orrc, sew, spiking, stage, xor  # noqa: F401
from .common import *  # noqa: F403
from .families import *  # noqa: F403
from .fc import *  # noqa: F403
from .ms import *  # noqa: F403
from .multishortcut import *  # noqa: F403
from .oa import *  # noqa: F403
from .orrc import *  # noqa: F403
from .sew import *  # noqa: F403
from .spiking import *  # noqa: F403
from .stage import *  # noqa: F403
from .xor import *  # noqa: F403

__all__ = [
    *common.__all__, *families.__all__, *fc.__all__, *ms.__all__, *multishortcut.__all__, *oa.__all__,
    *orrc.__all__, *sew.__all__, *spiking.__all__, *stage.__all__, *xor.__all__,
]

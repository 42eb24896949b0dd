"""Training and evaluation: configuration, losses, optimisers, checkpoints, the training loop."""

from . import checkpoint, config, distributed, guards, losses, optim, runlock, trainer, transfer  # noqa: F401
from .checkpoint import *  # noqa: F403
from .config import *  # noqa: F403
from .distributed import *  # noqa: F403
from .guards import *  # noqa: F403
from .losses import *  # noqa: F403
from .optim import *  # noqa: F403
from .runlock import *  # noqa: F403
from .trainer import *  # noqa: F403
from .transfer import *  # noqa: F403

__all__ = [
    *checkpoint.__all__, *config.__all__, *distributed.__all__, *guards.__all__, *losses.__all__, *optim.__all__,
    *runlock.__all__, *trainer.__all__, *transfer.__all__,
]

"""Small helpers shared by the residual block families."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..neurons import SpikingNeuron

__all__ = ["NeuronFactory", "needs_projection", "zero_norm_"]

NeuronFactory = Callable[[], SpikingNeuron]
"""A zero-argument callable returning a fresh neuron module (see :func:`xorsnn.neurons.neuron_factory`)."""


def needs_projection(in_planes: int, out_planes: int, stride: int) -> bool:
    """Whether a block changes the tensor shape, so its shortcut cannot be the identity."""
    return stride != 1 or in_planes != out_planes


@torch.no_grad()
def zero_norm_(norm: nn.Module, bias: float = 0.0) -> None:
    """Set a batch norm's scale to 0 and its shift to ``bias`` (zero-init of a residual branch)."""
    nn.init.zeros_(norm.weight)  # type: ignore[arg-type]
    nn.init.constant_(norm.bias, bias)  # type: ignore[arg-type]

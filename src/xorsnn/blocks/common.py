"""Small helpers shared by the residual block families."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..layers import LayerKit, TimeAvgPool2d
from ..neurons import SpikingNeuron

__all__ = [
    "NeuronFactory", "add_units", "needs_projection", "zero_norm_", "projection_shortcut", "spiking_projection",
]

NeuronFactory = Callable[[], SpikingNeuron]
"""A zero-argument callable returning a fresh neuron module (see :func:`xorsnn.neurons.neuron_factory`)."""


def add_units(
    block: nn.Module, layers: LayerKit, in_planes: int, planes: int, stride: int, neuron: NeuronFactory,
    *, bottleneck: bool, pre_activation: bool = False,
) -> int:
    """Build a residual branch's units ``conv{k}``, ``bn{k}``, ``sn{k}`` on ``block``; return its output width.

    Basic (``bottleneck=False``): ``conv3x3(in_planes, planes, stride)``, ``conv3x3(planes, planes)``.
    Bottleneck: ``conv1x1(in_planes, planes)``, ``conv3x3(planes, planes, stride)``,
    ``conv1x1(planes, 4 * planes)``. Each conv is followed by a norm of its width; every unit has a
    neuron, created after its norm (post-activation: conv-BN-SN) or before its conv
    (``pre_activation=True``, MS-ResNet: SN-conv-BN). The blocks' ``forward`` says how they are wired.
    """
    if bottleneck:
        units = [(in_planes, planes, 1, 1), (planes, planes, 3, stride), (planes, planes * 4, 1, 1)]
    else:
        units = [(in_planes, planes, 3, stride), (planes, planes, 3, 1)]
    for k, (cin, cout, size, s) in enumerate(units, 1):
        if pre_activation:
            setattr(block, f"sn{k}", neuron())
        setattr(block, f"conv{k}", layers.conv3x3(cin, cout, s) if size == 3 else layers.conv1x1(cin, cout, s))
        setattr(block, f"bn{k}", layers.norm(cout))
        if not pre_activation:
            setattr(block, f"sn{k}", neuron())
    return units[-1][1]


def needs_projection(in_planes: int, out_planes: int, stride: int) -> bool:
    """Whether a block changes the tensor shape, so its shortcut cannot be the identity."""
    return stride != 1 or in_planes != out_planes


@torch.no_grad()
def zero_norm_(norm: nn.Module, bias: float = 0.0) -> None:
    """Set a batch norm's scale to 0 and its shift to ``bias`` (zero-init of a residual branch)."""
    nn.init.zeros_(norm.weight)  # type: ignore[arg-type]
    nn.init.constant_(norm.bias, bias)  # type: ignore[arg-type]


def projection_shortcut(
    layers: LayerKit, in_planes: int, out_planes: int, stride: int, *, avg_down: bool = False
) -> nn.Sequential:
    """Shape-changing shortcut without a neuron: ``Conv1x1(stride) - BN``.

    With ``avg_down=True`` (ReverB / MPBN ``resnet20_cifar_modified``, ResNet-D): ``AvgPool(stride) -
    Conv1x1 - BN``, so the 1x1 conv sees every input position instead of one in ``stride**2``.
    The pool uses ``ceil_mode=True, count_include_pad=False`` (odd sizes match the strided 3x3 conv).
    """
    if avg_down and stride > 1:
        if not layers.spatial:
            raise ValueError("avg_down needs a spatial layer kit (stride > 1 on feature vectors is invalid)")
        pool = TimeAvgPool2d(stride, stride=stride, ceil_mode=True, count_include_pad=False)
        return nn.Sequential(pool, layers.conv1x1(in_planes, out_planes, 1), layers.norm(out_planes))
    return nn.Sequential(layers.conv1x1(in_planes, out_planes, stride), layers.norm(out_planes))


def spiking_projection(
    layers: LayerKit, in_planes: int, out_planes: int, stride: int, neuron: NeuronFactory
) -> nn.Sequential | None:
    """``Conv1x1(stride) - BN - SN`` on a shape change (SEW / ORRC: ``S`` is spikes), else ``None``."""
    if not needs_projection(in_planes, out_planes, stride):
        return None
    return nn.Sequential(layers.conv1x1(in_planes, out_planes, stride), layers.norm(out_planes), neuron())

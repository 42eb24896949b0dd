"""Spiking ResNet blocks (the plain baseline of the SEW-ResNet paper; tdBN-style post-activation).

``out = SN(F(x) + shortcut(x))`` -- one neuron after the current sum, so the identity path passes
through a spiking neuron (the reason deep Spiking ResNets degrade). The downsample shortcut is
Conv1x1-BN with **no** neuron, or with ``avg_down=True`` AvgPool(stride)-Conv1x1-BN (the
"avg-down" shortcut of ReverB's ResNet-20, see :func:`~xorsnn.blocks.common.projection_shortcut`).
"""

from __future__ import annotations

import torch
from torch import nn

from ..layers import CONV, LayerKit
from .common import NeuronFactory, add_units, needs_projection, projection_shortcut, zero_norm_
from .spec import BlockSpec, Segment, post_activation

__all__ = ["SpikingBasicBlock", "SpikingBottleneck"]


class _SpikingBase(nn.Module):
    """What the Spiking ResNet basic and bottleneck blocks share: zero-init and the description."""

    expansion: int
    n_units: int  # conv-BN units in the branch; the merge neuron is sn{n_units}
    downsample: nn.Module | None

    def __init__(self, in_planes: int, planes: int, stride: int = 1, *, neuron: NeuronFactory,
                 layers: LayerKit = CONV, avg_down: bool = False) -> None:
        super().__init__()
        out_planes = add_units(self, layers, in_planes, planes, stride, neuron, bottleneck=self.expansion > 1)
        self.downsample = None  # on a shape change: [AvgPool -] Conv1x1 - BN, a current added before sn{n}
        if needs_projection(in_planes, out_planes, stride):
            self.downsample = projection_shortcut(layers, in_planes, out_planes, stride, avg_down=avg_down)

    def zero_init_residual(self) -> None:
        """Zero the last BN of the branch (SEW recipe's ``--zero_init_residual``)."""
        zero_norm_(getattr(self, f"bn{self.n_units}"))

    def spec(self) -> BlockSpec:
        """Description for the backends (:mod:`xorsnn.blocks.spec`): ``current_add`` into the last neuron."""
        n = self.n_units
        shortcut = "identity" if self.downsample is None else "projection"
        return BlockSpec("spiking", (Segment(post_activation(n), shortcut, "current_add", f"sn{n}"),), "spikes")


class SpikingBasicBlock(_SpikingBase):
    """``SN(BN(conv3x3(SN(BN(conv3x3(x))))) + shortcut(x))``.

    Shapes: ``[T, B, in_planes, H, W] -> [T, B, planes, H/stride, W/stride]`` (binary spikes).
    """

    expansion = 1
    n_units = 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.sn1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.sn2(out + identity)


class SpikingBottleneck(_SpikingBase):
    """Bottleneck form: conv1x1-BN-SN, conv3x3(stride)-BN-SN, conv1x1-BN, then ``SN(. + shortcut)``.

    Shapes: ``[T, B, in_planes, H, W] -> [T, B, 4*planes, H/stride, W/stride]``.
    """

    expansion = 4
    n_units = 3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.sn1(self.bn1(self.conv1(x)))
        out = self.sn2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.sn3(out + identity)

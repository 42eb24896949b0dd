"""MS-ResNet blocks (Hu et al., TNNLS 2024): membrane shortcut, pre-activation.

The residual stream is real-valued (membrane potential): the branch is ``LIF -> conv -> BN``
twice and the output is ``F(x) + shortcut(x)`` with **no neuron on the shortcut and none after
the sum**. The downsample shortcut is Conv1x1-BN. Every convolution in the branch sees binary
spikes (an LIF precedes it). BN scales start at ``V_th`` (``bn_init``) and the last BN of the
branch at 0 (zero-init), as in the official code.
"""

from __future__ import annotations

import torch
from torch import nn

from ..layers import CONV, LayerKit
from .common import NeuronFactory, add_units, needs_projection, projection_shortcut, zero_norm_
from .spec import BlockSpec, Segment, pre_activation

__all__ = ["MSBasicBlock", "MSBottleneck"]


def _init_norms(module: nn.Module, gamma: float) -> None:
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            nn.init.constant_(m.weight, gamma)
            nn.init.zeros_(m.bias)


class _MSBase(nn.Module):
    """What the MS basic and bottleneck blocks share: the shortcut, zero-init and the description."""

    expansion: int
    n_units: int
    downsample: nn.Module | None

    def __init__(self, in_planes: int, planes: int, stride: int = 1, *, neuron: NeuronFactory,
                 layers: LayerKit = CONV, bn_init: float = 0.5) -> None:
        super().__init__()
        out_planes = add_units(self, layers, in_planes, planes, stride, neuron, bottleneck=self.expansion > 1,
                               pre_activation=True)
        self.downsample = None  # on a shape change: Conv1x1 - BN, a current on the membrane stream (no neuron)
        if needs_projection(in_planes, out_planes, stride):
            self.downsample = projection_shortcut(layers, in_planes, out_planes, stride)
        _init_norms(self, bn_init)

    def zero_init_residual(self) -> None:
        zero_norm_(getattr(self, f"bn{self.n_units}"))

    def spec(self) -> BlockSpec:
        """Description for the backends (:mod:`xorsnn.blocks.spec`): a membrane sum, no neuron after it."""
        shortcut = "identity" if self.downsample is None else "projection"
        seg = Segment(pre_activation(self.n_units), shortcut, "membrane_add", None)
        return BlockSpec("ms", (seg,), "membrane")


class MSBasicBlock(_MSBase):
    """``BN(conv3x3(SN(BN(conv3x3(SN(x)))))) + shortcut(x)`` (real-valued output).

    Shapes: ``[T, B, in_planes, H, W] -> [T, B, planes, H/stride, W/stride]``.
    """

    expansion = 1
    n_units = 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.bn1(self.conv1(self.sn1(x)))
        out = self.bn2(self.conv2(self.sn2(out)))
        return out + identity


class MSBottleneck(_MSBase):
    """Bottleneck form: SN-conv1x1-BN, SN-conv3x3(stride)-BN, SN-conv1x1-BN, ``+ shortcut(x)``.

    Shapes: ``[T, B, in_planes, H, W] -> [T, B, 4*planes, H/stride, W/stride]``.
    """

    expansion = 4
    n_units = 3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.bn1(self.conv1(self.sn1(x)))
        out = self.bn2(self.conv2(self.sn2(out)))
        out = self.bn3(self.conv3(self.sn3(out)))
        return out + identity

"""Multi-shortcut blocks (SEI-BWSNN, arXiv 2508.12609) -- **a reconstruction**.

The paper's full text is not available; this follows ``shared/papers/binary-weight.md`` §2.3:
pre-activation ResNet in which *every* ``BN - LIF - Conv`` unit has its own shortcut, instead of
one shortcut per two convolutions::

    x1 = P(x) + conv1( SN( BN1(x) ) )        stride s, C_in -> C_out
    x2 = x1   + conv2( SN( BN2(x1) ) )

* The residual stream ``x, x1, x2`` stays **real-valued** (as in MS-ResNet); every convolution in
  the block sees the spikes of the neuron right before it (binary, or real-valued with
  ``spikes="real"``).
* ``P`` is the identity, or on a shape change ``AvgPool(s) -> Conv1x1 -> BN``. The 1x1 conv is
  **full precision** by default (``fp_shortcut=True``) even in a binary-weight network: the
  shortcut carries real values and is one of the few layers kept real-valued.
* BN is the layer kit's BN (BatchNorm over ``T*B`` of ``[T, B, C, H, W]``). Run step by step
  (SLTT, :mod:`xorsnn.online`) its training statistics are per time step, which is the
  "per-time-step BN" SLTT needs; it never normalises over ``T`` of one sample only.

No BN follows the convolutions, so ``zero_init_residual`` is a no-op.
"""

from __future__ import annotations

import torch
from torch import nn

from ..layers import CONV, ConvLayers, LayerKit, LinearLayers, TimeBatchNorm1d, TimeBatchNorm2d
from .common import NeuronFactory, needs_projection, projection_shortcut
from .spec import BlockSpec, Op, Segment

__all__ = ["MultiShortcutBasicBlock", "full_precision_kit"]


def full_precision_kit(layers: LayerKit) -> LayerKit:
    """A full-precision kit with the same norm class as ``layers`` (for real-valued shortcuts)."""
    if layers.spatial:
        return ConvLayers(norm_cls=getattr(layers, "norm_cls", TimeBatchNorm2d))
    return LinearLayers(norm_cls=getattr(layers, "norm_cls", TimeBatchNorm1d))


class MultiShortcutBasicBlock(nn.Module):
    """Two ``BN - SN - Conv3x3`` units, each with its own shortcut (real-valued output).

    Shapes: ``[T, B, in_planes, H, W] -> [T, B, planes, H/stride, W/stride]`` (or ``[T, B, F]`` with
    a linear kit).

    Args:
        in_planes, planes, stride: as in torchvision's ``BasicBlock``; the stride is on unit 1.
        layers: layer kit (binary-weight kits binarise ``conv1``/``conv2``).
        fp_shortcut: build the projection shortcut's 1x1 conv in full precision (default).
    """

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1, *, neuron: NeuronFactory,
                 layers: LayerKit = CONV, fp_shortcut: bool = True) -> None:
        super().__init__()
        self.bn1 = layers.norm(in_planes)
        self.sn1 = neuron()
        self.conv1 = layers.conv3x3(in_planes, planes, stride)
        self.downsample: nn.Module | None = None
        if needs_projection(in_planes, planes, stride):
            kit = full_precision_kit(layers) if fp_shortcut else layers
            self.downsample = projection_shortcut(kit, in_planes, planes, stride, avg_down=True)
        self.bn2 = layers.norm(planes)
        self.sn2 = neuron()
        self.conv2 = layers.conv3x3(planes, planes)
        self.fp_shortcut = bool(fp_shortcut)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        x1 = identity + self.conv1(self.sn1(self.bn1(x)))
        return x1 + self.conv2(self.sn2(self.bn2(x1)))

    def zero_init_residual(self) -> None:
        """No BN follows a convolution here, so there is nothing to zero (kept for the interface)."""

    def spec(self) -> BlockSpec:
        """Description for the backends (:mod:`xorsnn.blocks.spec`): two ``BN - SN - conv`` segments."""
        shortcut = "identity" if self.downsample is None else "projection"
        units = [(Op("norm", f"bn{k}"), Op("neuron", f"sn{k}"), Op("conv", f"conv{k}")) for k in (1, 2)]
        return BlockSpec("msc", (Segment(units[0], shortcut, "membrane_add", None),
                                 Segment(units[1], "identity", "membrane_add", None)), "membrane")

    def extra_repr(self) -> str:
        return f"fp_shortcut={self.fp_shortcut}"

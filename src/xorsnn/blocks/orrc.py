"""OR-Spiking ResNet blocks: the OR Residual Connection (ORRC) of Shan et al. (SynA-ResNet,
arXiv 2311.06570).

SEW-ResNet's block with the element-wise function ``g`` replaced by OR, so the block output stays
binary and every layer stays spike-driven::

    out = OR(S, A),  A = SN(F(x)),  S = x  or  SN(BN(conv1x1(x)))   (a spiking projection)

OR is ``a + b - ab`` (``or_form="poly"``, the paper's form; ``"max"`` and ``"clamp"`` are the same
function on spikes with other gradients). The neuron is SpikingJelly's ``LIFNode`` as the paper's
code uses it (tau 2, V_th 1, hard reset to 0, detached reset, ATan surrogate); no branch is
zero-initialised by default. The paper's Synergistic Attention (SynA) module is not part of these
blocks.

On binary spikes this computes what :class:`~xorsnn.blocks.OABasicBlock` with ``down_merge="or"``
computes (OA differs only in its downsampling blocks, which merge currents); ``tests/test_orrc.py``
checks the equality with copied weights. The family exists in its own right because ORRC is a
published baseline with its own defaults, and because it was added through the block description
alone (docs/architecture.md): this file, one import in ``blocks/__init__.py``, and its tests.

Models: ``orrc_resnet<depth>[_cifar]`` at every standard layout (``xorsnn list 'orrc*'``).
"""

from __future__ import annotations

import torch
from torch import nn

from ..layers import CONV, LayerKit
from ..ops import OR_FORMS, spike_or
from .common import NeuronFactory, spiking_projection, zero_norm_
from .families import LIF_TAU2, BlockFamily, register_family
from .spec import BlockSpec, Segment, post_activation

__all__ = ["ORRCBasicBlock", "ORRCBottleneck", "ORRC"]


def _or_form(value: str) -> str:
    if value not in OR_FORMS:
        raise ValueError(f"or_form must be one of {OR_FORMS}, got {value!r}")
    return value


class _ORRCBase(nn.Module):
    """What the ORRC basic and bottleneck blocks share: the options, the spiking shortcut, zero-init
    and the description. The merge neuron is ``sn{n_units}``."""

    n_units: int
    downsample: nn.Module | None

    def _make_shortcut(self, layers: LayerKit, in_planes: int, out_planes: int, stride: int,
                       neuron: NeuronFactory) -> None:
        """``Conv1x1 - BN - SN`` on a shape change, so ``S`` is always spikes."""
        self.downsample = spiking_projection(layers, in_planes, out_planes, stride, neuron)

    def zero_init_residual(self) -> None:
        """Silence the backbone (``A = 0``): the block passes its shortcut spikes unchanged."""
        zero_norm_(getattr(self, f"bn{self.n_units}"))

    def spec(self) -> BlockSpec:
        """Description for the backends (:mod:`xorsnn.blocks.spec`): OR of the last neuron's spikes."""
        n = self.n_units
        shortcut = "identity" if self.downsample is None else "spiking_projection"
        return BlockSpec("orrc", (Segment(post_activation(n), shortcut, "or", f"sn{n}"),), "spikes",
                         or_form=self.or_form)

    def extra_repr(self) -> str:
        return f"or_form={self.or_form!r}"


class ORRCBasicBlock(_ORRCBase):
    """``OR(shortcut(x), SN(BN(conv3x3(SN(BN(conv3x3(x)))))))``.

    Shapes: ``[T, B, in_planes, H, W] -> [T, B, planes, H/stride, W/stride]`` (binary spikes).
    """

    expansion = 1
    n_units = 2

    def __init__(self, in_planes: int, planes: int, stride: int = 1, *, neuron: NeuronFactory,
                 layers: LayerKit = CONV, or_form: str = "poly") -> None:
        super().__init__()
        self.or_form = _or_form(or_form)
        self.conv1 = layers.conv3x3(in_planes, planes, stride)
        self.bn1 = layers.norm(planes)
        self.sn1 = neuron()
        self.conv2 = layers.conv3x3(planes, planes)
        self.bn2 = layers.norm(planes)
        self.sn2 = neuron()
        self._make_shortcut(layers, in_planes, planes, stride, neuron)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.sn1(self.bn1(self.conv1(x)))
        out = self.sn2(self.bn2(self.conv2(out)))
        return spike_or(identity, out, self.or_form)


class ORRCBottleneck(_ORRCBase):
    """Bottleneck form: conv1x1-BN-SN, conv3x3(stride)-BN-SN, conv1x1-BN-SN, then ``OR(shortcut, .)``.

    Shapes: ``[T, B, in_planes, H, W] -> [T, B, 4*planes, H/stride, W/stride]``.
    """

    expansion = 4
    n_units = 3

    def __init__(self, in_planes: int, planes: int, stride: int = 1, *, neuron: NeuronFactory,
                 layers: LayerKit = CONV, or_form: str = "poly") -> None:
        super().__init__()
        self.or_form = _or_form(or_form)
        out_planes = planes * self.expansion
        self.conv1 = layers.conv1x1(in_planes, planes)
        self.bn1 = layers.norm(planes)
        self.sn1 = neuron()
        self.conv2 = layers.conv3x3(planes, planes, stride)
        self.bn2 = layers.norm(planes)
        self.sn2 = neuron()
        self.conv3 = layers.conv1x1(planes, out_planes)
        self.bn3 = layers.norm(out_planes)
        self.sn3 = neuron()
        self._make_shortcut(layers, in_planes, out_planes, stride, neuron)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.sn1(self.bn1(self.conv1(x)))
        out = self.sn2(self.bn2(self.conv2(out)))
        out = self.sn3(self.bn3(self.conv3(out)))
        return spike_or(identity, out, self.or_form)


ORRC = register_family(BlockFamily(
    "orrc", "OR-Spiking ResNet (ORRC)", ORRCBasicBlock, ORRCBottleneck, LIF_TAU2, zero_init_residual=False,
    prefix="orrc_resnet",
))

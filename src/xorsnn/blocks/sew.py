"""SEW-ResNet blocks (Fang et al., NeurIPS 2021): spike-element-wise residuals.

``out = g(A, S)`` with ``A = SN(F(x))`` the backbone spikes and ``S`` the shortcut spikes:

=====  ===================  ============  ==========================================
g      formula              output        identity at initialisation when
=====  ===================  ============  ==========================================
add    ``A + S``            {0, 1, 2, …}  A ≡ 0  (last BN: gamma = 0, beta = 0)
and    ``A * S``            {0, 1}        A ≡ 1  (last BN: gamma = 0, beta = firing current)
iand   ``(1 - A) * S``      {0, 1}        A ≡ 0  (last BN: gamma = 0, beta = 0)
=====  ===================  ============  ==========================================

IAND is ``S * (1 - A)`` in basic *and* bottleneck blocks, as in the original repository
(SpikingJelly's bottleneck swaps the operands). The downsample shortcut is Conv1x1-BN-**SN**, so
``S`` is always spikes. SEW-ADD outputs are integers: downstream convolutions see graded input.
"""

from __future__ import annotations

import torch
from torch import nn

from .._checks import check_choice
from ..layers import CONV, LayerKit
from ..neurons import SpikingNeuron
from ..ops import spike_and, spike_iand
from .common import NeuronFactory, add_units, spiking_projection, zero_norm_
from .spec import BlockSpec, Segment, post_activation

__all__ = ["SEW_CONNECTS", "sew_connect", "SEWBasicBlock", "SEWBottleneck"]

SEW_CONNECTS = ("add", "and", "iand")


def sew_connect(backbone: torch.Tensor, shortcut: torch.Tensor, connect: str) -> torch.Tensor:
    """The SEW element-wise function ``g(A, S)``.

    ``"add"``: ``A + S``; ``"and"``: ``A * S``; ``"iand"``: ``(1 - A) * S``. Shapes must match.
    """
    if connect == "add":
        return backbone + shortcut
    if connect == "and":
        return spike_and(backbone, shortcut)
    if connect == "iand":
        return spike_iand(backbone, shortcut)
    raise ValueError(f"connect must be one of {SEW_CONNECTS}, got {connect!r}")


def _output_kind(connect: str) -> str:
    return "graded" if connect == "add" else "spikes"  # ADD sums two spike trains: 0, 1 or 2


class _SEWBase(nn.Module):
    """What the SEW basic and bottleneck blocks share: ``connect``, the spiking shortcut, zero-init
    and the description. The merge neuron is ``sn{n_units}``."""

    expansion: int
    n_units: int
    downsample: nn.Module | None

    def __init__(self, in_planes: int, planes: int, stride: int = 1, *, neuron: NeuronFactory,
                 layers: LayerKit = CONV, connect: str = "add") -> None:
        super().__init__()
        self.connect = check_choice("connect", connect, SEW_CONNECTS)
        out_planes = add_units(self, layers, in_planes, planes, stride, neuron, bottleneck=self.expansion > 1)
        self.downsample = spiking_projection(layers, in_planes, out_planes, stride, neuron)

    def zero_init_residual(self) -> None:
        """Make the block an identity: ``A ≡ 0`` for ADD/IAND, ``A ≡ 1`` for AND."""
        sn = getattr(self, f"sn{self.n_units}")
        zero_norm_(getattr(self, f"bn{self.n_units}"), sn.firing_current() if self.connect == "and" else 0.0)

    def spec(self) -> BlockSpec:
        """Description for the backends (:mod:`xorsnn.blocks.spec`): ``connect`` of the last neuron's spikes."""
        n = self.n_units
        shortcut = "identity" if self.downsample is None else "spiking_projection"
        seg = Segment(post_activation(n), shortcut, self.connect, f"sn{n}")
        return BlockSpec("sew", (seg,), _output_kind(self.connect))

    def merge(self, current: torch.Tensor, shortcut: torch.Tensor) -> torch.Tensor:
        """``sew_connect(SN(current), shortcut)`` with the block's last neuron; an ADD is done inside the
        neuron's fused kernel where one runs (:meth:`~xorsnn.neurons.SpikingNeuron.fire_add`)."""
        sn = getattr(self, f"sn{self.n_units}")
        if self.connect == "add" and isinstance(sn, SpikingNeuron):
            return sn.fire_add(current, shortcut)
        return sew_connect(sn(current), shortcut, self.connect)

    def extra_repr(self) -> str:
        return f"connect={self.connect!r}"


class SEWBasicBlock(_SEWBase):
    """``g(SN(BN(conv3x3(SN(BN(conv3x3(x)))))), shortcut(x))``.

    Shapes: ``[T, B, in_planes, H, W] -> [T, B, planes, H/stride, W/stride]``.
    """

    expansion = 1
    n_units = 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.sn1(self.bn1(self.conv1(x)))
        return self.merge(self.bn2(self.conv2(out)), identity)  # sew_connect(sn2(.), identity)


class SEWBottleneck(_SEWBase):
    """Bottleneck form: conv1x1-BN-SN, conv3x3(stride)-BN-SN, conv1x1-BN-SN, then ``g(., shortcut)``.

    Shapes: ``[T, B, in_planes, H, W] -> [T, B, 4*planes, H/stride, W/stride]``.
    """

    expansion = 4
    n_units = 3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.sn1(self.bn1(self.conv1(x)))
        out = self.sn2(self.bn2(self.conv2(out)))
        return self.merge(self.bn3(self.conv3(out)), identity)  # sew_connect(sn3(.), identity)

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

This is exactly :class:`~xorsnn.blocks.OABasicBlock` with ``down_merge="or"`` (OA differs only in
its downsampling blocks, which merge currents), so the blocks are built as that, with ``down_merge``
fixed and the family named ``"orrc"`` in their description; ``tests/test_orrc.py`` checks the
equality with the paper's formula. The family exists in its own right because ORRC is a published
baseline with its own defaults, and because it was added through the block description alone
(docs/architecture.md): this file, one import in ``blocks/__init__.py``, and its tests.

Models: ``orrc_resnet<depth>[_cifar]`` at every standard layout (``xorsnn list 'orrc*'``).
"""

from __future__ import annotations

import dataclasses

from ..layers import CONV, LayerKit
from .common import NeuronFactory
from .families import LIF_TAU2, BlockFamily, register_family
from .oa import OABasicBlock, OABottleneck
from .spec import BlockSpec

__all__ = ["ORRCBasicBlock", "ORRCBottleneck", "ORRC"]


class _ORRCMixin:
    """ORRC = the OA block with a spiking shortcut OR-merged on a shape change (``down_merge="or"``)."""

    or_form: str

    def __init__(self, in_planes: int, planes: int, stride: int = 1, *, neuron: NeuronFactory,
                 layers: LayerKit = CONV, or_form: str = "poly") -> None:
        super().__init__(in_planes, planes, stride, neuron=neuron, layers=layers,  # type: ignore[call-arg]
                         or_form=or_form, down_merge="or")

    def spec(self) -> BlockSpec:
        """Description for the backends (:mod:`xorsnn.blocks.spec`): OR of the last neuron's spikes with the
        input, or with the ``Conv1x1 - BN - SN`` shortcut's spikes on a shape change."""
        return dataclasses.replace(super().spec(), family="orrc")  # type: ignore[misc]

    def extra_repr(self) -> str:
        return f"or_form={self.or_form!r}"


class ORRCBasicBlock(_ORRCMixin, OABasicBlock):
    """``OR(shortcut(x), SN(BN(conv3x3(SN(BN(conv3x3(x)))))))``.

    Shapes: ``[T, B, in_planes, H, W] -> [T, B, planes, H/stride, W/stride]`` (binary spikes).
    """


class ORRCBottleneck(_ORRCMixin, OABottleneck):
    """Bottleneck form: conv1x1-BN-SN, conv3x3(stride)-BN-SN, conv1x1-BN-SN, then ``OR(shortcut, .)``.

    Shapes: ``[T, B, in_planes, H, W] -> [T, B, 4*planes, H/stride, W/stride]``.
    """


ORRC = register_family(BlockFamily(
    "orrc", "OR-Spiking ResNet (ORRC)", ORRCBasicBlock, ORRCBottleneck, LIF_TAU2, zero_init_residual=False,
    prefix="orrc_resnet",
))

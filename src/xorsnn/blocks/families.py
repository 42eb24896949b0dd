"""The residual block families and their per-paper defaults.

A :class:`BlockFamily` names the basic and bottleneck block classes of one family, the neuron its
paper uses, and the few places where the families' networks differ around the blocks (whether
the stem ends in a neuron, whether the head starts with one, zero-init of the last BN).

=========  ===================  =====================================  ===========  ====  ====
family     blocks               default neuron                         zero-init    stem  head
=========  ===================  =====================================  ===========  ====  ====
spiking    Spiking ResNet       LIF tau 2, V_th 1, atan(2)             no           SN    --
sew        SEW-ResNet (ADD)     LIF tau 2, V_th 1, atan(2)             yes          SN    --
ms         MS-ResNet            LIF decay 0.25, V_th 0.5, rectangle(1) yes          --    SN
oa         OA (OR-ADD)          LIF tau 2, V_th 1, atan(2)             yes          SN    --
xor        XOR (OA + XOR meta)  LIF tau 2, V_th 1, atan(2)             yes          SN    --
=========  ===================  =====================================  ===========  ====  ====

Spiking ResNet is not zero-initialised by default: with an LIF neuron (tau 2, V_th 1) a zeroed
branch makes ``SN(x)`` of binary ``x`` silent, so the identity path would carry nothing.
All defaults are overridable per model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from .ms import MSBasicBlock, MSBottleneck
from .oa import OABasicBlock, OABottleneck
from .sew import SEWBasicBlock, SEWBottleneck
from .spiking import SpikingBasicBlock, SpikingBottleneck
from .xor import XORBasicBlock, XORBottleneck

__all__ = ["BlockFamily", "FAMILIES", "get_family", "LIF_TAU2", "MS_NEURON"]

LIF_TAU2: dict[str, Any] = {"type": "lif", "tau": 2.0, "v_threshold": 1.0, "v_reset": 0.0, "surrogate": "atan"}
MS_NEURON: dict[str, Any] = {
    "type": "lif",
    "tau": None,
    "decay": 0.25,
    "v_threshold": 0.5,
    "v_reset": 0.0,
    "surrogate": {"name": "rectangle", "width": 1.0},
}


@dataclass(frozen=True)
class BlockFamily:
    """One residual family: block classes and the defaults of its paper.

    Attributes:
        name: short name used in the registry (``"xor"``, ``"sew"``, ...).
        title: human-readable name.
        basic, bottleneck: block classes.
        neuron: default neuron spec (see :func:`xorsnn.neurons.make_neuron`).
        zero_init_residual: zero the last BN of every residual branch by default.
        stem_neuron: the stem ends with a neuron (spike-stream families); MS does not.
        head_neuron: a neuron precedes global pooling (MS: the stream is a membrane).
        stem_maxpool: ImageNet stem with max-pool (torchvision); MS strides its first stage instead.
        bn_init_threshold: initialise BN scales to the neuron's ``V_th`` (MS-ResNet).
        block_kwargs: default keyword arguments of the block classes.
    """

    name: str
    title: str
    basic: type[nn.Module]
    bottleneck: type[nn.Module]
    neuron: dict[str, Any]
    zero_init_residual: bool = True
    stem_neuron: bool = True
    head_neuron: bool = False
    stem_maxpool: bool = True
    bn_init_threshold: bool = False
    block_kwargs: dict[str, Any] = field(default_factory=dict)

    def block(self, kind: str) -> type[nn.Module]:
        """The block class for ``kind`` in ``{"basic", "bottleneck"}``."""
        if kind == "basic":
            return self.basic
        if kind == "bottleneck":
            return self.bottleneck
        raise ValueError(f"block must be 'basic' or 'bottleneck', got {kind!r}")


FAMILIES: dict[str, BlockFamily] = {
    f.name: f
    for f in (
        BlockFamily(
            "spiking", "Spiking ResNet", SpikingBasicBlock, SpikingBottleneck, LIF_TAU2, zero_init_residual=False
        ),
        BlockFamily("sew", "SEW-ResNet", SEWBasicBlock, SEWBottleneck, LIF_TAU2, block_kwargs={"connect": "add"}),
        BlockFamily(
            "ms",
            "MS-ResNet",
            MSBasicBlock,
            MSBottleneck,
            MS_NEURON,
            stem_neuron=False,
            head_neuron=True,
            stem_maxpool=False,
            bn_init_threshold=True,
        ),
        BlockFamily("oa", "OA-ResNet (OR-ADD shortcut)", OABasicBlock, OABottleneck, LIF_TAU2),
        BlockFamily("xor", "XOResNet (OA + XOR meta-residuals)", XORBasicBlock, XORBottleneck, LIF_TAU2),
    )
}


def get_family(family: str | BlockFamily) -> BlockFamily:
    """Look up a family by name (``ValueError`` listing the valid names otherwise)."""
    if isinstance(family, BlockFamily):
        return family
    key = str(family).lower()
    if key not in FAMILIES:
        raise ValueError(f"family {family!r} is unknown; valid families are {sorted(FAMILIES)}")
    return FAMILIES[key]

"""The residual block families and their per-paper defaults.

A :class:`BlockFamily` names the basic and bottleneck block classes of one family, the neuron its
paper uses, and the few places where the families' networks differ around the blocks (whether
the stem ends in a neuron, whether the head starts with one, zero-init of the last BN).

=========  ===================  =====================================  ===========  ====  =======
family     blocks               default neuron                         zero-init    stem  head
=========  ===================  =====================================  ===========  ====  =======
spiking    Spiking ResNet       LIF tau 2, V_th 1, atan(2)             no           SN    --
sew        SEW-ResNet (ADD)     LIF tau 2, V_th 1, atan(2)             yes          SN    --
ms         MS-ResNet            LIF decay 0.25, V_th 0.5, rectangle(1) yes          --    SN
oa         OA (OR-ADD)          LIF tau 2, V_th 1, atan(2)             yes          SN    --
xor        XOR (OA + XOR meta)  LIF tau 2, V_th 1, atan(2)             yes          SN    --
reverb     Spiking ResNet,      LIF decay 0.25, V_th 0.5 (binary       yes          SN    --
           avg-down shortcut    spikes) / 0.25 (real spikes), rect(1)
msc        multi-shortcut       SLTT LIF: tau 1.1, no input decay,     --           --    BN-SN
           (SEI-BWSNN, recon.)  soft reset, V_th 1, triangle(1)
=========  ===================  =====================================  ===========  ====  =======

``reverb`` is the Spiking ResNet block family with ReverB-SNN's defaults (Guo-lineage LIF with decay
0.25, avg-down shortcuts, zero-init); ``msc`` is SEI-BWSNN's multi-shortcut pre-activation family
(:mod:`xorsnn.blocks.multishortcut`, a reconstruction). See ``docs/binary.md``.

**Real-valued spikes.** :meth:`BlockFamily.neuron_spec` with ``spikes="real"`` keeps the family's
neuron (leak, threshold, reset, surrogate) and only switches the output to ``O = U * 1[U >= V_th]``;
a family may change more through ``real_neuron`` (ReverB: ``V_th = 0.25`` and the paper's
almost-everywhere derivative, ``threshold_grad=False``).

Spiking ResNet is not zero-initialised by default: with an LIF neuron (tau 2, V_th 1) a zeroed
branch makes ``SN(x)`` of binary ``x`` silent, so the identity path would carry nothing.
All defaults are overridable per model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from .._checks import check_choice
from ..neurons import merge_neuron_spec
from .ms import MSBasicBlock, MSBottleneck
from .multishortcut import MultiShortcutBasicBlock
from .oa import OABasicBlock, OABottleneck
from .sew import SEWBasicBlock, SEWBottleneck
from .spiking import SpikingBasicBlock, SpikingBottleneck
from .xor import XORBasicBlock, XORBottleneck

__all__ = [
    "BlockFamily", "FAMILIES", "get_family", "register_family",
    "LIF_TAU2", "MS_NEURON", "GUO_LIF", "SLTT_LIF", "SPIKES",
]

SPIKES = ("binary", "real")

LIF_TAU2: dict[str, Any] = {"type": "lif", "tau": 2.0, "v_threshold": 1.0, "v_reset": 0.0, "surrogate": "atan"}
MS_NEURON: dict[str, Any] = {
    "type": "lif",
    "tau": None,
    "decay": 0.25,
    "v_threshold": 0.5,
    "v_reset": 0.0,
    "surrogate": {"name": "rectangle", "width": 1.0},
}
# Guo lineage (IM-Loss, MPBN, ReverB): U = 0.25 U (1 - S) + X, effective threshold 0.5, rectangular STE.
GUO_LIF: dict[str, Any] = dict(MS_NEURON)
# SLTT (Meng et al., ICCV 2023): v = (1 - 1/1.1) v + x, soft reset, V_th 1, triangle(gamma = V_th).
SLTT_LIF: dict[str, Any] = {
    "type": "lif",
    "tau": 1.1,
    "decay_input": False,
    "v_threshold": 1.0,
    "v_reset": 0.0,
    "reset": "soft",
    "surrogate": {"name": "triangle", "gamma": 1.0},
}


@dataclass(frozen=True)
class BlockFamily:
    """One residual family: block classes and the defaults of its paper.

    Attributes:
        name: short name used in the registry (``"xor"``, ``"sew"``, ...).
        title: human-readable name.
        basic, bottleneck: block classes (``bottleneck=None``: the family defines basic blocks only).
        neuron: default neuron spec (see :func:`xorsnn.neurons.make_neuron`).
        zero_init_residual: zero the last BN of every residual branch by default.
        stem_neuron: the stem ends with a neuron (spike-stream families); MS does not.
        head_neuron: a neuron precedes global pooling (MS: the stream is a membrane).
        stem_maxpool: ImageNet stem with max-pool (torchvision); MS strides its first stage instead.
        bn_init_threshold: initialise BN scales to the neuron's ``V_th`` (MS-ResNet).
        block_kwargs: default keyword arguments of the block classes.
        real_neuron: overrides applied to ``neuron`` when the network uses real-valued spikes.
        head_norm: a BN precedes the head neuron (pre-activation families end with BN - SN).
        prefix: model-name prefix; a family with one gets ``<prefix><depth>[_cifar]`` registered for
            every standard layout (:mod:`xorsnn.models.registry`), ``""`` for none.
    """

    name: str
    title: str
    basic: type[nn.Module]
    bottleneck: type[nn.Module] | None
    neuron: dict[str, Any]
    zero_init_residual: bool = True
    stem_neuron: bool = True
    head_neuron: bool = False
    stem_maxpool: bool = True
    bn_init_threshold: bool = False
    block_kwargs: dict[str, Any] = field(default_factory=dict)
    real_neuron: dict[str, Any] = field(default_factory=dict)
    head_norm: bool = False
    prefix: str = ""

    def neuron_spec(self, spikes: str = "binary", overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """The neuron spec of this family for ``spikes`` in ``{"binary", "real"}``, with user ``overrides``.

        ``"real"`` keeps the family's neuron and sets ``real_valued=True`` (plus ``real_neuron``).
        Raises ``ValueError`` for an unknown ``spikes`` or overrides that contradict it.
        """
        check_choice("spikes", spikes, SPIKES)
        spec = dict(self.neuron)
        if spikes == "real":
            spec = merge_neuron_spec(spec, {**self.real_neuron, "real_valued": True})
        spec = merge_neuron_spec(spec, overrides)
        if bool(spec.get("real_valued", spec.get("type") == "real")) != (spikes == "real"):
            raise ValueError(
                f"neuron overrides {overrides!r} contradict spikes={spikes!r}: use spikes='real' for real-valued spikes"
            )
        return spec

    def block(self, kind: str) -> type[nn.Module]:
        """The block class for ``kind`` in ``{"basic", "bottleneck"}``."""
        if kind == "basic":
            return self.basic
        if kind == "bottleneck":
            if self.bottleneck is None:
                raise ValueError(
                    f"the {self.name} family defines basic blocks only; use block='basic' "
                    f"({self.name}_resnet18 / {self.name}_resnet34 / {self.name}_resnet*_cifar)"
                )
            return self.bottleneck
        raise ValueError(f"block must be 'basic' or 'bottleneck', got {kind!r}")


FAMILIES: dict[str, BlockFamily] = {
    f.name: f
    for f in (
        BlockFamily("spiking", "Spiking ResNet", SpikingBasicBlock, SpikingBottleneck, LIF_TAU2,
                    zero_init_residual=False, prefix="spiking_resnet"),
        BlockFamily("sew", "SEW-ResNet", SEWBasicBlock, SEWBottleneck, LIF_TAU2, block_kwargs={"connect": "add"},
                    prefix="sew_resnet"),
        BlockFamily("ms", "MS-ResNet", MSBasicBlock, MSBottleneck, MS_NEURON, stem_neuron=False, head_neuron=True,
                    stem_maxpool=False, bn_init_threshold=True, prefix="ms_resnet"),
        BlockFamily("oa", "OA-ResNet (OR-ADD shortcut, no XOR)", OABasicBlock, OABottleneck, LIF_TAU2,
                    prefix="oa_resnet"),
        BlockFamily("xor", "XOResNet-style (OA shortcut + XOR meta-residuals)", XORBasicBlock, XORBottleneck,
                    LIF_TAU2, prefix="xoresnet"),
        BlockFamily("reverb", "ReverB-SNN (Spiking ResNet blocks, avg-down shortcut)", SpikingBasicBlock,
                    SpikingBottleneck, GUO_LIF, block_kwargs={"avg_down": True},
                    real_neuron={"v_threshold": 0.25, "threshold_grad": False}),
        BlockFamily("msc", "Multi-shortcut ResNet (SEI-BWSNN, reconstruction)", MultiShortcutBasicBlock, None,
                    SLTT_LIF, zero_init_residual=False, stem_neuron=False, head_neuron=True, head_norm=True,
                    prefix="msc_resnet"),
    )
}


def register_family(family: BlockFamily) -> BlockFamily:
    """Add ``family`` to :data:`FAMILIES` (``ValueError`` if its name or prefix is taken); returns it.

    Call it in the family's own block file; with a ``prefix``, the model registry then registers
    its networks at every standard depth (the file must be imported by :mod:`xorsnn.blocks`).
    """
    if family.name in FAMILIES:
        raise ValueError(f"block family {family.name!r} is already registered")
    if family.prefix and any(f.prefix == family.prefix for f in FAMILIES.values()):
        raise ValueError(f"model prefix {family.prefix!r} is already used by another family")
    FAMILIES[family.name] = family
    return family


def get_family(family: str | BlockFamily) -> BlockFamily:
    """Look up a family by name (``ValueError`` listing the valid names otherwise)."""
    if isinstance(family, BlockFamily):
        return family
    key = str(family).lower()
    if key not in FAMILIES:
        raise ValueError(f"family {family!r} is unknown; valid families are {sorted(FAMILIES)}")
    return FAMILIES[key]

"""Fully-connected forms of every block family, for feature vectors ``[T, B, F]``.

These are the conv blocks built with :data:`~xorsnn.layers.LINEAR` (linear layers and
BatchNorm1d instead of 3x3 convolutions and BatchNorm2d): same equations, same merges. Each
takes ``n_features`` and maps ``[T, B, n_features] -> [T, B, n_features]``; ``neuron`` defaults to
the family's neuron (see :mod:`xorsnn.blocks.families`). Stack them with
:class:`xorsnn.models.DeepSNNStack`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..layers import LINEAR
from ..neurons import merge_neuron_spec, neuron_factory
from .common import NeuronFactory
from .families import FAMILIES
from .ms import MSBasicBlock
from .oa import OABasicBlock
from .sew import SEWBasicBlock
from .spiking import SpikingBasicBlock
from .xor import XORBasicBlock

__all__ = ["SpikingBlock", "SEWBlock", "MembraneShortcutBlock", "OABlock", "XORBlock"]


NeuronArg = NeuronFactory | Mapping[str, Any] | None
"""A neuron factory, or overrides of the family's neuron spec (``None``: the family's neuron)."""


def _neuron(family: str, neuron: NeuronArg) -> NeuronFactory:
    if callable(neuron):
        return neuron
    return neuron_factory(merge_neuron_spec(FAMILIES[family].neuron, neuron))


class SpikingBlock(SpikingBasicBlock):
    """Fully-connected Spiking ResNet block: ``SN(BN(W2 SN(BN(W1 x))) + x)``; ``[T, B, F] -> [T, B, F]``."""

    def __init__(self, n_features: int, *, neuron: NeuronArg = None) -> None:
        super().__init__(n_features, n_features, neuron=_neuron("spiking", neuron), layers=LINEAR)


class SEWBlock(SEWBasicBlock):
    """Fully-connected SEW block: ``g(SN(BN(W2 SN(BN(W1 x)))), x)``, g in add/and/iand; ``[T, B, F] -> [T, B, F]``."""

    def __init__(self, n_features: int, *, connect: str = "add", neuron: NeuronArg = None) -> None:
        super().__init__(n_features, n_features, neuron=_neuron("sew", neuron), layers=LINEAR, connect=connect)


class MembraneShortcutBlock(MSBasicBlock):
    """Fully-connected MS block: ``BN(W2 SN(BN(W1 SN(x)))) + x``, no neuron after the sum.

    Shapes: ``[T, B, F] -> [T, B, F]``.
    """

    def __init__(self, n_features: int, *, neuron: NeuronArg = None, bn_init: float = 0.5) -> None:
        super().__init__(n_features, n_features, neuron=_neuron("ms", neuron), layers=LINEAR, bn_init=bn_init)


class OABlock(OABasicBlock):
    """Fully-connected OA block: ``OR(x, SN(BN(W2 SN(BN(W1 x)))))``; ``[T, B, F] -> [T, B, F]``."""

    def __init__(self, n_features: int, *, or_form: str = "poly", neuron: NeuronArg = None) -> None:
        super().__init__(n_features, n_features, neuron=_neuron("oa", neuron), layers=LINEAR, or_form=or_form)


class XORBlock(XORBasicBlock):
    """Fully-connected XOR block (OA + XOR meta-residuals); ``forward(x, x_prev)``; ``[T, B, F] -> [T, B, F]``."""

    def __init__(self, n_features: int, *, xor_mode: str = "input", or_form: str = "poly", xor_form: str = "poly",
                 neuron: NeuronArg = None) -> None:
        super().__init__(n_features, n_features, neuron=_neuron("xor", neuron), layers=LINEAR, or_form=or_form,
                         xor_mode=xor_mode, xor_form=xor_form)

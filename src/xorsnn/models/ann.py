"""ANN counterparts of the spiking ResNets: the same skeleton with ReLU instead of spiking neurons.

They exist to be **teachers** for knowledge distillation (SEI-BWSNN trains its stage-1 SNN with a
KL loss against a full-precision ANN): train one with ``xorsnn train --model ann_reverb_resnet20``, then
pass its run directory as ``--teacher`` to the SNN's run.

=================  ======================================================================
name               layout (ReLU wherever the spiking model has a neuron)
=================  ======================================================================
``ann_reverb_resnet20``  ReverB's ResNet-20, convention (b): 3-conv stem + avgpool, [2,2,2,2] x 64-512
                   (``ann_resnet20`` until 0.1: a deprecated alias for one release)
``ann_resnet19``   ResNet-19 (tdBN layout): conv3x3(128) stem, [3,3,2] x 128/256/512, FC-256 head
``ann_cifar_resnetN``  He et al.'s CIFAR ResNet-N (N = 6n+2 in 8, 14, 20, 32, 44, 56, 110): the layout of
                   ``spiking_resnetN`` / ``sew_resnetN`` / ``xoresnetN`` (3x3 stem, [n,n,n] x 16/32/64) with
                   ReLU -- the ANN ceiling of the family comparisons
=================  ======================================================================

An ANN has no time axis: it is built with ``T = 1`` whatever ``T`` is passed (the trainer passes
its ``T`` to every model), so a static image ``[B, C, H, W]`` gives logits ``[1, B, K]`` -- the
time-first interface of every xorsnn model, with one "step".
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ..neurons.lif import SpikingNeuron
from .binary_weight import REVERB_RESNET19_LAYOUT, REVERB_RESNET20_LAYOUT
from .registry import _CIFAR_6N2, cifar_6n2_layout, register_alias, register_model
from .resnet import SpikingResNet

__all__ = ["ANNResNet", "replace_neurons"]


def replace_neurons(model: nn.Module, make: type[nn.Module] = nn.ReLU) -> int:
    """Replace every spiking neuron module of ``model`` in place by ``make()``; returns how many."""
    count = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, SpikingNeuron):
                setattr(parent, name, make())
                count += 1
    return count


class ANNResNet(SpikingResNet):
    """:class:`~xorsnn.models.resnet.SpikingResNet` with ``nn.ReLU`` in place of every neuron and ``T = 1``.

    Takes the arguments of ``SpikingResNet`` (``T`` is accepted and ignored). Input ``[B, C, H, W]``,
    output ``[1, B, num_classes]``.
    """

    def __init__(self, *args: Any, T: int = 1, **kwargs: Any) -> None:
        if kwargs.get("spikes", "binary") != "binary":
            raise ValueError("an ANN has no spikes: spikes must be 'binary' (the default), got "
                             f"{kwargs['spikes']!r}")
        super().__init__(*args, T=1, **kwargs)
        if replace_neurons(self) == 0:  # pragma: no cover - every family has neurons
            raise ValueError("ANNResNet: the skeleton has no neuron to replace")

    def extra_repr(self) -> str:
        return "ANN (ReLU), " + super().extra_repr()


def _register() -> None:
    register_model(
        "ann_reverb_resnet20",
        ANNResNet,
        description="ANN (ReLU) of reverb_resnet20's layout (ReverB convention (b): 3-conv stem + avgpool, "
        "4 stages [2,2,2,2] x 64-512, avg-down); a KD teacher. Not the 6n+2 ResNet-20: that is ann_cifar_resnet20",
        **REVERB_RESNET20_LAYOUT,
    )
    register_alias("ann_resnet20", "ann_reverb_resnet20")  # the old name, easily taken for ann_cifar_resnet20
    register_model(
        "ann_resnet19",
        ANNResNet,
        description="ANN (ReLU) ResNet-19 (tdBN layout, FC-256 head) as reverb_resnet19; a KD teacher",
        **REVERB_RESNET19_LAYOUT,
    )
    for depth in _CIFAR_6N2:
        register_model(
            f"ann_cifar_resnet{depth}",
            ANNResNet,
            description=f"ANN (ReLU) CIFAR ResNet-{depth} (He et al. 6n+2, n={(depth - 2) // 6}), widths 16/32/64: "
            f"the ANN ceiling of the {depth}-layer spiking families",
            family="spiking",
            **cifar_6n2_layout(depth),
        )


_register()

"""Registered models of the binary-weight SNN papers: ReverB-SNN and SEI-BWSNN's multi-shortcut family.

=====================  ========================================================================
name                   layout
=====================  ========================================================================
``reverb_resnet20``    ReverB's ResNet-20, convention (b) (Guo lineage, MPBN
                       ``resnet20_cifar_modified``): stem 3 x [conv3x3(64)-BN-SN] at 32x32 then
                       avg-pool 2; 4 stages x 2 Spiking-ResNet basic blocks, widths 64/128/256/512,
                       strides 1,2,2,2; avg-down shortcut AvgPool-Conv1x1-BN; zero-init; FC
``reverb_resnet19``    ResNet-19 (tdBN layout, as every ``*19`` in the registry): conv3x3(128) stem,
                       [3,3,2] x 128/256/512, Conv1x1-BN shortcut, FC-256 - SN - FC head
                       (``head_hidden=None`` gives the MPBN/Guo variant without FC-256)
``msc_resnet*``        multi-shortcut (SEI-BWSNN, reconstruction) at every standard layout with
                       basic blocks (18/34 ImageNet, 18_cifar, 19, the 6n+2 depths 8-482), registered
                       from the family's ``prefix`` like the other families
=====================  ========================================================================

What a ReverB user gets: ``create_model("reverb_resnet20")`` **is ReverB-SNN** -- binary weights
``sign(W)`` (clipped STE), real-valued spikes, LIF decay 0.25, ``V_th = 0.25`` (the paper's value for
static data; ``neuron={"v_threshold": 0.5}`` is the ablation). The paper's learnable variant is
``binary_scale="alpha"`` and its "vanilla SNN" baseline is ``weights="float", spikes="binary"``
(Guo-lineage LIF: decay 0.25, effective ``V_th = 0.5``, rectangular surrogate).

The ``msc_*`` models default to full-precision weights and binary spikes (SEI-BWSNN's stage 1);
stage 2 is ``weights="binary", binary_scale="magnitude"``. See ``docs/binary.md``.
"""

from __future__ import annotations

from .registry import register_model, resnet19_layout
from .resnet import SpikingResNet

__all__ = ["REVERB_RESNET20_LAYOUT", "REVERB_RESNET19_LAYOUT"]

# The two ReverB layouts; the ANN teachers in ``ann.py`` reuse them so teacher and student match.
REVERB_RESNET20_LAYOUT = {"family": "reverb", "layers": [2, 2, 2, 2], "stem": "cifar3", "num_classes": 10}
REVERB_RESNET19_LAYOUT = {"family": "reverb", **resnet19_layout(), "avg_down": False}


def _register() -> None:
    register_model(
        "reverb_resnet20",
        SpikingResNet,
        description="ReverB-SNN ResNet-20, convention (b): 3-conv stem + avgpool, [2,2,2,2] x 64-512, avg-down; "
        "binary weights, real-valued spikes",
        **REVERB_RESNET20_LAYOUT,
        weights="binary",
        spikes="real",
    )
    register_model(
        "reverb_resnet19",
        SpikingResNet,
        description="ReverB-SNN ResNet-19 (tdBN layout, FC-256 head); binary weights, real-valued spikes",
        **REVERB_RESNET19_LAYOUT,
        weights="binary",
        spikes="real",
    )


_register()

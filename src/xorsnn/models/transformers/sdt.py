"""Spike-driven Transformer v1 (Yao et al., NeurIPS 2023) with a switchable attention similarity.

Layout (official code ``BICLab/Spike-Driven-Transformer``, ``module/sps.py``, ``module/ms_conv.py``,
``model/spikeformer.py``); the residual stream is a real-valued membrane and every linear layer
sees binary spikes (membrane shortcuts everywhere)::

    MS-SPS: 3 x [Conv3x3 - BN - SN (- MaxPool)], then Conv3x3 - BN (- MaxPool) = x_feat
            x0 = x_feat + BN(Conv3x3(SN(x_feat)))        (widths D/8, D/4, D/2, D)
    block:  x' = x + SDSA(x)                              (SDSA starts with SN(x); see .attention)
            x  = x' + BN(Linear(SN(BN(Linear(SN(x'))))))  (MLP with membrane shortcut, ratio 4)
    head:   mean over tokens -> SN -> FC per time step   -> logits [T, B, K]

Differences from the official code, all without effect on the function: 1x1 convolutions are
written as linear layers on tokens; the unused ``talking_heads`` Conv1d (``h²`` weights) is left
out; the model returns per-time-step logits (the official code averages them over ``T``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ...blocks.common import NeuronFactory
from ...layers import TimeBatchNorm2d, TimeConv2d
from .attention import SpikeDrivenSelfAttention
from .base import SpikingTransformer, register_transformer
from .spikformer import _stem_unit, patch_units
from .tokens import TokenLinear, to_tokens

__all__ = ["MSPatchSplitting", "MSMLP", "SpikeDrivenTransformer", "CONFIGS"]


class MSPatchSplitting(nn.Module):
    """SDT's patch embedding with a membrane-shortcut RPE (arguments as :class:`~.spikformer.SpikingPatchSplitting`;
    no neuron after the last unit).

    Shapes: ``[B, C, H, W]`` or ``[T, B, C, H, W]`` -> real-valued tokens ``[T, B, N, D]``.
    """

    def __init__(self, in_channels: int, embed_dim: int, *, pooling: str = "0011", neuron: NeuronFactory):
        super().__init__()
        self.convs, self.bns, self.pools = patch_units(in_channels, embed_dim, pooling)
        self.sns = nn.ModuleList(neuron() for _ in range(3))
        self.rpe_sn = neuron()
        self.rpe_conv = TimeConv2d(embed_dim, embed_dim, 3, padding=1, bias=False)
        self.rpe_bn = TimeBatchNorm2d(embed_dim)

    def forward(self, x: torch.Tensor, T: int) -> torch.Tensor:
        for i in range(3):
            y = _stem_unit(self.convs[i], self.bns[i], x, T) if i == 0 else self.bns[i](self.convs[i](x))
            x = self.pools[i](self.sns[i](y))
        x = self.pools[3](self.bns[3](self.convs[3](x)))
        x = x + self.rpe_bn(self.rpe_conv(self.rpe_sn(x)))
        return to_tokens(x)


class MSMLP(nn.Module):
    """MLP branch ``BN(Linear(SN(BN(Linear(SN(x))))))``: ``[T, B, N, D] -> [T, B, N, D]`` (real-valued)."""

    def __init__(self, dim: int, hidden: int, *, neuron: NeuronFactory):
        super().__init__()
        self.sn1 = neuron()
        self.fc1 = TokenLinear(dim, hidden, bias=True, neuron=neuron())
        self.fc2 = TokenLinear(hidden, dim, bias=True, neuron=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.fc1(self.sn1(x)))


class SpikeDrivenTransformer(SpikingTransformer):
    """Spike-driven Transformer-``depth``-``embed_dim`` (SDT v1).

    Args: those of :class:`~.base.SpikingTransformer`; ``attn_scale`` multiplies the KV column
    sums before the KV neuron (1 in the paper, which has no scale).

    Example::

        model = SpikeDrivenTransformer(embed_dim=512, depth=2, num_heads=8, similarity="axnor")
        logits = model(torch.rand(8, 3, 32, 32))      # [T=4, 8, 10]
    """

    def __init__(
        self, *, embed_dim: int = 512, depth: int = 2, num_heads: int = 8, attn_scale: float = 1.0, **kwargs: Any
    ) -> None:
        super().__init__(embed_dim=embed_dim, depth=depth, num_heads=num_heads, attn_scale=attn_scale, **kwargs)
        self._build(MSPatchSplitting, SpikeDrivenSelfAttention, MSMLP, head_neuron=True)
        # official init: every convolution (incl. the 1x1 "linears") trunc_normal(0.02); the head keeps torch's
        self._init_normal(self.patch_embed, self.blocks, kinds=(nn.Conv2d, nn.Linear))


# name: (depth, embed_dim, heads, pooling, num_classes, paper params, where)
CONFIGS: dict[str, tuple[int, int, int, str, int, str, str]] = {
    "sdt_2_256": (2, 256, 8, "0011", 10, "params not in the notes", "CIFAR"),
    "sdt_2_512": (2, 512, 8, "0011", 10, "10.28M params with a CIFAR-100 head", "CIFAR"),
    "sdt_8_384": (8, 384, 8, "1111", 1000, "params not in the notes", "ImageNet"),
    "sdt_8_512": (8, 512, 8, "1111", 1000, "params not in the notes", "ImageNet"),
    "sdt_8_768": (8, 768, 8, "1111", 1000, "66.34M params", "ImageNet"),
}
"""Registered SDT configurations (heads and pooling from the official ``conf/*.yml``)."""


for _name, (_depth, _dim, _heads, _pooling, _classes, _params, _where) in CONFIGS.items():
    register_transformer(_name, SpikeDrivenTransformer, "Spike-driven Transformer", depth=_depth, embed_dim=_dim,
                         num_heads=_heads, pooling=_pooling, num_classes=_classes, paper=_params, where=_where)

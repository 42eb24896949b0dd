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

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ...blocks.common import NeuronFactory
from ...layers import TimeBatchNorm2d, TimeConv2d, TimeMaxPool2d
from ..registry import register_model
from .attention import SpikeDrivenSelfAttention
from .base import SpikingTransformer
from .similarity import AXNORCoefficient
from .spikformer import _stem_unit
from .tokens import TokenLinear, to_tokens

__all__ = ["MSPatchSplitting", "MSMLP", "SDTBlock", "SpikeDrivenTransformer", "CONFIGS"]


class MSPatchSplitting(nn.Module):
    """SDT's patch embedding with a membrane-shortcut RPE.

    Args:
        in_channels: image channels.
        embed_dim: output channels ``D``.
        pooling: 4 characters, ``"1"`` = max-pool after that unit (``"0011"`` CIFAR, ``"1111"`` ImageNet).
        neuron: neuron factory.

    Shapes: ``[B, C, H, W]`` or ``[T, B, C, H, W]`` -> real-valued tokens ``[T, B, N, D]``.
    """

    def __init__(self, in_channels: int, embed_dim: int, *, pooling: str = "0011", neuron: NeuronFactory):
        super().__init__()
        widths = [embed_dim // 8, embed_dim // 4, embed_dim // 2, embed_dim]
        c_in = [in_channels] + widths[:-1]
        self.convs = nn.ModuleList(
            TimeConv2d(ci, co, 3, padding=1, bias=False) for ci, co in zip(c_in, widths, strict=True)
        )
        self.bns = nn.ModuleList(TimeBatchNorm2d(co) for co in widths)
        self.sns = nn.ModuleList(neuron() for _ in widths[:3])
        self.pools = nn.ModuleList(TimeMaxPool2d(3, stride=2, padding=1) if p == "1" else nn.Identity()
                                   for p in pooling)
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


class SDTBlock(nn.Module):
    """``x' = x + SDSA(x)``, ``x = x' + MLP(x')`` on the membrane stream ``[T, B, N, D]``."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float,
        *,
        neuron: NeuronFactory,
        attn_neuron: NeuronFactory,
        scale: float,
        similarity: str,
        a_coef: AXNORCoefficient | None,
        normalize: str,
    ):
        super().__init__()
        self.attn = SpikeDrivenSelfAttention(
            dim, num_heads, neuron=neuron, attn_neuron=attn_neuron, scale=scale, similarity=similarity,
            a_coef=a_coef, normalize=normalize,
        )
        self.mlp = MSMLP(dim, int(dim * mlp_ratio), neuron=neuron)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x)
        return x + self.mlp(x)


class SpikeDrivenTransformer(SpikingTransformer):
    """Spike-driven Transformer-``depth``-``embed_dim`` (SDT v1).

    Args: those of :class:`~.base.SpikingTransformer`; ``attn_scale`` multiplies the KV column
    sums before the KV neuron (1 in the paper, which has no scale).

    Example::

        model = SpikeDrivenTransformer(embed_dim=512, depth=2, num_heads=8, similarity="axnor")
        logits = model(torch.rand(8, 3, 32, 32))      # [T=4, 8, 10]
    """

    def __init__(
        self,
        *,
        embed_dim: int = 512,
        depth: int = 2,
        num_heads: int = 8,
        mlp_ratio: float = 4.0,
        pooling: str = "0011",
        num_classes: int = 10,
        T: int = 4,
        in_channels: int = 3,
        input_size: int | Sequence[int] | None = None,
        neuron: Mapping[str, Any] | None = None,
        attn_neuron: Mapping[str, Any] | None = None,
        similarity: str = "dot",
        a: float | None = None,
        a_learnable: bool | None = None,
        a_granularity: str | None = None,
        attn_scale: float = 1.0,
        attn_norm: str = "none",
    ) -> None:
        super().__init__(
            embed_dim=embed_dim, depth=depth, num_heads=num_heads, mlp_ratio=mlp_ratio, pooling=pooling,
            num_classes=num_classes, T=T, in_channels=in_channels, input_size=input_size, neuron=neuron,
            attn_neuron=attn_neuron, similarity=similarity, a=a, a_learnable=a_learnable,
            a_granularity=a_granularity, attn_scale=attn_scale, attn_norm=attn_norm,
        )
        self.patch_embed = MSPatchSplitting(in_channels, embed_dim, pooling=pooling, neuron=self.make_sn)
        self.blocks = nn.ModuleList(
            SDTBlock(
                embed_dim, num_heads, mlp_ratio, neuron=self.make_sn, attn_neuron=self.make_attn_sn,
                scale=attn_scale, similarity=similarity, a_coef=self.layer_coefs[i], normalize=attn_norm,
            )
            for i in range(depth)
        )
        self.head_sn = self.make_sn()
        self.fc = nn.Linear(embed_dim, num_classes)
        # official init: every convolution (incl. the 1x1 "linears") trunc_normal(0.02); the head keeps torch's
        for m in list(self.patch_embed.modules()) + list(self.blocks.modules()):
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.normal_(m.weight, std=0.02)  # = trunc_normal(±2): the cut is at 100 sigma
                if m.bias is not None:
                    nn.init.zeros_(m.bias)


# name: (depth, embed_dim, heads, pooling, num_classes, paper params, where)
CONFIGS: dict[str, tuple[int, int, int, str, int, str, str]] = {
    "sdt_2_256": (2, 256, 8, "0011", 10, "params not in the notes", "CIFAR"),
    "sdt_2_512": (2, 512, 8, "0011", 10, "10.28M params with a CIFAR-100 head", "CIFAR"),
    "sdt_8_384": (8, 384, 8, "1111", 1000, "params not in the notes", "ImageNet"),
    "sdt_8_512": (8, 512, 8, "1111", 1000, "params not in the notes", "ImageNet"),
    "sdt_8_768": (8, 768, 8, "1111", 1000, "66.34M params", "ImageNet"),
}
"""Registered SDT configurations (heads and pooling from the official ``conf/*.yml``)."""


def _register() -> None:
    for name, (depth, dim, heads, pooling, classes, params, where) in CONFIGS.items():
        size = "32x32, 4x4 patches (64 tokens)" if pooling == "0011" else "224x224, 16x16 patches (196 tokens)"
        register_model(
            name,
            SpikeDrivenTransformer,
            description=f"Spike-driven Transformer-{depth}-{dim} ({where}: {size}, {heads} heads; paper: {params})",
            depth=depth,
            embed_dim=dim,
            num_heads=heads,
            pooling=pooling,
            num_classes=classes,
        )


_register()

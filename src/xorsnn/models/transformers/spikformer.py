"""Spikformer (Zhou et al., ICLR 2023) with a switchable attention similarity.

Layout (official code ``ZK-Zhou/spikformer``, ``cifar10/model.py`` and ``imagenet/model.py``)::

    SPS:    4 x [Conv3x3 (no bias) - BN - SN (- MaxPool 3/2/1)], widths D/8, D/4, D/2, D
            pooling "0011" (CIFAR, 32 -> 8x8 = 64 tokens) or "1111" (ImageNet, 224 -> 14x14 = 196)
            RPE:  x0 = x + SN(BN(Conv3x3(x)))            (both spikes: x0 ∈ {0, 1, 2})
    block:  x' = x + SSA(x);  x = x' + MLP(x')          (integer-valued residual stream)
            MLP = SN(BN(Linear(SN(BN(Linear(x))))))     (ratio 4)
    head:   mean over tokens -> FC per time step          -> logits [T, B, K]

The paper's head averages over time before the FC; the FC is linear, so ``logits.mean(0)`` equals
it exactly. Registered configurations and their parameter counts are in :data:`CONFIGS`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ...blocks.common import NeuronFactory
from ...layers import TimeBatchNorm2d, TimeConv2d, TimeMaxPool2d
from .attention import SpikingSelfAttention
from .base import SpikingTransformer, register_transformer
from .tokens import TokenLinear, to_tokens

__all__ = ["SpikingPatchSplitting", "SpikingMLP", "Spikformer", "CONFIGS"]


def _stem_unit(conv: nn.Module, bn: nn.Module, x: torch.Tensor, T: int) -> torch.Tensor:
    """Conv-BN on a static image once, repeated over ``T``; or per step on a sequence ``[T, B, ...]``."""
    y = bn(conv(x))
    return y.unsqueeze(0).expand(T, *y.shape) if x.dim() == 4 else y


def patch_units(in_channels: int, embed_dim: int, pooling: str) -> tuple[nn.ModuleList, nn.ModuleList, nn.ModuleList]:
    """The four ``conv3x3 - BN`` units of a patch embedding (widths ``D/8, D/4, D/2, D``) and the
    max-pool (or identity) after each: ``(convs, bns, pools)``."""
    widths = [embed_dim // 8, embed_dim // 4, embed_dim // 2, embed_dim]
    c_in = [in_channels] + widths[:-1]
    convs = nn.ModuleList(TimeConv2d(ci, co, 3, padding=1, bias=False) for ci, co in zip(c_in, widths, strict=True))
    bns = nn.ModuleList(TimeBatchNorm2d(co) for co in widths)
    pools = nn.ModuleList(TimeMaxPool2d(3, stride=2, padding=1) if p == "1" else nn.Identity() for p in pooling)
    return convs, bns, pools


class SpikingPatchSplitting(nn.Module):
    """Spikformer's SPS with relative position embedding.

    Args:
        in_channels: image channels.
        embed_dim: output channels ``D``.
        pooling: 4 characters, ``"1"`` = max-pool after that unit (``"0011"`` CIFAR, ``"1111"`` ImageNet).

    Shapes: ``[B, C, H, W]`` (static, repeated over ``T``) or ``[T, B, C, H, W]`` -> tokens
    ``[T, B, N, D]`` with ``N = H' W'``.
    """

    def __init__(self, in_channels: int, embed_dim: int, *, pooling: str = "0011", neuron: NeuronFactory):
        super().__init__()
        self.convs, self.bns, self.pools = patch_units(in_channels, embed_dim, pooling)
        self.sns = nn.ModuleList(neuron() for _ in self.convs)
        self.rpe_conv = TimeConv2d(embed_dim, embed_dim, 3, padding=1, bias=False)
        self.rpe_bn = TimeBatchNorm2d(embed_dim)
        self.rpe_sn = neuron()

    def forward(self, x: torch.Tensor, T: int) -> torch.Tensor:
        for i, (conv, bn, sn, pool) in enumerate(zip(self.convs, self.bns, self.sns, self.pools, strict=True)):
            y = _stem_unit(conv, bn, x, T) if i == 0 else bn(conv(x))
            x = pool(sn(y))
        x = x + self.rpe_sn(self.rpe_bn(self.rpe_conv(x)))
        return to_tokens(x)


class SpikingMLP(nn.Module):
    """``SN(BN(Linear(SN(BN(Linear(x))))))``: ``[T, B, N, D] -> [T, B, N, D]`` (binary)."""

    def __init__(self, dim: int, hidden: int, *, neuron: NeuronFactory):
        super().__init__()
        self.fc1 = TokenLinear(dim, hidden, bias=True, neuron=neuron())
        self.fc2 = TokenLinear(hidden, dim, bias=True, neuron=neuron())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.fc1(x))


class Spikformer(SpikingTransformer):
    """Spikformer-``depth``-``embed_dim``.

    Args (besides those of :class:`~.base.SpikingTransformer`):
        qkv_bias: bias of the Q/K/V linear layers (``True`` in the CIFAR code, ``False`` -- 1x1
            convolutions without bias -- in the ImageNet code).
        attn_scale: ``s`` in ``SN_attn(s Q Kᵀ V)``; 0.125 in the paper (also for ``"axnor"`` unless
            changed: see ``docs/transformers.md``, "scale").
        attn_order: ``"kv_first"`` (``Q (KᵀV)``, default) or ``"qk_first"`` (``(QKᵀ) V``).

    Example::

        model = Spikformer(embed_dim=384, depth=4, num_heads=12, similarity="axnor", a=0.25)
        logits = model(torch.rand(8, 3, 32, 32))      # [T=4, 8, 10]
    """

    def __init__(
        self,
        *,
        embed_dim: int = 384,
        depth: int = 4,
        num_heads: int = 12,
        qkv_bias: bool = True,
        attn_scale: float = 0.125,
        attn_order: str = "kv_first",
        **kwargs: Any,
    ) -> None:
        super().__init__(embed_dim=embed_dim, depth=depth, num_heads=num_heads, attn_scale=attn_scale, **kwargs)
        self.attn_order = attn_order
        self._build(SpikingPatchSplitting, SpikingSelfAttention, SpikingMLP, head_neuron=False,
                    qkv_bias=bool(qkv_bias), order=attn_order)
        self._init_normal(self)


# name: (depth, embed_dim, heads, pooling, qkv_bias, num_classes, paper params, where)
CONFIGS: dict[str, tuple[int, int, int, str, bool, int, str, str]] = {
    "spikformer_4_256": (4, 256, 8, "0011", True, 10, "4.15M", "CIFAR"),
    "spikformer_2_384": (2, 384, 12, "0011", True, 10, "5.76M", "CIFAR"),
    "spikformer_4_384": (4, 384, 12, "0011", True, 10, "9.32M", "CIFAR"),
    "spikformer_8_384": (8, 384, 12, "1111", False, 1000, "16.81M", "ImageNet"),
    "spikformer_6_512": (6, 512, 8, "1111", False, 1000, "23.37M", "ImageNet"),
    "spikformer_8_512": (8, 512, 8, "1111", False, 1000, "29.68M", "ImageNet"),
    "spikformer_10_512": (10, 512, 8, "1111", False, 1000, "36.01M", "ImageNet"),
    "spikformer_8_768": (8, 768, 12, "1111", False, 1000, "66.34M", "ImageNet"),
}
"""Registered Spikformer configurations (heads of the ImageNet models are not in the official configs;
12 for D = 384/768 and 8 for D = 512 are assumed -- they do not change the parameter count)."""


for _name, (_depth, _dim, _heads, _pooling, _qkv_bias, _classes, _params, _where) in CONFIGS.items():
    register_transformer(_name, Spikformer, "Spikformer", depth=_depth, embed_dim=_dim, num_heads=_heads,
                         pooling=_pooling, num_classes=_classes, paper=f"{_params} params", where=_where,
                         qkv_bias=_qkv_bias)

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

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ...blocks.common import NeuronFactory
from ...layers import TimeBatchNorm2d, TimeConv2d, TimeMaxPool2d
from ..registry import register_model
from .attention import SpikingSelfAttention
from .base import SpikingTransformer
from .similarity import AXNORCoefficient
from .tokens import TokenLinear, to_tokens

__all__ = ["SpikingPatchSplitting", "SpikingMLP", "SpikformerBlock", "Spikformer", "CONFIGS"]


def _stem_unit(conv: nn.Module, bn: nn.Module, x: torch.Tensor, T: int) -> torch.Tensor:
    """Conv-BN on a static image once, repeated over ``T``; or per step on a sequence ``[T, B, ...]``."""
    if x.dim() == 4:
        y = bn(conv(x))
        return y.unsqueeze(0).expand(T, *y.shape)
    return bn(conv(x))


class SpikingPatchSplitting(nn.Module):
    """Spikformer's SPS with relative position embedding.

    Args:
        in_channels: image channels.
        embed_dim: output channels ``D``.
        pooling: 4 characters, ``"1"`` = max-pool after that unit (``"0011"`` CIFAR, ``"1111"`` ImageNet).
        neuron: neuron factory.

    Shapes: ``[B, C, H, W]`` (static, repeated over ``T``) or ``[T, B, C, H, W]`` -> tokens
    ``[T, B, N, D]`` with ``N = H' W'``.
    """

    def __init__(self, in_channels: int, embed_dim: int, *, pooling: str = "0011", neuron: NeuronFactory):
        super().__init__()
        widths = [embed_dim // 8, embed_dim // 4, embed_dim // 2, embed_dim]
        c_in = [in_channels] + widths[:-1]
        self.convs = nn.ModuleList(
            TimeConv2d(ci, co, 3, padding=1, bias=False) for ci, co in zip(c_in, widths, strict=True)
        )
        self.bns = nn.ModuleList(TimeBatchNorm2d(co) for co in widths)
        self.sns = nn.ModuleList(neuron() for _ in widths)
        self.pools = nn.ModuleList(TimeMaxPool2d(3, stride=2, padding=1) if p == "1" else nn.Identity()
                                   for p in pooling)
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


class SpikformerBlock(nn.Module):
    """``x' = x + SSA(x)``, ``x = x' + MLP(x')`` on tokens ``[T, B, N, D]``."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float,
        *,
        neuron: NeuronFactory,
        attn_neuron: NeuronFactory,
        qkv_bias: bool,
        scale: float,
        order: str,
        similarity: str,
        a_coef: AXNORCoefficient | None,
        normalize: str,
    ):
        super().__init__()
        self.attn = SpikingSelfAttention(
            dim, num_heads, neuron=neuron, attn_neuron=attn_neuron, qkv_bias=qkv_bias, scale=scale,
            order=order, similarity=similarity, a_coef=a_coef, normalize=normalize,
        )
        self.mlp = SpikingMLP(dim, int(dim * mlp_ratio), neuron=neuron)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x)
        return x + self.mlp(x)


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
        mlp_ratio: float = 4.0,
        pooling: str = "0011",
        num_classes: int = 10,
        T: int = 4,
        in_channels: int = 3,
        input_size: int | Sequence[int] | None = None,
        neuron: Mapping[str, Any] | None = None,
        attn_neuron: Mapping[str, Any] | None = None,
        qkv_bias: bool = True,
        similarity: str = "dot",
        a: float | None = None,
        a_learnable: bool | None = None,
        a_granularity: str | None = None,
        attn_scale: float = 0.125,
        attn_norm: str = "none",
        attn_order: str = "kv_first",
    ) -> None:
        super().__init__(
            embed_dim=embed_dim, depth=depth, num_heads=num_heads, mlp_ratio=mlp_ratio, pooling=pooling,
            num_classes=num_classes, T=T, in_channels=in_channels, input_size=input_size, neuron=neuron,
            attn_neuron=attn_neuron, similarity=similarity, a=a, a_learnable=a_learnable,
            a_granularity=a_granularity, attn_scale=attn_scale, attn_norm=attn_norm,
        )
        self.attn_order = attn_order
        self.patch_embed = SpikingPatchSplitting(in_channels, embed_dim, pooling=pooling, neuron=self.make_sn)
        self.blocks = nn.ModuleList(
            SpikformerBlock(
                embed_dim, num_heads, mlp_ratio, neuron=self.make_sn, attn_neuron=self.make_attn_sn,
                qkv_bias=bool(qkv_bias), scale=attn_scale, order=attn_order, similarity=similarity,
                a_coef=self.layer_coefs[i], normalize=attn_norm,
            )
            for i in range(depth)
        )
        self.head_sn = nn.Identity()
        self.fc = nn.Linear(embed_dim, num_classes)
        self._init_linear(self)


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


def _register() -> None:
    for name, (depth, dim, heads, pooling, qkv_bias, classes, params, where) in CONFIGS.items():
        size = "32x32, 4x4 patches (64 tokens)" if pooling == "0011" else "224x224, 16x16 patches (196 tokens)"
        register_model(
            name,
            Spikformer,
            description=f"Spikformer-{depth}-{dim} ({where}: {size}, {heads} heads; paper: {params} params)",
            depth=depth,
            embed_dim=dim,
            num_heads=heads,
            pooling=pooling,
            qkv_bias=qkv_bias,
            num_classes=classes,
        )


_register()

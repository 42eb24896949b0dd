"""What Spikformer and the Spike-driven Transformer share: arguments, neurons, ``a``, input, head."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ..._checks import check_choice
from ...neurons import merge_neuron_spec, neuron_factory
from ..registry import register_model
from ..resnet import as_size, check_image_input, check_positive_ints
from .attention import SpikingAttention
from .similarity import AXNOR_DEFAULTS, SIMILARITIES, AXNORCoefficient, make_coefficients
from .tokens import ATTN_NEURON, SPIKFORMER_NEURON

__all__ = ["SpikingTransformer"]


class EncoderBlock(nn.Module):
    """``x' = x + attn(x)``, ``out = x' + mlp(x')`` on tokens ``[T, B, N, D]`` (the residual stream of
    Spikformer and SDT; what ``attn`` and ``mlp`` compute is the architecture's)."""

    def __init__(self, attn: nn.Module, mlp: nn.Module) -> None:
        super().__init__()
        self.attn = attn
        self.mlp = mlp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x)
        return x + self.mlp(x)


class SpikingTransformer(nn.Module):
    """Base class: validates the shared arguments and builds neurons and ``a`` coefficients.

    Subclasses build ``self.patch_embed`` (image -> tokens ``[T, B, N, C]``), ``self.blocks``
    (``nn.ModuleList`` of encoder blocks), ``self.head_sn`` and ``self.fc`` with :meth:`_build`.

    Shared arguments (all keyword-only; a subclass sets the defaults of ``embed_dim``, ``depth``,
    ``num_heads`` and ``attn_scale`` and passes the others through):
        embed_dim: token channels ``D`` (divisible by 8 and by ``num_heads``).
        depth: number of encoder blocks.
        num_heads: attention heads.
        mlp_ratio: hidden width of the MLP is ``int(D * mlp_ratio)``.
        pooling: 4 characters, ``"1"`` where a patch-embedding unit is followed by a max-pool
            (``"0011"``: CIFAR, 4x4 patches; ``"1111"``: ImageNet, 16x16 patches).
        num_classes: classifier outputs ``K``.
        T: time steps; static images ``[B, C, H, W]`` are repeated ``T`` times.
        in_channels: image channels.
        input_size: optional ``(H, W)``; checked on every call when given.
        neuron: overrides of the neuron spec (default LIF τ 2, V_th 1, hard reset, detached reset,
            Sigmoid(α = 4) surrogate -- SpikingJelly's ``MultiStepLIFNode``), for every neuron.
        attn_neuron: overrides applied on top of that for the attention neuron (default ``V_th = 0.5``).
        similarity: ``"dot"`` (the paper's) or ``"axnor"``.
        a, a_learnable, a_granularity: a-XNOR options (only with ``similarity="axnor"``; defaults
            0.25, learnable, ``"head"``). ``a_granularity`` is ``"global"``, ``"layer"`` or ``"head"``.
        attn_scale: scale of the attention product.
        attn_norm: ``"none"`` (paper scale), ``"match_dot"`` or ``"center"`` (a-XNOR only; see :mod:`.attention`).

    Shapes:
        input ``[B, C, H, W]`` or ``[T, B, C, H, W]``; output logits ``[T, B, num_classes]``.
    """

    def __init__(
        self,
        *,
        embed_dim: int,
        depth: int,
        num_heads: int,
        attn_scale: float,
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
        attn_norm: str = "none",
    ) -> None:
        super().__init__()
        check_positive_ints(embed_dim=embed_dim, depth=depth, num_heads=num_heads, num_classes=num_classes, T=T,
                            in_channels=in_channels)
        if embed_dim % 8:
            raise ValueError(f"embed_dim must be divisible by 8 (patch embedding widths D/8..D), got {embed_dim}")
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim={embed_dim} must be divisible by num_heads={num_heads}")
        if isinstance(mlp_ratio, bool) or not isinstance(mlp_ratio, (int, float)) or not mlp_ratio > 0 \
                or not math.isfinite(mlp_ratio) or int(embed_dim * mlp_ratio) < 1:
            raise ValueError(f"mlp_ratio must be a finite number > 0, got {mlp_ratio!r}")
        if not isinstance(pooling, str) or len(pooling) != 4 or set(pooling) - {"0", "1"}:
            raise ValueError(f"pooling must be 4 characters of '0'/'1' (e.g. '0011' or '1111'), got {pooling!r}")
        check_choice("similarity", similarity, SIMILARITIES)
        given = {k: v for k, v in (("a", a), ("a_learnable", a_learnable), ("a_granularity", a_granularity))
                 if v is not None}
        if similarity == "dot" and given:
            raise ValueError(f"{sorted(given)} only apply with similarity='axnor' (got similarity='dot')")
        if a_learnable is not None and not isinstance(a_learnable, bool):
            raise ValueError(f"a_learnable must be a bool, got {a_learnable!r}")

        self.embed_dim = embed_dim
        self.depth = depth
        self.num_heads = num_heads
        self.mlp_ratio = float(mlp_ratio)
        self.pooling = pooling
        self.num_classes = num_classes
        self.T = T
        self.in_channels = in_channels
        self.input_size = as_size(input_size)
        self.similarity = similarity
        self.neuron_spec = merge_neuron_spec(SPIKFORMER_NEURON, neuron)
        self.attn_neuron_spec = merge_neuron_spec(self.neuron_spec, {**ATTN_NEURON, **dict(attn_neuron or {})})
        self.make_sn = neuron_factory(self.neuron_spec)
        self.make_attn_sn = neuron_factory(self.attn_neuron_spec)

        self.a_options: dict[str, Any] | None = None
        self.a_coef: AXNORCoefficient | None = None
        self.layer_coefs: list[AXNORCoefficient | None] = [None] * depth
        if similarity == "axnor":
            self.a_options = {**AXNOR_DEFAULTS, **given}
            shared, per_layer = make_coefficients(
                depth,
                num_heads,
                a=self.a_options["a"],
                learnable=self.a_options["a_learnable"],
                granularity=self.a_options["a_granularity"],
            )
            self.a_coef = shared  # registered first, so the shared parameter is named ``a_coef.rho``
            self.layer_coefs = list(per_layer)
        self.attn_scale = attn_scale
        self.attn_norm = attn_norm

    # -- forward -----------------------------------------------------------------------------
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Token-averaged features ``[T, B, D]`` after the last encoder block."""
        check_image_input(x, T=self.T, in_channels=self.in_channels, input_size=self.input_size)
        tokens = self.patch_embed(x, self.T)
        for blk in self.blocks:
            tokens = blk(tokens)
        return tokens.mean(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Per-time-step logits ``[T, B, num_classes]``; average over dim 0 for a prediction."""
        return self.fc(self.head_sn(self.forward_features(x)))

    # -- analysis ----------------------------------------------------------------------------
    def attention_layers(self) -> dict[str, SpikingAttention]:
        """``{name: attention module}`` in depth order."""
        return {n: m for n, m in self.named_modules() if isinstance(m, SpikingAttention)}

    def a_values(self) -> dict[str, list[float]]:
        """Current ``a`` of every attention layer (empty for ``similarity="dot"``), for logging."""
        out = {}
        for name, m in self.attention_layers().items():
            a = m.a_value()
            if a is not None:
                out[name] = a.detach().tolist()
        return out

    # -- construction (for subclasses) -------------------------------------------------------
    def _build(self, patch_embed: type[nn.Module], attention: type[SpikingAttention], mlp: type[nn.Module], *,
               head_neuron: bool, **attn_options: Any) -> None:
        """Build, in this order (the order the weights are drawn in): ``patch_embed``; ``blocks``, one
        :class:`EncoderBlock` of ``attention`` (with the layer's ``a`` coefficient and ``attn_options``)
        and ``mlp`` (hidden width ``int(D * mlp_ratio)``) per layer; ``head_sn`` (a neuron if
        ``head_neuron``, else the identity) and the classifier ``fc``."""
        dim = self.embed_dim
        self.patch_embed = patch_embed(self.in_channels, dim, pooling=self.pooling, neuron=self.make_sn)
        self.blocks = nn.ModuleList(
            EncoderBlock(
                attention(dim, self.num_heads, neuron=self.make_sn, attn_neuron=self.make_attn_sn,
                          scale=self.attn_scale, similarity=self.similarity, a_coef=coef, normalize=self.attn_norm,
                          **attn_options),
                mlp(dim, int(dim * self.mlp_ratio), neuron=self.make_sn),
            )
            for coef in self.layer_coefs
        )
        self.head_sn = self.make_sn() if head_neuron else nn.Identity()
        self.fc = nn.Linear(dim, self.num_classes)

    @staticmethod
    def _init_normal(*modules: nn.Module, kinds: tuple[type[nn.Module], ...] = (nn.Linear,)) -> None:
        """``N(0, 0.02²)`` weights and zero biases for the layers of ``kinds`` in ``modules``, in order.

        The official ``trunc_normal_(std=0.02)`` truncates at ±2, i.e. at 100 standard deviations, so
        it is the plain normal distribution (and the plain sampler is several times faster).
        """
        for module in modules:
            for m in module.modules():
                if isinstance(m, kinds):
                    nn.init.normal_(m.weight, std=0.02)
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)

    def extra_repr(self) -> str:
        s = (f"embed_dim={self.embed_dim}, depth={self.depth}, heads={self.num_heads}, T={self.T}, "
             f"num_classes={self.num_classes}, pooling={self.pooling!r}, similarity={self.similarity!r}")
        if self.a_options:
            s += f", a_options={self.a_options}"
        return s


def register_transformer(name: str, cls: type[SpikingTransformer], title: str, *, depth: int, embed_dim: int,
                         num_heads: int, pooling: str, num_classes: int, paper: str, where: str, **extra: Any) -> None:
    """Register ``cls`` at one published configuration as ``name`` (description
    ``"<title>-<depth>-<embed_dim> (<where>: <input>, <heads> heads; paper: <paper>)"``)."""
    size = "32x32, 4x4 patches (64 tokens)" if pooling == "0011" else "224x224, 16x16 patches (196 tokens)"
    register_model(
        name, cls, description=f"{title}-{depth}-{embed_dim} ({where}: {size}, {num_heads} heads; paper: {paper})",
        depth=depth, embed_dim=embed_dim, num_heads=num_heads, pooling=pooling, num_classes=num_classes, **extra,
    )

"""Deep fully-connected residual SNN stacks of any block family (400+ weight layers on CPU).

``DeepSNNStack(n_features=64, n_blocks=240, block="ms")`` is a 482-layer MLP with membrane
shortcuts: an input layer, ``n_blocks`` two-layer residual blocks, and a classifier.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..blocks.families import BlockFamily, get_family
from ..blocks.stage import ResidualStage
from ..layers import LINEAR, TimeBatchNorm1d, TimeLinear, binarize_kit
from ..neurons import neuron_factory
from .resnet import check_positive_ints

__all__ = ["DeepSNNStack"]


class DeepSNNStack(nn.Module):
    """Residual MLP on feature vectors.

    Args:
        n_features: width of every block.
        n_blocks: number of residual blocks (two weight layers each).
        block: block family: ``"spiking"``, ``"sew"``, ``"ms"``, ``"oa"`` or ``"xor"``.
        in_features: input feature size (default ``n_features``).
        num_classes: classifier outputs; ``None`` returns the features ``[T, B, n_features]``.
        T: time steps used to repeat static inputs ``[B, F]``.
        neuron: overrides of the family's neuron spec.
        zero_init_residual: zero the last BN of each block (family default when ``None``).
        weights: ``"float"`` or ``"binary"`` (the blocks' linear layers; encoder and classifier
            stay full precision). ``binary_scale``: ``"none"``, ``"alpha"`` or ``"magnitude"``.
        spikes: ``"binary"`` or ``"real"`` (real-valued spikes, see :class:`~xorsnn.models.SpikingResNet`).
        **block_kwargs: family options (``connect``, ``or_form``, ``xor_mode``, ...).

    Shapes:
        ``[B, in_features]`` or ``[T, B, in_features]`` -> ``[T, B, num_classes]``.

    ``depth`` counts weight layers: ``1 + 2 * n_blocks + (1 if num_classes else 0)``.
    """

    def __init__(
        self,
        n_features: int,
        n_blocks: int,
        block: str | BlockFamily = "ms",
        *,
        in_features: int | None = None,
        num_classes: int | None = None,
        T: int = 4,
        neuron: Mapping[str, Any] | None = None,
        zero_init_residual: bool | None = None,
        weights: str = "float",
        binary_scale: str = "none",
        spikes: str = "binary",
        **block_kwargs: Any,
    ) -> None:
        super().__init__()
        check_positive_ints(n_features=n_features, n_blocks=n_blocks, T=T)
        fam = get_family(block)
        make_sn = neuron_factory(fam.neuron_spec(spikes, neuron))
        if weights not in ("float", "binary"):
            raise ValueError(f"weights must be 'float' or 'binary', got {weights!r}")
        if weights == "float" and binary_scale != "none":
            raise ValueError(f"binary_scale={binary_scale!r} needs weights='binary'")
        kit = binarize_kit(LINEAR, binary_scale) if weights == "binary" else LINEAR
        kwargs = dict(fam.block_kwargs, **block_kwargs)
        if fam.bn_init_threshold:
            kwargs.setdefault("bn_init", make_sn().v_threshold)
        self.family = fam.name
        self.T = T
        self.in_features = int(in_features or n_features)
        self.n_blocks = n_blocks
        self.encoder = nn.Sequential(
            TimeLinear(self.in_features, n_features, bias=False),
            TimeBatchNorm1d(n_features),
            make_sn() if fam.stem_neuron else nn.Identity(),
        )
        self.blocks = ResidualStage(
            *(fam.basic(n_features, n_features, neuron=make_sn, layers=kit, **kwargs) for _ in range(n_blocks))
        )
        self.head_bn = kit.norm(n_features) if fam.head_norm else nn.Identity()
        self.head_sn = make_sn() if fam.head_neuron else nn.Identity()
        self.fc = TimeLinear(n_features, num_classes) if num_classes else None
        zero = fam.zero_init_residual if zero_init_residual is None else zero_init_residual
        if zero:
            for blk in self.blocks:
                blk.zero_init_residual()

    @property
    def depth(self) -> int:
        """Number of weight layers on the path from input to output."""
        return 1 + 2 * self.n_blocks + (1 if self.fc is not None else 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise ValueError("x must be a floating-point torch.Tensor of shape [B, F] or [T, B, F]")
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(self.T, *x.shape)
        if x.dim() != 3 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"x must have shape [B, {self.in_features}] or [T, B, {self.in_features}], got {tuple(x.shape)}"
            )
        y = self.head_sn(self.head_bn(self.blocks(self.encoder(x))))
        return self.fc(y) if self.fc is not None else y

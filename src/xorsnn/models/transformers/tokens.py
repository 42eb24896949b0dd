"""Token-level layers shared by the spiking transformers (tensors ``[T, B, N, C]``)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ...neurons import SpikingNeuron

__all__ = ["SPIKFORMER_NEURON", "ATTN_NEURON", "TokenBatchNorm", "TokenLinear", "to_tokens"]

SPIKFORMER_NEURON: dict[str, Any] = {
    "type": "lif",
    "tau": 2.0,
    "v_threshold": 1.0,
    "v_reset": 0.0,
    "detach_reset": True,
    "surrogate": {"name": "sigmoid", "alpha": 4.0},
}
"""SpikingJelly ``MultiStepLIFNode(tau=2.0, detach_reset=True)`` with its default surrogate, Sigmoid(α = 4)."""

ATTN_NEURON: dict[str, Any] = {"v_threshold": 0.5}
"""Override for the attention neuron (Spikformer ``attn_lif``, SDT ``talking_heads_lif``): ``V_th = 0.5``."""


class TokenBatchNorm(nn.BatchNorm1d):
    """``BatchNorm1d`` over the last (channel) dimension of ``[..., C]``.

    Statistics are taken over all leading dimensions (``T, B, N``), as the official code's
    ``BatchNorm1d`` on ``[T*B, C, N]`` and ``BatchNorm2d`` on ``[T*B, C, H, W]`` do.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.reshape(-1, x.shape[-1])).view(x.shape)


class TokenLinear(nn.Module):
    """``Linear -> BN [-> SN]`` on tokens ``[T, B, N, C_in] -> [T, B, N, C_out]``; with ``neuron=None``
    the output is the real-valued BN output."""

    def __init__(self, in_features: int, out_features: int, *, bias: bool, neuron: SpikingNeuron | None):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features, bias=bias)
        self.bn = TokenBatchNorm(out_features)
        self.sn = neuron if neuron is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sn(self.bn(self.linear(x)))


def to_tokens(x: torch.Tensor) -> torch.Tensor:
    """Feature map ``[T, B, C, H, W]`` -> tokens ``[T, B, N = H*W, C]`` (row-major patch order)."""
    return x.flatten(3).transpose(-1, -2)

"""A stage of residual blocks: ``nn.Sequential`` that also hands each block the previous block's input.

XOR blocks (``uses_previous_input = True``) take ``forward(x, x_prev)``; every other block takes
``forward(x)``. The first block of a stage gets ``x_prev=None``; each later block gets the stream its
predecessor hands on: the predecessor's input, or -- for a downsampling XOR block with
``xor_prev="shortcut"`` (``hands_off_shortcut``) -- the spikes of its projected shortcut.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ResidualStage"]


class ResidualStage(nn.Sequential):
    """Blocks applied in order; shapes follow the blocks (``[T, B, C, H, W]`` or ``[T, B, F]``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        prev: torch.Tensor | None = None
        for block in self:
            if getattr(block, "hands_off_shortcut", False):
                out, handoff = block(x, prev, return_handoff=True)
            else:
                out = block(x, prev) if getattr(block, "uses_previous_input", False) else block(x)
                handoff = x
            prev, x = handoff, out
        return x

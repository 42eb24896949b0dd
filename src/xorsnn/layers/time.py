"""Stateless layers applied to every time step of a ``[T, B, ...]`` tensor.

Each layer folds time into the batch (``[T*B, ...]``, a free view), runs the ordinary PyTorch
layer, and unfolds again. Batch norm therefore normalises over ``(T, B, H, W)`` per channel --
the tdBN / BatchNorm3d statistics used by MS-ResNet and SpikingJelly's multi-step mode.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = [
    "fold_time",
    "TimeConv2d",
    "TimeBatchNorm2d",
    "TimeBatchNorm1d",
    "TimeMaxPool2d",
    "TimeAvgPool2d",
    "TimeAdaptiveAvgPool2d",
    "TimeLinear",
]


def fold_time(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Apply ``module`` to ``x`` ``[T, B, *rest]`` as one batch of ``T*B``; returns ``[T, B, *out]``."""
    if x.dim() < 3:
        raise ValueError(
            f"{type(module).__name__}: expected a time-first tensor [T, B, ...], got shape {tuple(x.shape)}"
        )
    y = module(x.flatten(0, 1))
    return y.unflatten(0, x.shape[:2])


class TimeConv2d(nn.Conv2d):
    """``nn.Conv2d`` on ``[T, B, C, H, W] -> [T, B, C', H', W']``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fold_time(super().forward, x) if x.dim() == 5 else super().forward(x)


class TimeBatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` on ``[T, B, C, H, W]``; statistics over ``(T, B, H, W)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fold_time(super().forward, x) if x.dim() == 5 else super().forward(x)


class TimeBatchNorm1d(nn.BatchNorm1d):
    """``nn.BatchNorm1d`` on feature vectors ``[T, B, F]``; statistics over ``(T, B)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fold_time(super().forward, x) if x.dim() == 3 else super().forward(x)


class TimeLinear(nn.Linear):
    """``nn.Linear`` on ``[T, B, F] -> [T, B, F']`` (``nn.Linear`` already maps leading dims)."""


class TimeMaxPool2d(nn.MaxPool2d):
    """``nn.MaxPool2d`` on ``[T, B, C, H, W]``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fold_time(super().forward, x)


class TimeAvgPool2d(nn.AvgPool2d):
    """``nn.AvgPool2d`` on ``[T, B, C, H, W]``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fold_time(super().forward, x)


class TimeAdaptiveAvgPool2d(nn.AdaptiveAvgPool2d):
    """``nn.AdaptiveAvgPool2d`` on ``[T, B, C, H, W]``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fold_time(super().forward, x)

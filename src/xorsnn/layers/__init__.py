"""Time-distributed layers (``[T, B, ...]``) and the layer kits blocks are built from."""

from .kits import CONV, LINEAR, ConvLayers, LayerKit, LinearLayers
from .time import (
    TimeAdaptiveAvgPool2d,
    TimeAvgPool2d,
    TimeBatchNorm1d,
    TimeBatchNorm2d,
    TimeConv2d,
    TimeLinear,
    TimeMaxPool2d,
    fold_time,
)

__all__ = [
    "fold_time",
    "TimeConv2d",
    "TimeBatchNorm2d",
    "TimeBatchNorm1d",
    "TimeLinear",
    "TimeMaxPool2d",
    "TimeAvgPool2d",
    "TimeAdaptiveAvgPool2d",
    "LayerKit",
    "ConvLayers",
    "LinearLayers",
    "CONV",
    "LINEAR",
]

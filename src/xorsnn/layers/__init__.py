"""Time-distributed layers (``[T, B, ...]``) and the layer kits blocks are built from."""

from .binary import (
    ALPHA_FLOOR,
    BINARY_SCALES,
    BinaryConv2d,
    BinaryConvLayers,
    BinaryLinear,
    BinaryLinearLayers,
    binarize_kit,
    binarize_weight,
    effective_weight,
    is_binary_layer,
    sign_ste,
)
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
    "BINARY_SCALES",
    "ALPHA_FLOOR",
    "sign_ste",
    "binarize_weight",
    "BinaryConv2d",
    "BinaryLinear",
    "BinaryConvLayers",
    "BinaryLinearLayers",
    "binarize_kit",
    "is_binary_layer",
    "effective_weight",
]

"""Layer kits: the weight and normalisation layers a residual block is built from.

Every block family is written once against this small interface, so the same block class works
on feature maps ``[T, B, C, H, W]`` (:class:`ConvLayers`: 3x3 / 1x1 convolutions and BatchNorm2d)
and on feature vectors ``[T, B, F]`` (:class:`LinearLayers`: linear layers and BatchNorm1d).

=================  ===========================  =========================
method             ConvLayers                   LinearLayers
=================  ===========================  =========================
``conv3x3``        Conv3x3(stride, pad 1)       Linear
``conv1x1``        Conv1x1(stride)              Linear
``norm``           BatchNorm2d over (T,B,H,W)   BatchNorm1d over (T,B)
=================  ===========================  =========================

Weight layers have no bias (a norm follows each one). ``conv_cls`` / ``linear_cls`` let other
parts of the library swap in, e.g., binary-weight layers without touching the blocks.
"""

from __future__ import annotations

from torch import nn

from .time import TimeBatchNorm1d, TimeBatchNorm2d, TimeConv2d, TimeLinear

__all__ = ["LayerKit", "ConvLayers", "LinearLayers", "CONV", "LINEAR"]


class LayerKit:
    """Interface of a layer kit (see the module docstring)."""

    spatial: bool = True

    def conv3x3(self, in_channels: int, out_channels: int, stride: int = 1) -> nn.Module:
        raise NotImplementedError

    def conv1x1(self, in_channels: int, out_channels: int, stride: int = 1) -> nn.Module:
        raise NotImplementedError

    def norm(self, channels: int) -> nn.Module:
        raise NotImplementedError


class ConvLayers(LayerKit):
    """Conv/BN kit for feature maps ``[T, B, C, H, W]``."""

    spatial = True

    def __init__(self, conv_cls: type[nn.Conv2d] = TimeConv2d, norm_cls: type[nn.Module] = TimeBatchNorm2d):
        self.conv_cls = conv_cls
        self.norm_cls = norm_cls

    def conv3x3(self, in_channels: int, out_channels: int, stride: int = 1) -> nn.Module:
        return self.conv_cls(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)

    def conv1x1(self, in_channels: int, out_channels: int, stride: int = 1) -> nn.Module:
        return self.conv_cls(in_channels, out_channels, 1, stride=stride, bias=False)

    def norm(self, channels: int) -> nn.Module:
        return self.norm_cls(channels)

    def __repr__(self) -> str:
        return f"ConvLayers(conv_cls={self.conv_cls.__name__}, norm_cls={self.norm_cls.__name__})"


class LinearLayers(LayerKit):
    """Linear/BN kit for feature vectors ``[T, B, F]``; strides must be 1."""

    spatial = False

    def __init__(self, linear_cls: type[nn.Linear] = TimeLinear, norm_cls: type[nn.Module] = TimeBatchNorm1d):
        self.linear_cls = linear_cls
        self.norm_cls = norm_cls

    def _linear(self, in_features: int, out_features: int, stride: int) -> nn.Module:
        if stride != 1:
            raise ValueError(f"LinearLayers: stride must be 1 for fully-connected blocks, got {stride}")
        return self.linear_cls(in_features, out_features, bias=False)

    def conv3x3(self, in_channels: int, out_channels: int, stride: int = 1) -> nn.Module:
        return self._linear(in_channels, out_channels, stride)

    def conv1x1(self, in_channels: int, out_channels: int, stride: int = 1) -> nn.Module:
        return self._linear(in_channels, out_channels, stride)

    def norm(self, channels: int) -> nn.Module:
        return self.norm_cls(channels)

    def __repr__(self) -> str:
        return f"LinearLayers(linear_cls={self.linear_cls.__name__}, norm_cls={self.norm_cls.__name__})"


CONV = ConvLayers()
LINEAR = LinearLayers()

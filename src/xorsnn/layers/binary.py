"""Binary-weight convolution and linear layers (ReverB-SNN, SEI-BWSNN) for time-first inputs.

The latent weight ``W`` is real-valued; the forward pass uses ``scale * sign(W)``:

* ``sign(W) = +1`` where ``W >= 0`` and ``-1`` elsewhere, so **sign(0) = +1**;
* backward: the clipped straight-through estimator ``dWb/dW = 1[|W| <= 1]`` (ReverB Eq. 10;
  Bi-Real Net uses ``|W| < 1``, which differs only on the measure-zero set ``|W| = 1``).

Scale options (``scale=``):

===============  ==========================================  ========================================
scale            weight used in the forward pass             notes
===============  ==========================================  ========================================
``"none"``       ``sign(W)``                                 ReverB-SNN
``"alpha"``      ``sign(W) * alpha[c_in]``                   ReverB's learnable amplitude, **per input
                                                             channel**, ``alpha = exp(log_alpha) + 1e-8``
``"magnitude"``  ``a[c_out] * sign(W)``, ``a = mean|W_c|``   SEI-BWSNN / Bi-Real; ``a`` is a constant in
                                                             backward (``dWb/dW = a * 1[|W| <= 1]``)
===============  ==========================================  ========================================

**Channel axis of ``alpha`` (declared: the INPUT channel of this layer).** Before a train-mode
BatchNorm an output-channel scale is cancelled (``BN(alpha_o z_o) = BN(z_o)``), so it would get no
gradient; an input-channel scale changes *which* combination of inputs each filter sees, and it
folds exactly into the previous layer's neurons at export (``(alpha ⊙_in sign W) * O =
sign W * (alpha ⊙ O)``, ReverB Eq. 18; binary-weight.md §1.6 items 1 and 4). ``alpha`` is
parameterised as ``exp(log_alpha) + ALPHA_FLOOR`` (``ALPHA_FLOOR = 1e-8``): positive by
construction in any precision, even where ``exp`` underflows (the export needs every scale that
crosses a neuron to be > 0); it starts at 1 and weight decay on ``log_alpha`` pulls it towards 1.

The layers plug into the layer kits: ``ConvLayers(conv_cls=BinaryConv2d)`` (scale ``"none"``), or
:class:`BinaryConvLayers` / :class:`BinaryLinearLayers` / :func:`binarize_kit` for a scale.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from .._checks import check_choice
from .kits import ConvLayers, LayerKit, LinearLayers
from .time import TimeBatchNorm1d, TimeBatchNorm2d, TimeConv2d, TimeLinear, fold_time

__all__ = [
    "BINARY_SCALES",
    "ALPHA_FLOOR",
    "sign_ste",
    "binarize_weight",
    "BinaryWeightMixin",
    "BinaryConv2d",
    "BinaryLinear",
    "BinaryConvLayers",
    "BinaryLinearLayers",
    "binarize_kit",
    "is_binary_layer",
    "effective_weight",
]

BINARY_SCALES = ("none", "alpha", "magnitude")
ALPHA_FLOOR = 1e-8


def alpha_from_log(log_alpha: torch.Tensor) -> torch.Tensor:
    """``exp(log_alpha) + ALPHA_FLOOR``: the learnable amplitude, > 0 even where ``exp`` underflows."""
    return torch.exp(log_alpha) + ALPHA_FLOOR


class _SignSTE(torch.autograd.Function):
    """``sign`` with sign(0) = +1; clipped straight-through gradient ``1[|w| <= 1]``."""

    @staticmethod
    def forward(ctx: Any, w: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(w)
        return (w >= 0).to(w.dtype) * 2 - 1

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (w,) = ctx.saved_tensors
        return grad_out * (w.abs() <= 1).to(grad_out.dtype)


def sign_ste(w: torch.Tensor) -> torch.Tensor:
    """``+1`` where ``w >= 0``, ``-1`` elsewhere (any shape); gradient ``1[|w| <= 1]`` (clipped STE)."""
    if not isinstance(w, torch.Tensor) or not w.is_floating_point():
        raise ValueError("sign_ste: w must be a floating-point torch.Tensor")
    return _SignSTE.apply(w)


def _check_scale(scale: str) -> str:
    check_choice("binary scale", scale, BINARY_SCALES)
    return scale


def binarize_weight(
    weight: torch.Tensor, scale: str = "none", log_alpha: torch.Tensor | None = None
) -> torch.Tensor:
    """The forward weight of a binary layer.

    Args:
        weight: latent weight ``[C_out, C_in, *kernel]`` (conv) or ``[F_out, F_in]`` (linear).
        scale: ``"none"``, ``"alpha"`` or ``"magnitude"`` (see the module docstring).
        log_alpha: ``[C_in]``, required for ``scale="alpha"``.

    Returns:
        A tensor shaped like ``weight`` with values ``±1``, ``±alpha[c_in]`` or ``±a[c_out]``.
    """
    wb = sign_ste(weight)
    if scale == "none":
        return wb
    if scale == "alpha":
        if log_alpha is None or log_alpha.shape != (weight.shape[1],):
            raise ValueError(
                f"scale='alpha' needs log_alpha of shape [C_in={weight.shape[1]}], got "
                f"{None if log_alpha is None else tuple(log_alpha.shape)}"
            )
        view = (1, -1) + (1,) * (weight.dim() - 2)
        return wb * alpha_from_log(log_alpha).view(view)
    if scale == "magnitude":
        a = weight.detach().abs().flatten(1).mean(1)  # constant in backward
        view = (-1,) + (1,) * (weight.dim() - 1)
        return wb * a.view(view)
    raise ValueError(f"binary scale must be one of {BINARY_SCALES}, got {scale!r}")


class BinaryWeightMixin:
    """Shared parts of :class:`BinaryConv2d` and :class:`BinaryLinear`.

    Attributes:
        scale: ``"none"``, ``"alpha"`` or ``"magnitude"``.
        log_alpha: ``nn.Parameter`` ``[C_in]`` for ``scale="alpha"`` (``alpha = exp(log_alpha) + 1e-8``), else
            ``None``.
    """

    weight: nn.Parameter
    scale: str
    log_alpha: nn.Parameter | None
    alpha_axis = "input"  # declared channel axis of alpha: the input channel of this layer

    def _init_scale(self, scale: str) -> None:
        self.scale = _check_scale(scale)
        if scale == "alpha":
            self.log_alpha = nn.Parameter(torch.zeros(self.weight.shape[1], dtype=self.weight.dtype,
                                                      device=self.weight.device))
        else:
            self.register_parameter("log_alpha", None)  # type: ignore[attr-defined]

    @property
    def alpha(self) -> torch.Tensor | None:
        """``exp(log_alpha) + ALPHA_FLOOR`` ``[C_in]`` (always > 0), or ``None`` without a learnable scale."""
        return None if self.log_alpha is None else alpha_from_log(self.log_alpha)

    def binary_weight(self) -> torch.Tensor:
        """The weight used in the forward pass (see :func:`binarize_weight`)."""
        return binarize_weight(self.weight, self.scale, self.log_alpha)

    def sign_weight(self) -> torch.Tensor:
        """``sign(W)`` (values exactly ±1, no gradient)."""
        return (self.weight.detach() >= 0).to(self.weight.dtype) * 2 - 1

    def input_scale(self) -> torch.Tensor | None:
        """Per-input-channel factor of the forward weight (``alpha``), detached, or ``None``."""
        return None if self.log_alpha is None else alpha_from_log(self.log_alpha.detach())

    def output_scale(self) -> torch.Tensor | None:
        """Per-output-channel factor (magnitude-aware ``a_c = mean|W_c|``), detached, or ``None``."""
        if self.scale != "magnitude":
            return None
        return self.weight.detach().abs().flatten(1).mean(1)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", scale={self.scale!r}"  # type: ignore[misc]


class BinaryConv2d(BinaryWeightMixin, TimeConv2d):
    """Binary-weight ``Conv2d`` on ``[T, B, C, H, W]`` (or ``[B, C, H, W]``); same arguments as ``nn.Conv2d``
    plus ``scale`` (keyword). Output shape as ``nn.Conv2d``; the bias, if any, stays full precision."""

    def __init__(self, *args: Any, scale: str = "none", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.groups != 1:
            raise ValueError(f"BinaryConv2d: groups must be 1, got {self.groups}")
        self._init_scale(scale)

    def _forward_4d(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.binary_weight(), self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fold_time(self._forward_4d, x) if x.dim() == 5 else self._forward_4d(x)


class BinaryLinear(BinaryWeightMixin, TimeLinear):
    """Binary-weight ``Linear`` on ``[..., F_in] -> [..., F_out]`` (e.g. ``[T, B, F]``); arguments as
    ``nn.Linear`` plus ``scale`` (keyword)."""

    def __init__(self, *args: Any, scale: str = "none", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._init_scale(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.binary_weight(), self.bias)


def is_binary_layer(module: nn.Module) -> bool:
    """Whether ``module`` is a binary-weight layer of this module."""
    return isinstance(module, BinaryWeightMixin)


def effective_weight(module: nn.Module) -> torch.Tensor:
    """The weight a conv / linear layer applies, detached: the binarised one for binary layers."""
    with torch.no_grad():
        return (module.binary_weight() if is_binary_layer(module) else module.weight).detach()


class BinaryConvLayers(ConvLayers):
    """Conv/BN kit whose 3x3 and 1x1 convolutions are :class:`BinaryConv2d` with ``scale``."""

    def __init__(self, scale: str = "none", norm_cls: type[nn.Module] = TimeBatchNorm2d) -> None:
        super().__init__(conv_cls=BinaryConv2d, norm_cls=norm_cls)
        self.scale = _check_scale(scale)

    def conv3x3(self, in_channels: int, out_channels: int, stride: int = 1) -> nn.Module:
        return BinaryConv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False, scale=self.scale)

    def conv1x1(self, in_channels: int, out_channels: int, stride: int = 1) -> nn.Module:
        return BinaryConv2d(in_channels, out_channels, 1, stride=stride, bias=False, scale=self.scale)

    def __repr__(self) -> str:
        return f"BinaryConvLayers(scale={self.scale!r}, norm_cls={self.norm_cls.__name__})"


class BinaryLinearLayers(LinearLayers):
    """Linear/BN kit whose linear layers are :class:`BinaryLinear` with ``scale``."""

    def __init__(self, scale: str = "none", norm_cls: type[nn.Module] = TimeBatchNorm1d) -> None:
        super().__init__(linear_cls=BinaryLinear, norm_cls=norm_cls)
        self.scale = _check_scale(scale)

    def _linear(self, in_features: int, out_features: int, stride: int) -> nn.Module:
        if stride != 1:
            raise ValueError(f"BinaryLinearLayers: stride must be 1 for fully-connected blocks, got {stride}")
        return BinaryLinear(in_features, out_features, bias=False, scale=self.scale)

    def __repr__(self) -> str:
        return f"BinaryLinearLayers(scale={self.scale!r}, norm_cls={self.norm_cls.__name__})"


def binarize_kit(kit: LayerKit, scale: str = "none") -> LayerKit:
    """The binary-weight version of a layer kit (same norm class).

    ``ConvLayers -> BinaryConvLayers(scale)``, ``LinearLayers -> BinaryLinearLayers(scale)``.
    Raises ``ValueError`` for a kit that is already binary or of an unknown kind.
    """
    _check_scale(scale)
    if isinstance(kit, (BinaryConvLayers, BinaryLinearLayers)):
        raise ValueError(f"layer kit {kit!r} is already binary; pass the full-precision kit with weights='binary'")
    if isinstance(kit, ConvLayers):
        if kit.conv_cls is not TimeConv2d:
            raise ValueError(f"cannot binarise a ConvLayers kit with a custom conv_cls ({kit.conv_cls!r})")
        return BinaryConvLayers(scale, norm_cls=kit.norm_cls)
    if isinstance(kit, LinearLayers):
        if kit.linear_cls is not TimeLinear:
            raise ValueError(f"cannot binarise a LinearLayers kit with a custom linear_cls ({kit.linear_cls!r})")
        return BinaryLinearLayers(scale, norm_cls=kit.norm_cls)
    raise ValueError(f"binarize_kit: expected a ConvLayers or LinearLayers kit, got {type(kit).__name__}")

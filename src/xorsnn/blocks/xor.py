"""XOR residual blocks: the OA block plus XOR meta-residuals ("XOResNet-style").

XOResNet's abstract says the backbone branch learns from "pre-learning residuals selected by
exclusive-OR"; which two tensors are XORed is not public. ``xor_mode`` selects the reading
(``x_l`` is this block's input, ``x_{l-1}`` the previous block's input, ``A = SN(F(.))``):

==========  ===============================================================  ==========================
xor_mode    computation (identity blocks)                                    note
==========  ===============================================================  ==========================
``input``   ``m = XOR(x_l, x_{l-1})``; ``out = OR(x_l, SN(F(m)))``           default (XR-A)
``output``  ``A = SN(F(x_l))``; ``sel = A * XOR(x_l, A)``; ``out = OR(x_l, sel)``  XR-B, the circulated summary
``inner``   XOR of ``x_l`` with the first neuron's output inside ``F``      XR-C, basic blocks only
``merge``   ``out = XOR(x_l, A)`` (a residual over GF(2))                    XR-D
``none``    plain OA block                                                   ablation
==========  ===============================================================  ==========================

Exact equivalences on binary spikes (tested):

* ``input``: with OR shortcuts ``x_l = OR(x_{l-1}, A_{l-1})``, so
  ``XOR(x_l, x_{l-1}) = A_{l-1} * (1 - x_{l-1})`` -- the backbone sees exactly the spikes the
  previous block *added* (the novel information), not the accumulated stream.
* ``output``: ``sel = A * (1 - x_l)``, so ``OR(x_l, sel) = OR(x_l, A)``: **forward-identical to
  ``none``**; only the gradients differ (``∂out/∂A = (1 - x)^2`` instead of ``1 - x``).
* ``merge``: identity at ``A ≡ 0``; output stays binary.

``input`` needs ``x_{l-1}`` of the same shape: the first block of a stage, and a block whose
predecessor changed the shape, receive ``x_l`` itself. Downsampling blocks are plain OA blocks
(current ADD, then one neuron) in every mode, so ``inner`` (basic blocks only) always finds
``x_l`` and the first neuron's output with the same shape.
"""

from __future__ import annotations

import torch

from ..layers import CONV, LayerKit
from ..ops import XOR_FORMS, spike_and, spike_or, spike_xor
from .common import NeuronFactory
from .oa import OABasicBlock, OABottleneck, _check_choice

__all__ = ["XOR_MODES", "XORBasicBlock", "XORBottleneck"]

XOR_MODES = ("input", "output", "inner", "merge", "none")


class _XORMixin:
    """The XOR meta-residual forward shared by the basic and bottleneck XOR blocks."""

    uses_previous_input = True
    xor_mode: str
    xor_form: str
    or_form: str
    downsample: torch.nn.Module | None

    def meta_residual(self, x: torch.Tensor, x_prev: torch.Tensor | None) -> torch.Tensor:
        """Backbone input for ``xor_mode="input"``: ``XOR(x, x_prev)``, or ``x`` without a same-shape ``x_prev``."""
        if x_prev is None or x_prev.shape != x.shape:
            return x
        return spike_xor(x, x_prev, self.xor_form)

    def forward(self, x: torch.Tensor, x_prev: torch.Tensor | None = None) -> torch.Tensor:
        """``x``: block input ``[T, B, C, ...]``; ``x_prev``: previous block's input or ``None``."""
        mode = self.xor_mode
        if self.downsample is not None or mode == "none":
            return self.merge(x, self.residual(x))  # type: ignore[attr-defined]
        if mode == "input":
            return self.merge(x, self.residual(self.meta_residual(x, x_prev)))  # type: ignore[attr-defined]
        if mode == "inner":
            return spike_or(x, self.fire(self.inner_residual(x)), self.or_form)  # type: ignore[attr-defined]
        a = self.fire(self.residual(x))  # type: ignore[attr-defined]
        if mode == "output":
            return spike_or(x, spike_and(a, spike_xor(x, a, self.xor_form)), self.or_form)
        return spike_xor(x, a, self.xor_form)  # merge


class XORBasicBlock(_XORMixin, OABasicBlock):
    """XOR residual block (basic). Shapes: ``[T, B, in_planes, H, W] -> [T, B, planes, H/s, W/s]``.

    Args (beyond :class:`~xorsnn.blocks.OABasicBlock`'s):
        xor_mode: ``"input"``, ``"output"``, ``"inner"``, ``"merge"`` or ``"none"`` (see module doc).
        xor_form: XOR variant, ``"poly"`` (``a+b-2ab``) or ``"abs"`` (``|a-b|``).
    """

    def __init__(
        self,
        in_planes: int,
        planes: int,
        stride: int = 1,
        *,
        neuron: NeuronFactory,
        layers: LayerKit = CONV,
        or_form: str = "poly",
        down_merge: str = "add",
        xor_mode: str = "input",
        xor_form: str = "poly",
    ) -> None:
        super().__init__(
            in_planes, planes, stride, neuron=neuron, layers=layers, or_form=or_form, down_merge=down_merge
        )
        self.xor_mode = _check_choice("xor_mode", xor_mode, XOR_MODES)
        self.xor_form = _check_choice("xor_form", xor_form, XOR_FORMS)

    def inner_residual(self, x: torch.Tensor) -> torch.Tensor:
        """``xor_mode="inner"``: ``BN(conv(XOR(x, SN(BN(conv(x))))))``."""
        h = self.sn1(self.bn1(self.conv1(x)))
        return self.bn2(self.conv2(spike_xor(x, h, self.xor_form)))

    def extra_repr(self) -> str:
        return super().extra_repr() + f", xor_mode={self.xor_mode!r}, xor_form={self.xor_form!r}"


class XORBottleneck(_XORMixin, OABottleneck):
    """XOR residual block (bottleneck). ``xor_mode="inner"`` is not defined for bottlenecks."""

    def __init__(
        self,
        in_planes: int,
        planes: int,
        stride: int = 1,
        *,
        neuron: NeuronFactory,
        layers: LayerKit = CONV,
        or_form: str = "poly",
        down_merge: str = "add",
        xor_mode: str = "input",
        xor_form: str = "poly",
    ) -> None:
        if xor_mode == "inner":
            raise ValueError(
                "xor_mode='inner' is not defined for bottleneck blocks (the first neuron's output has "
                "fewer channels than the block input); use 'input', 'output', 'merge' or 'none'"
            )
        super().__init__(
            in_planes, planes, stride, neuron=neuron, layers=layers, or_form=or_form, down_merge=down_merge
        )
        self.xor_mode = _check_choice("xor_mode", xor_mode, XOR_MODES)
        self.xor_form = _check_choice("xor_form", xor_form, XOR_FORMS)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", xor_mode={self.xor_mode!r}, xor_form={self.xor_form!r}"

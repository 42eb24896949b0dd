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

Downsampling blocks are plain OA blocks (current ADD, then one neuron) in every mode, so
``inner`` (basic blocks only) always finds ``x_l`` and the first neuron's output with the same shape.

**Which stream is ``x_{l-1}``** (``xor_prev``, used by ``xor_mode="input"`` only):

* ``"input"`` -- the previous block's input. A block whose predecessor changed the shape (the
  block after every downsampling block) has no same-shape ``x_{l-1}`` and reads ``x_l`` itself,
  so its meta-residual is inactive: XOR is active in only 4 of the 7 identity blocks of
  ``xoresnet20`` and 1 of 4 of ``xoresnet14``.
* ``"shortcut"`` -- the previous block's *shortcut stream*: its input for an identity block
  (the same as ``"input"``), and for a downsampling block the spikes its projected shortcut
  alone would fire, ``P = SN'(BN(conv1x1(x_{l-1})))`` (a parameter-free neuron of the block's
  kind on the shortcut current; with ``down_merge="or"`` the shortcut already ends in a neuron).
  The next block then reads ``XOR(x_l, P)``: the positions where adding the backbone current
  changed the shortcut's firing decision -- what the downsampling block learned, the analogue
  of ``A_{l-1} (1 - x_{l-1})`` for an OR block. Every identity block but the network's first
  (which has no predecessor) gets an active meta-residual (6 of 7 in ``xoresnet20``, 3 of 4 in
  ``xoresnet14``).

The first block of a stage (and of the network) gets ``x_prev=None`` and reads ``x_l``.
"""

from __future__ import annotations

import torch

from .._checks import check_choice
from ..layers import CONV, LayerKit
from ..ops import XOR_FORMS, spike_and, spike_or, spike_xor
from .common import NeuronFactory
from .oa import OABasicBlock, OABottleneck, oa_segment
from .spec import BlockSpec, Segment, post_activation

__all__ = ["XOR_MODES", "XOR_PREVS", "XORBasicBlock", "XORBottleneck"]

XOR_MODES = ("input", "output", "inner", "merge", "none")
XOR_PREVS = ("input", "shortcut")


class _XORMixin:
    """The XOR meta-residual forward shared by the basic and bottleneck XOR blocks."""

    uses_previous_input = True
    xor_mode: str
    xor_form: str
    xor_prev: str
    or_form: str
    down_merge: str
    downsample: torch.nn.Module | None

    def __init__(self, in_planes: int, planes: int, stride: int = 1, *, neuron: NeuronFactory,
                 layers: LayerKit = CONV, or_form: str = "poly", down_merge: str = "add", xor_mode: str = "input",
                 xor_form: str = "poly", xor_prev: str = "input") -> None:
        if xor_mode == "inner" and self.expansion > 1:  # type: ignore[attr-defined]
            raise ValueError(
                "xor_mode='inner' is not defined for bottleneck blocks (the first neuron's output has "
                "fewer channels than the block input); use 'input', 'output', 'merge' or 'none'"
            )
        super().__init__(  # type: ignore[call-arg]
            in_planes, planes, stride, neuron=neuron, layers=layers, or_form=or_form, down_merge=down_merge
        )
        self.xor_mode = check_choice("xor_mode", xor_mode, XOR_MODES)
        self.xor_form = check_choice("xor_form", xor_form, XOR_FORMS)
        self.xor_prev = check_choice("xor_prev", xor_prev, XOR_PREVS)
        if xor_prev != "input" and xor_mode != "input":
            raise ValueError(
                f"xor_prev={xor_prev!r} selects the previous stream of xor_mode='input' and has no effect with "
                f"xor_mode={xor_mode!r}: use xor_prev='input' (the default) or xor_mode='input'"
            )
        # Shortcut spikes handed to the next block (parameter-free neuron; "or" shortcuts already fire).
        self.sn_handoff = neuron() if self.hands_off_shortcut and self.down_merge == "add" else None

    @property
    def hands_off_shortcut(self) -> bool:
        """Whether the next block's ``x_prev`` is this block's shortcut spikes (``xor_prev="shortcut"``, downsampling
        blocks only)."""
        return self.xor_prev == "shortcut" and self.downsample is not None

    def spec(self) -> BlockSpec:
        """Description for the backends (:mod:`xorsnn.blocks.spec`): the OA segment with the XOR reading."""
        n = self.n_units  # type: ignore[attr-defined]
        mode = self.xor_mode
        plain = self.downsample is not None or mode == "none"
        branch = post_activation(n, inner_xor=mode == "inner" and not plain)
        seg = oa_segment(self, branch)  # type: ignore[arg-type]
        if not plain:
            merge = {"output": "or_select", "merge": "xor"}.get(mode, "or")
            seg = Segment(branch, "identity", merge, seg.neuron, meta=mode == "input")
        handoff = "shortcut" if self.hands_off_shortcut else "input"
        return BlockSpec("xor", (seg,), "spikes", self.or_form, self.xor_form, handoff,
                         "sn_handoff" if self.sn_handoff is not None else None)

    def extra_repr(self) -> str:
        xor = f"xor_mode={self.xor_mode!r}, xor_form={self.xor_form!r}, xor_prev={self.xor_prev!r}"
        return f"{super().extra_repr()}, {xor}"  # type: ignore[misc]

    def meta_residual(self, x: torch.Tensor, x_prev: torch.Tensor | None) -> torch.Tensor:
        """Backbone input for ``xor_mode="input"``: ``XOR(x, x_prev)``, or ``x`` without a same-shape ``x_prev``."""
        if x_prev is None or x_prev.shape != x.shape:
            return x
        return spike_xor(x, x_prev, self.xor_form)

    def forward(
        self, x: torch.Tensor, x_prev: torch.Tensor | None = None, return_handoff: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """``x``: block input ``[T, B, C, ...]``; ``x_prev``: the previous block's stream (see
        ``xor_prev``) or ``None``. With ``return_handoff=True`` returns ``(out, stream)``, where
        ``stream`` is what the next block receives as ``x_prev`` (``x`` itself, or the shortcut
        spikes of a downsampling block with ``xor_prev="shortcut"``)."""
        if return_handoff:
            if not self.hands_off_shortcut:
                return self.forward(x, x_prev), x
            s = self.downsample(x)  # type: ignore[misc]
            out = self.merge(x, self.residual(x), s)  # type: ignore[attr-defined]
            return out, (self.sn_handoff(s) if self.sn_handoff is not None else s)
        mode = self.xor_mode
        if self.downsample is not None or mode == "none":
            return self.merge(x, self.residual(x))  # type: ignore[attr-defined]
        if mode == "input":
            return self.merge(x, self.residual(self.meta_residual(x, x_prev)))  # type: ignore[attr-defined]
        if mode == "inner":
            return self.fire_or(self.inner_residual(x), x)  # type: ignore[attr-defined]
        a = self.fire(self.residual(x))  # type: ignore[attr-defined]
        if mode == "output":
            return spike_or(x, spike_and(a, spike_xor(x, a, self.xor_form)), self.or_form)
        return spike_xor(x, a, self.xor_form)  # merge


class XORBasicBlock(_XORMixin, OABasicBlock):
    """XOR residual block (basic). Shapes: ``[T, B, in_planes, H, W] -> [T, B, planes, H/s, W/s]``.

    Args (beyond :class:`~xorsnn.blocks.OABasicBlock`'s):
        xor_mode: ``"input"``, ``"output"``, ``"inner"``, ``"merge"`` or ``"none"`` (see module doc).
        xor_form: XOR variant, ``"poly"`` (``a+b-2ab``) or ``"abs"`` (``|a-b|``).
        xor_prev: the stream ``x_{l-1}`` of ``xor_mode="input"``: ``"input"`` or ``"shortcut"`` (module doc).
    """

    def inner_residual(self, x: torch.Tensor) -> torch.Tensor:
        """``xor_mode="inner"``: ``BN(conv(XOR(x, SN(BN(conv(x))))))``."""
        h = self.sn1(self.bn1(self.conv1(x)))
        return self.bn2(self.conv2(spike_xor(x, h, self.xor_form)))


class XORBottleneck(_XORMixin, OABottleneck):
    """XOR residual block (bottleneck). ``xor_mode="inner"`` is not defined for bottlenecks."""

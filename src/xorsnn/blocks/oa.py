"""OA blocks: XOResNet's OR-ADD shortcut ("XOResNet-style"; the paper's method section is not public).

* **Identity shortcut -- spikes merged with OR**: ``out = OR(x, SN(F(x)))``. Where both branches
  fire, OR emits one spike instead of SEW-ADD's 2 (no "spike redundancy").
* **Downsample shortcut -- currents merged with ADD** before one neuron:
  ``out = SN(F(x) + BN(conv1x1(x)))`` (``down_merge="add"``, default). The shortcut carries a
  real-valued current rather than SEW's binarised spikes (no "information loss").
  ``down_merge="or"`` is the ablation with a SEW-style Conv1x1-BN-SN shortcut merged by OR.

``F`` is conv-BN-SN-conv-BN (basic) or conv1x1-BN-SN-conv3x3-BN-SN-conv1x1-BN (bottleneck).
The block output is always binary when its input is. With the last BN at gamma = beta = 0 the
identity block is exactly the identity (``SN`` of a zero current never fires).
See ``docs/xoresnet.md`` for what is confirmed and what is reconstructed.
"""

from __future__ import annotations

import torch
from torch import nn

from .._checks import check_choice
from ..layers import CONV, LayerKit
from ..neurons import SpikingNeuron
from ..ops import OR_FORMS, spike_or
from .common import (
    NeuronFactory,
    add_units,
    needs_projection,
    projection_shortcut,
    spiking_projection,
    zero_norm_,
)
from .spec import BlockSpec, Op, Segment, post_activation

__all__ = ["DOWN_MERGES", "OABasicBlock", "OABottleneck"]

DOWN_MERGES = ("add", "or")


def oa_segment(block: nn.Module, branch: tuple[Op, ...] | None = None) -> Segment:
    """The OA segment of ``block``: the ``conv-BN(-SN)`` branch (or ``branch``) merged by OR with the input,
    or on a shape change by current ADD (``down_merge="add"``) or OR with the shortcut's spikes."""
    n = block.n_units
    branch = post_activation(n) if branch is None else branch
    neuron = f"sn{n}"
    if block.downsample is None:
        return Segment(branch, "identity", "or", neuron)
    if block.down_merge == "add":
        return Segment(branch, "projection", "current_add", neuron)
    return Segment(branch, "spiking_projection", "or", neuron)


class _OABase(nn.Module):
    """What the OA basic and bottleneck blocks share: the options, the shortcut, the merge and the
    description. Subclasses build ``conv{k}/bn{k}/sn{k}`` for ``k = 1..n_units`` and write ``residual``."""

    expansion: int
    n_units: int  # conv-BN units in the branch
    downsample: nn.Module | None

    def __init__(self, in_planes: int, planes: int, stride: int = 1, *, neuron: NeuronFactory,
                 layers: LayerKit = CONV, or_form: str = "poly", down_merge: str = "add") -> None:
        super().__init__()
        self.or_form = check_choice("or_form", or_form, OR_FORMS)
        self.down_merge = check_choice("down_merge", down_merge, DOWN_MERGES)
        out_planes = add_units(self, layers, in_planes, planes, stride, neuron, bottleneck=self.expansion > 1)
        # on a shape change: Conv1x1 - BN (current ADD) or Conv1x1 - BN - SN (down_merge="or")
        if self.down_merge == "or":
            self.downsample = spiking_projection(layers, in_planes, out_planes, stride, neuron)
        elif needs_projection(in_planes, out_planes, stride):
            self.downsample = projection_shortcut(layers, in_planes, out_planes, stride)
        else:
            self.downsample = None

    def residual(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - every subclass writes it out
        raise NotImplementedError

    def fire(self, current: torch.Tensor) -> torch.Tensor:
        """The branch's last neuron: backbone spikes ``A = SN(current)``."""
        return getattr(self, f"sn{self.n_units}")(current)

    def fire_or(self, current: torch.Tensor, spikes: torch.Tensor) -> torch.Tensor:
        """``spike_or(spikes, self.fire(current), or_form)``, merged inside the neuron's fused kernel where it runs
        (:meth:`~xorsnn.neurons.SpikingNeuron.fire_or`; a swapped-in module, e.g. an export's folded neuron,
        runs on its own)."""
        neuron = getattr(self, f"sn{self.n_units}")
        if isinstance(neuron, SpikingNeuron):
            return neuron.fire_or(current, spikes, self.or_form)
        return spike_or(spikes, neuron(current), self.or_form)

    def merge(self, x: torch.Tensor, current: torch.Tensor, shortcut: torch.Tensor | None = None) -> torch.Tensor:
        """OA merge of the block input ``x`` with the backbone ``current``.

        ``shortcut``: the downsampling shortcut ``downsample(x)`` if the caller already computed it.
        """
        if self.downsample is None:
            return self.fire_or(current, x)
        s = self.downsample(x) if shortcut is None else shortcut
        if self.down_merge == "add":
            return self.fire(current + s)
        return self.fire_or(current, s)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.merge(x, self.residual(x))

    def zero_init_residual(self) -> None:
        """Zero the last BN: the backbone is silent and an identity block passes ``x`` unchanged."""
        zero_norm_(getattr(self, f"bn{self.n_units}"))

    def spec(self) -> BlockSpec:
        """Description for the backends (:mod:`xorsnn.blocks.spec`)."""
        return BlockSpec("oa", (oa_segment(self),), "spikes", or_form=self.or_form)

    def extra_repr(self) -> str:
        return f"or_form={self.or_form!r}, down_merge={self.down_merge!r}"


class OABasicBlock(_OABase):
    """OR-ADD basic block. Shapes: ``[T, B, in_planes, H, W] -> [T, B, planes, H/stride, W/stride]``.

    Args:
        in_planes, planes, stride: as in torchvision's ``BasicBlock``.
        layers: layer kit (convolutions or, for ``[T, B, F]`` inputs, linear layers).
        or_form: OR variant for the identity merge: ``"poly"`` (``a+b-ab``), ``"max"``, ``"clamp"``.
        down_merge: ``"add"`` (current ADD, then one neuron) or ``"or"`` (spiking shortcut, OR).
    """

    expansion = 1
    n_units = 2

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone current ``F(x) = BN(conv(SN(BN(conv(x)))))`` (before the last neuron)."""
        return self.bn2(self.conv2(self.sn1(self.bn1(self.conv1(x)))))


class OABottleneck(_OABase):
    """OR-ADD bottleneck. Shapes: ``[T, B, in_planes, H, W] -> [T, B, 4*planes, H/stride, W/stride]``."""

    expansion = 4
    n_units = 3

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone current before the last neuron."""
        out = self.sn1(self.bn1(self.conv1(x)))
        out = self.sn2(self.bn2(self.conv2(out)))
        return self.bn3(self.conv3(out))

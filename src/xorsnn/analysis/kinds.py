"""What a synaptic layer's input is made of: binary spikes, graded integers, or real values.

The SOP rule ``SOP = rate x T x A`` prices every non-zero input as one accumulate. That is only
true for **binary** spikes. Two other kinds occur in the networks xorsnn builds:

==========  ==============================================  ==========================================
kind        values                                          where it occurs
==========  ==============================================  ==========================================
``binary``  {0, 1}                                          spiking neuron outputs, OR/XOR/IAND merges
``graded``  integers beyond {0, 1} (e.g. {0, 1, 2, ...})    SEW-ADD sums, Spikformer's residual stream,
                                                            multi-bit / count-valued inputs
``real``    any non-integer value                           image pixels (first layer), MS-ResNet's
                                                            membrane stream, ReverB real-valued spikes,
                                                            average-pooled features
==========  ==============================================  ==========================================

A graded or real input multiplies its weight: it is not a single-bit event, so xorsnn flags it and
prices it separately (see :mod:`xorsnn.analysis.energy`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .._checks import check_choice

__all__ = ["KINDS", "ValueCounts", "worst_kind"]

KINDS = ("binary", "graded", "real")
"""Input kinds, from cheapest to most expensive."""


def worst_kind(*kinds: str) -> str:
    """The most expensive of ``kinds`` (``"binary" < "graded" < "real"``)."""
    for kind in kinds:
        check_choice("kind", kind, KINDS)
    return max(kinds, key=KINDS.index) if kinds else "binary"


@dataclass
class ValueCounts:
    """Running counts over the entries of the tensors seen so far (any shape).

    Attributes:
        entries: number of entries.
        nonzero: entries ``!= 0`` (the events).
        nonbinary: entries not in ``{0, 1}``.
        noninteger: entries that are not integers.
        max_abs: largest ``|value|`` seen.
    """

    entries: int = 0
    nonzero: int = 0
    nonbinary: int = 0
    noninteger: int = 0
    max_abs: float = 0.0

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        """Add the entries of ``x`` (any shape, floating or integer dtype)."""
        x = x.detach()
        self.entries += x.numel()
        if x.numel() == 0:
            return
        nz = x != 0
        self.nonzero += int(nz.sum())
        self.nonbinary += int((nz & (x != 1)).sum())
        if x.is_floating_point():
            self.noninteger += int((x != torch.round(x)).sum())
        self.max_abs = max(self.max_abs, float(x.abs().max()))

    @property
    def rate(self) -> float:
        """Fraction of non-zero entries (the firing rate of a spike tensor)."""
        return self.nonzero / self.entries if self.entries else 0.0

    @property
    def nonbinary_fraction(self) -> float:
        """Fraction of the **non-zero** entries that are not unit spikes (0 for binary tensors)."""
        return self.nonbinary / self.nonzero if self.nonzero else 0.0

    @property
    def kind(self) -> str:
        """``"binary"``, ``"graded"`` (integers beyond {0,1}) or ``"real"``."""
        if self.noninteger:
            return "real"
        if self.nonbinary:
            return "graded"
        return "binary"

"""The ``a`` of a-XNOR attention: fixed or learnable, global, per layer or per head.

A learnable ``a`` is kept inside the open interval ``(0, 1)`` by construction::

    a = lo + (hi - lo) * sigmoid(rho),      lo = bound, hi = 1 - bound   (bound = 1e-4)

so no optimiser step, however large, can push it to 0 or 1 (a plain ``sigmoid(rho)`` rounds to
exactly 1.0 in fp32 once ``rho`` exceeds ~17). A fixed ``a`` is a buffer and may be any value in
``[0, 1]`` (``a = 0`` is the dot product, ``a = 1`` the plain XNOR count used as an ablation).

Granularity (``a_granularity``) is decided by the model, which builds the coefficients with
:func:`make_coefficients`:

* ``"global"`` -- one coefficient module shared by every attention layer;
* ``"layer"``  -- one scalar per attention layer;
* ``"head"``   -- one value per head of every attention layer (the reconstruction's default).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..._checks import check_choice
from ..resnet import check_positive_ints

__all__ = [
    "SIMILARITIES",
    "GRANULARITIES",
    "NORMALIZATIONS",
    "AXNOR_DEFAULTS",
    "AXNORCoefficient",
    "make_coefficients",
]

SIMILARITIES = ("dot", "axnor")
GRANULARITIES = ("global", "layer", "head")
NORMALIZATIONS = ("none", "match_dot", "center")
AXNOR_DEFAULTS = {"a": 0.25, "a_learnable": True, "a_granularity": "head"}
"""Defaults used when ``similarity="axnor"`` and the ``a`` options are not given (reconstruction)."""


class AXNORCoefficient(nn.Module):
    """Holds ``a`` for one or more heads.

    Args:
        init: initial (learnable) or fixed value of ``a``.
        learnable: learn ``a`` through ``a = lo + (hi - lo) sigmoid(rho)``; ``init`` must then lie in
            ``[bound, 1 - bound]``. A fixed ``a`` may be anywhere in ``[0, 1]``.
        num_values: 1 (a scalar shared by all heads) or the number of heads.
        bound: distance kept from 0 and 1 by a learnable ``a``.

    ``forward()`` returns ``a`` as a 1-D tensor ``[num_values]`` (per head when ``num_values > 1``).
    """

    def __init__(self, init: float = 0.25, *, learnable: bool = True, num_values: int = 1, bound: float = 1e-4):
        super().__init__()
        if isinstance(init, bool) or not isinstance(init, (int, float)) or not math.isfinite(init):
            raise ValueError(f"a must be a finite number, got {init!r}")
        check_positive_ints(num_values=num_values)
        if not 0 < bound < 0.5:
            raise ValueError(f"bound must be in (0, 0.5), got {bound!r}")
        init = float(init)
        self.learnable = bool(learnable)
        self.bound = float(bound)
        self.num_values = num_values
        if self.learnable:
            if not bound <= init <= 1 - bound:
                raise ValueError(
                    f"a learnable a is kept in the open interval (0, 1): its initial value a must be in "
                    f"[{bound:g}, {1 - bound:g}], got {init!r} (use a_learnable=False for a fixed a = 0 or 1)"
                )
            p = (init - bound) / (1 - 2 * bound)
            p = min(max(p, 1e-12), 1 - 1e-12)
            self.rho = nn.Parameter(torch.full((num_values,), math.log(p / (1 - p))))
        else:
            if not 0 <= init <= 1:
                raise ValueError(f"a fixed a must be in [0, 1], got {init!r}")
            self.register_buffer("a_fixed", torch.full((num_values,), init))

    def forward(self) -> torch.Tensor:
        """``a`` as ``[num_values]``, strictly inside ``(0, 1)`` when learnable."""
        if self.learnable:
            return self.bound + (1 - 2 * self.bound) * torch.sigmoid(self.rho)
        return self.a_fixed

    def extra_repr(self) -> str:
        with torch.no_grad():
            values = ", ".join(f"{v:.4g}" for v in self().tolist())
        return f"learnable={self.learnable}, a=[{values}]"


def make_coefficients(
    num_layers: int, num_heads: int, *, a: float, learnable: bool, granularity: str
) -> tuple[AXNORCoefficient | None, list[AXNORCoefficient]]:
    """One coefficient module per attention layer (the same object for every layer if ``"global"``).

    Returns:
        ``(shared, per_layer)``: ``shared`` is the global module (``None`` otherwise) and
        ``per_layer[i]`` the module of layer ``i``.
    """
    check_choice("a_granularity", granularity, GRANULARITIES)
    if granularity == "global":
        shared = AXNORCoefficient(a, learnable=learnable, num_values=1)
        return shared, [shared] * num_layers
    n = num_heads if granularity == "head" else 1
    return None, [AXNORCoefficient(a, learnable=learnable, num_values=n) for _ in range(num_layers)]

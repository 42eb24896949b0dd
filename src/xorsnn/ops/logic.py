"""Differentiable logic operations on spike tensors.

On binary inputs ``a, b ∈ {0, 1}`` every function here returns exactly the Boolean result; the
polynomial forms are smooth, so they also define a gradient (and a value for non-binary inputs,
which is why OR-merged networks need binary operands -- see ``docs/xoresnet.md``).

Both operands must have the same shape (no silent broadcasting) and a floating dtype.

====  ====  =====  =====  =====  ======  ===========
 a     b    AND    OR     XOR    XNOR    IAND(a, b)
====  ====  =====  =====  =====  ======  ===========
 0     0     0      0      0      1       0
 0     1     0      1      1      0       1
 1     0     0      1      1      0       0
 1     1     1      1      0      1       0
====  ====  =====  =====  =====  ======  ===========

``IAND(a, b) = (NOT a) AND b`` -- SEW-ResNet's IAND merge is ``spike_iand(A, S)`` with ``A`` the
backbone spikes and ``S`` the identity, i.e. ``S * (1 - A)``.
"""

from __future__ import annotations

from typing import Literal

import torch

__all__ = [
    "OR_FORMS",
    "XOR_FORMS",
    "spike_and",
    "spike_or",
    "spike_xor",
    "spike_xnor",
    "spike_iand",
    "spike_not",
]

OR_FORMS = ("poly", "max", "clamp")
XOR_FORMS = ("poly", "abs")

OrForm = Literal["poly", "max", "clamp"]
XorForm = Literal["poly", "abs"]


def _check_pair(fn: str, a: torch.Tensor, b: torch.Tensor) -> None:
    for name, t in (("a", a), ("b", b)):
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{fn}: {name} must be a torch.Tensor, got {type(t).__name__}")
        if not t.is_floating_point():
            raise ValueError(f"{fn}: {name} must be a floating-point spike tensor, got dtype {t.dtype}")
    if a.shape != b.shape:
        raise ValueError(
            f"{fn}: a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )


def spike_not(a: torch.Tensor) -> torch.Tensor:
    """NOT: ``1 - a``.

    ==  ======
    a   NOT a
    ==  ======
    0   1
    1   0
    ==  ======
    """
    if not isinstance(a, torch.Tensor) or not a.is_floating_point():
        raise ValueError("spike_not: a must be a floating-point torch.Tensor")
    return 1 - a


def spike_and(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """AND: ``a * b``.

    ==  ==  =======
    a   b   a AND b
    ==  ==  =======
    0   0   0
    0   1   0
    1   0   0
    1   1   1
    ==  ==  =======

    Gradient: ``∂/∂a = b``, ``∂/∂b = a``.
    """
    _check_pair("spike_and", a, b)
    return a * b


def spike_or(a: torch.Tensor, b: torch.Tensor, form: OrForm = "poly") -> torch.Tensor:
    """OR of two spike tensors.

    ==  ==  ======
    a   b   a OR b
    ==  ==  ======
    0   0   0
    0   1   1
    1   0   1
    1   1   1
    ==  ==  ======

    Forms (identical on {0,1}, different gradients and different values off {0,1}):

    * ``"poly"``  -- ``a + b - a*b``; ``∂/∂a = 1 - b`` (default; the ORRC precedent).
    * ``"max"``   -- ``max(a, b)``; gradient to the larger operand, split on ties.
    * ``"clamp"`` -- ``clamp(a + b, 0, 1)``; ``∂/∂a = 1`` except where ``a + b > 1``.
    """
    _check_pair("spike_or", a, b)
    if form == "poly":
        return a + b - a * b
    if form == "max":
        return torch.maximum(a, b)
    if form == "clamp":
        return (a + b).clamp(0, 1)
    raise ValueError(f"spike_or: form must be one of {OR_FORMS}, got {form!r}")


def spike_xor(a: torch.Tensor, b: torch.Tensor, form: XorForm = "poly") -> torch.Tensor:
    """Exclusive OR of two spike tensors.

    ==  ==  =======
    a   b   a XOR b
    ==  ==  =======
    0   0   0
    0   1   1
    1   0   1
    1   1   0
    ==  ==  =======

    Forms (identical on {0,1}):

    * ``"poly"`` -- ``a + b - 2*a*b``; ``∂/∂a = 1 - 2b`` (default).
    * ``"abs"``  -- ``|a - b|``; ``∂/∂a = sign(a - b)`` (0 where ``a == b``).
    """
    _check_pair("spike_xor", a, b)
    if form == "poly":
        return a + b - 2 * a * b
    if form == "abs":
        return (a - b).abs()
    raise ValueError(f"spike_xor: form must be one of {XOR_FORMS}, got {form!r}")


def spike_xnor(a: torch.Tensor, b: torch.Tensor, form: XorForm = "poly") -> torch.Tensor:
    """Exclusive NOR (equality): ``1 - XOR(a, b)``.

    ==  ==  ========
    a   b   a XNOR b
    ==  ==  ========
    0   0   1
    0   1   0
    1   0   0
    1   1   1
    ==  ==  ========
    """
    return 1 - spike_xor(a, b, form)


def spike_iand(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Inverted AND: ``(NOT a) AND b = (1 - a) * b``.

    ==  ==  =============
    a   b   (NOT a) AND b
    ==  ==  =============
    0   0   0
    0   1   1
    1   0   0
    1   1   0
    ==  ==  =============

    SEW-ResNet's IAND merge is ``spike_iand(backbone, identity)``: the identity passes where the
    backbone is silent. (SpikingJelly's bottleneck swaps the operands; xorsnn does not.)
    """
    _check_pair("spike_iand", a, b)
    return (1 - a) * b

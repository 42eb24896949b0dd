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

import functools
from types import ModuleType
from typing import Any, Literal

import numpy as np
import torch
from torch.autograd.function import once_differentiable

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


#: the fused CPU kernel runs OR / XOR ("poly" forms) from this many elements on (below, torch's ops)
FUSED_LOGIC_MIN_NUMEL = 1024


@functools.cache
def _kernels() -> ModuleType | None:
    """The numba logic kernels (:mod:`xorsnn.ops._cpu_logic`), or ``None`` without numba."""
    try:
        from . import _cpu_logic
    except ImportError:
        return None
    return _cpu_logic


def _fusable(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether ``OR`` / ``XOR`` of ``a`` and ``b`` runs on the fused CPU kernel: CPU, one fp32/fp64 dtype,
    contiguous, at least :data:`FUSED_LOGIC_MIN_NUMEL` elements, numba importable, not under ``torch.compile``."""
    return (
        not torch.compiler.is_compiling()
        and a.device.type == "cpu"
        and b.device.type == "cpu"
        and a.dtype == b.dtype
        and a.dtype in (torch.float32, torch.float64)
        and a.numel() >= FUSED_LOGIC_MIN_NUMEL
        and a.is_contiguous()
        and b.is_contiguous()
        and _kernels() is not None
    )


class _FusedPoly(torch.autograd.Function):
    """``OR`` (``a + b - a*b``) or ``XOR`` (``a + b - 2*a*b``) as one numba call forward and one backward,
    bitwise equal to the torch expressions and their autograd gradients (see :mod:`xorsnn.ops._cpu_logic`)."""

    @staticmethod
    def forward(ctx: Any, a: torch.Tensor, b: torch.Tensor, name: str):  # type: ignore[override]
        kern = _kernels()
        assert kern is not None
        op = kern.OR if name == "or" else kern.XOR
        out = torch.from_numpy(np.empty(a.shape, dtype=np.float32 if a.dtype == torch.float32 else np.float64))
        kern.forward(a.detach().view(-1).numpy(), b.detach().view(-1).numpy(), out.view(-1).numpy(), op,
                     torch.get_num_threads())
        ctx.save_for_backward(a, b)
        ctx.op = op
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, g: torch.Tensor):  # type: ignore[override]
        kern = _kernels()
        assert kern is not None
        a, b = ctx.saved_tensors
        g = g.contiguous()
        ga, gb = torch.empty_like(a), torch.empty_like(b)  # both in one pass (training wants both)
        kern.backward(a.view(-1).numpy(), b.view(-1).numpy(), g.view(-1).numpy(), ga.view(-1).numpy(),
                      gb.view(-1).numpy(), ctx.op, torch.get_num_threads())
        return (ga if ctx.needs_input_grad[0] else None), (gb if ctx.needs_input_grad[1] else None), None


def _or_poly(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    if _fusable(a, b):
        return _FusedPoly.apply(a, b, "or")
    return a + b - a * b


def _xor_poly(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    if _fusable(a, b):
        return _FusedPoly.apply(a, b, "xor")
    return a + b - 2 * a * b


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
        return _or_poly(a, b)
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
        return _xor_poly(a, b)
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

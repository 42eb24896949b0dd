"""Finite-state guards: cheap checks that parameters, BN buffers and input batches hold no NaN/inf.

One fused reduction per check (``torch.stack`` of per-tensor ``isfinite().all()`` flags, one device
sync); the offending tensor is only looked up by name when the check fails.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

__all__ = ["NonFiniteStateError", "named_state", "first_non_finite", "non_finite_flag"]


class NonFiniteStateError(FloatingPointError):
    """A parameter, buffer or input batch holds NaN or inf; the message names it."""


def named_state(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """The floating-point parameters and buffers of ``model`` (BN running statistics included)."""
    return [(n, t) for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_floating_point()]


def non_finite_flag(tensors: Iterable[torch.Tensor]) -> torch.Tensor | None:
    """A 0-d bool tensor, True when any of ``tensors`` has a non-finite entry (no host sync); None if empty."""
    flags = [torch.isfinite(t.detach()).all() for t in tensors if t.numel()]
    if not flags:
        return None
    if len({f.device for f in flags}) > 1:
        flags = [f.cpu() for f in flags]
    return ~torch.stack(flags).all()


def first_non_finite(named: Iterable[tuple[str, torch.Tensor]]) -> str | None:
    """Name of the first tensor of ``named`` with a NaN/inf entry, or None when all are finite."""
    named = list(named)
    flag = non_finite_flag(t for _, t in named)
    if flag is None or not bool(flag):
        return None
    for name, t in named:
        if t.numel() and not bool(torch.isfinite(t.detach()).all()):
            return name
    return None  # pragma: no cover - the fused flag and the per-tensor scan agree

"""Per-block gradient statistics: gradient norm vs depth and a "redundant learning" proxy.

Call after ``loss.backward()`` (or use :func:`accumulate_gradients`). For every residual block
(:func:`~xorsnn.analysis.redundancy.find_blocks`, or the blocks you pass):

* ``grad_norm``: L2 norm of the gradients of the block's **weight matrices/kernels** (parameters
  with ``ndim >= 2``: conv and linear weights; BN scales and biases are left out);
* ``cos_prev``: cosine similarity between this block's and the previous block's weight gradients,
  a proxy for "redundant learning" (consecutive blocks pushed in the same direction). Blocks of
  different shapes are compared on the **parameters they share by name and shape** (e.g. ``conv2``
  of a downsampling basic block and of the next block); the compared names are listed in
  ``compared``. With no shared parameter ``cos_prev`` is ``None`` and ``note`` says why.

:func:`grad_norm_ratio` gives the first/last block gradient-norm ratio used by depth studies.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from .redundancy import find_blocks

__all__ = ["BlockGradStats", "block_gradient_stats", "grad_norm_ratio", "accumulate_gradients", "mean_output_ce"]


@dataclass
class BlockGradStats:
    """Gradient statistics of one block (see the module docstring)."""

    name: str
    index: int
    grad_norm: float
    n_params: int
    cos_prev: float | None = None
    compared: list[str] = field(default_factory=list)
    note: str = ""

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _weight_grads(block: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach() for n, p in block.named_parameters() if p.dim() >= 2 and p.grad is not None}


def block_gradient_stats(
    model: nn.Module, blocks: Sequence[tuple[str, nn.Module]] | None = None
) -> list[BlockGradStats]:
    """Gradient norm and consecutive-block cosine of every block (reads ``.grad``; call after backward)."""
    blocks = find_blocks(model) if blocks is None else list(blocks)
    out: list[BlockGradStats] = []
    prev: dict[str, torch.Tensor] | None = None
    for i, (name, block) in enumerate(blocks):
        grads = _weight_grads(block)
        norm = math.sqrt(sum(float(g.double().pow(2).sum()) for g in grads.values()))
        stats = BlockGradStats(name, i, norm, sum(g.numel() for g in grads.values()))
        if not grads:
            stats.note = "no weight gradient (run backward first, or the block is frozen)"
        elif prev is not None:
            shared = [n for n in grads if n in prev and prev[n].shape == grads[n].shape]
            if shared:
                a = torch.cat([prev[n].double().flatten() for n in shared])
                b = torch.cat([grads[n].double().flatten() for n in shared])
                denom = float(a.norm() * b.norm())
                stats.cos_prev = float(a @ b) / denom if denom > 0 else None
                stats.compared = shared
                if len(shared) < len(grads):
                    stats.note = f"shapes differ from the previous block; compared {', '.join(shared)} only"
                if denom == 0:
                    stats.note = "a compared gradient is zero; cosine undefined"
            else:
                stats.note = "no parameter shared by name and shape with the previous block; cosine skipped"
        out.append(stats)
        prev = grads
    return out


def grad_norm_ratio(stats: Sequence[BlockGradStats]) -> float:
    """``grad_norm(first block) / grad_norm(last block)`` (``nan`` if undefined)."""
    if len(stats) < 2 or stats[-1].grad_norm == 0:
        return float("nan")
    return stats[0].grad_norm / stats[-1].grad_norm


def mean_output_ce(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the time-averaged logits: ``output [T, B, K]``, ``target [B]``."""
    return nn.functional.cross_entropy(output.mean(0), target)


def accumulate_gradients(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = mean_output_ce,
    train_mode: bool = True,
    device: torch.device | str | None = None,
) -> list[BlockGradStats]:
    """Block gradient statistics of the loss summed over ``batches``, leaving the model unchanged.

    The model's existing ``.grad`` values, BN running statistics (all buffers) and train/eval
    mode are restored afterwards. ``train_mode=True`` uses batch statistics in BN, as in training.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    saved_grads = [None if p.grad is None else p.grad.clone() for p in params]
    saved_buffers = {n: b.clone() for n, b in model.named_buffers()}
    was_training = model.training
    try:
        for p in params:
            p.grad = None
        model.train(train_mode)
        n = 0
        for x, y in batches:
            if device is not None:
                x, y = x.to(device), y.to(device)
            loss: Any = loss_fn(model(x), y)
            loss.backward()
            n += 1
        if n == 0:
            raise ValueError("accumulate_gradients: batches is empty; give at least one (x, y) batch")
        return block_gradient_stats(model)
    finally:
        for p, g in zip(params, saved_grads, strict=True):
            p.grad = g
        with torch.no_grad():
            for name, b in model.named_buffers():
                if name in saved_buffers:
                    b.copy_(saved_buffers[name])
        model.train(was_training)

"""Synchronised batch norm for time-first networks (``--sync-bn`` for multi-GPU runs).

``torch.nn.SyncBatchNorm.convert_sync_batchnorm`` replaces every batch norm by a plain
``SyncBatchNorm``, which normalises channel dimension 1. On xorsnn's ``[T, B, C, ...]`` tensors that
is the batch dimension, so the converted network would compute something else.
:func:`convert_sync_batchnorm` keeps the time fold: a :class:`~xorsnn.layers.TimeBatchNorm2d` /
``TimeBatchNorm1d`` becomes a :class:`TimeSyncBatchNorm` (statistics over ``T``, ``B`` and the spatial
dimensions of every process), a plain ``nn.BatchNorm*d`` a ``SyncBatchNorm``, and any other batch-norm
subclass (whose forward reshapes its input) is refused by name. Without an initialised process group
(one process) a synchronised BN computes exactly what the BN it replaced did.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .time import TimeBatchNorm1d, TimeBatchNorm2d, fold_time

__all__ = ["TimeSyncBatchNorm", "convert_sync_batchnorm"]

_PLAIN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


class TimeSyncBatchNorm(nn.SyncBatchNorm):
    """``nn.SyncBatchNorm`` on ``[T, B, C, ...]``: time folded into the batch before synchronising.

    ``time_rank``: the rank of a time-first input (5 for ``[T, B, C, H, W]``, 3 for ``[T, B, F]``); inputs
    of another rank (a stem run once on ``[B, C, H, W]``) are normalised as they are.
    """

    def __init__(self, num_features: int, *, time_rank: int, **kwargs: Any) -> None:
        super().__init__(num_features, **kwargs)
        self.time_rank = int(time_rank)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fold_time(super().forward, x) if x.dim() == self.time_rank else super().forward(x)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, time_rank={self.time_rank}"


def _synced(bn: nn.modules.batchnorm._BatchNorm, name: str, process_group: Any) -> nn.Module:
    kwargs = {"eps": bn.eps, "momentum": bn.momentum, "affine": bn.affine,
              "track_running_stats": bn.track_running_stats, "process_group": process_group}
    if type(bn) in (TimeBatchNorm2d, TimeBatchNorm1d):
        new: nn.Module = TimeSyncBatchNorm(bn.num_features, time_rank=5 if type(bn) is TimeBatchNorm2d else 3,
                                           **kwargs)
    elif type(bn) in _PLAIN:
        new = nn.SyncBatchNorm(bn.num_features, **kwargs)
    else:
        raise ValueError(f"{name}: {type(bn).__name__} reshapes its input before normalising; convert_sync_batchnorm "
                         "knows TimeBatchNorm2d/1d and plain BatchNorm1d/2d/3d only (run without --sync-bn)")
    new.load_state_dict(bn.state_dict())
    new.train(bn.training)
    return new.to(device=bn.weight.device if bn.weight is not None else None)


def convert_sync_batchnorm(model: nn.Module, process_group: Any = None) -> nn.Module:
    """Replace every batch norm of ``model`` (in place) by its synchronised, time-aware form; returns ``model``.

    Parameters, running statistics and ``num_batches_tracked`` are copied; a model without batch norm
    is returned unchanged.
    """
    if isinstance(model, nn.modules.batchnorm._BatchNorm):
        raise ValueError("convert_sync_batchnorm: pass the network, not a batch-norm layer")
    swaps = [(parent, name, _synced(child, f"{parent_name}.{name}" if parent_name else name, process_group))
             for parent_name, parent in list(model.named_modules()) for name, child in parent.named_children()
             if isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(child, nn.SyncBatchNorm)]
    for parent, name, new in swaps:  # all built first: a refused layer leaves the model untouched
        setattr(parent, name, new)
    return model

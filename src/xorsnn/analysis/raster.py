"""Spike rasters: the activity of one layer over time for one sample.

A raster is a ``[T, N]`` tensor (time steps x neurons, the neuron axis flattened from the layer's
per-sample shape) taken from a module's output (``where="output"``, e.g. a neuron layer) or
input (``where="input"``, e.g. what a conv receives). For a conv layer ``[T, B, C, H, W]`` one
``channel`` can be chosen (its ``H x W`` neurons; ``"auto"``: the channel that spiked most for the
sample), so the raster shows a feature map rather than the first neurons of a flattened tensor.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .hooks import HookedMonitor

__all__ = ["RasterRecorder", "capture_raster"]


class RasterRecorder(HookedMonitor):
    """Context manager that keeps the first ``[T, N]`` raster of ``layer`` seen during forwards.

    Args:
        model: the network.
        layer: module name (as in ``model.named_modules()``).
        sample: index in the batch (dim 1 of a ``[T, B, ...]`` tensor).
        where: ``"output"`` or ``"input"`` of the module.
        max_neurons: keep only the first ``max_neurons`` neurons (``None``: all).
        channel: ``None`` (all channels, flattened), a channel index, or ``"auto"`` (the most
            active channel of the sample); only for tensors with a channel axis ``[T, B, C, ...]``.

    After a forward, ``raster`` is ``[T, N]`` and ``info`` says what it shows (layer, sample,
    channel, channels, per-sample shape, neurons shown / in total).
    """

    def __init__(
        self, model: nn.Module, layer: str, *, sample: int = 0, where: str = "output", max_neurons: int | None = None,
        channel: int | str | None = None,
    ) -> None:
        modules = dict(model.named_modules())
        if layer not in modules:
            close = [n for n in modules if layer in n][:5]
            hint = f"; did you mean {close}?" if close else ""
            raise ValueError(f"layer {layer!r} is not a module of the model{hint}")
        if where not in ("output", "input"):
            raise ValueError(f"where must be 'output' or 'input', got {where!r}")
        if sample < 0:
            raise ValueError(f"sample must be >= 0, got {sample!r}")
        is_index = isinstance(channel, int) and not isinstance(channel, bool) and channel >= 0
        if not (channel is None or channel == "auto" or is_index):
            raise ValueError(f"channel must be None, 'auto' or an int >= 0, got {channel!r}")
        if max_neurons is not None and max_neurons < 1:
            raise ValueError(f"max_neurons must be >= 1 or None, got {max_neurons!r}")
        self.channel = channel
        self.info: dict[str, Any] = {}
        self.module = modules[layer]
        self.layer = layer
        self.sample = sample
        self.where = where
        self.max_neurons = max_neurons
        self.raster: torch.Tensor | None = None
        self._handles: list[Any] = []

    def __enter__(self) -> RasterRecorder:
        self._handles.append(self.module.register_forward_hook(self._hook))
        return self

    def _hook(self, module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        if self.raster is not None:
            return
        t = inputs[0] if self.where == "input" else output
        if not isinstance(t, torch.Tensor) or t.dim() < 3:
            raise ValueError(
                f"raster of {self.layer!r}: expected a time-first tensor [T, B, ...], got "
                f"{tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__}"
            )
        if self.sample >= t.shape[1]:
            raise ValueError(f"sample={self.sample} but the batch has {t.shape[1]} samples")
        per_sample = t.detach()[:, self.sample]  # [T, C, ...] or [T, F]
        channel = self._pick_channel(per_sample)
        r = (per_sample if channel is None else per_sample[:, channel]).flatten(1)
        total = r.shape[1]
        if self.max_neurons is not None:
            r = r[:, : self.max_neurons]
        self.raster = r.cpu().clone()
        self.info = {"layer": self.layer, "where": self.where, "sample": self.sample, "channel": channel,
                     "channels": int(per_sample.shape[1]) if per_sample.dim() >= 3 else None,
                     "shape": list(per_sample.shape[1:]), "T": int(r.shape[0]), "neurons": int(r.shape[1]),
                     "neurons_total": int(total), "rate": float((r != 0).float().mean())}

    def _pick_channel(self, per_sample: torch.Tensor) -> int | None:
        if self.channel is None:
            return None
        if per_sample.dim() < 3:
            raise ValueError(f"raster of {self.layer!r}: channel={self.channel!r} needs a [T, B, C, ...] tensor, "
                             f"got per-sample shape {tuple(per_sample.shape)}")
        if self.channel == "auto":
            return int((per_sample != 0).flatten(2).sum(dim=(0, 2)).argmax())
        n_channels = per_sample.shape[1]
        if self.channel >= n_channels:
            raise ValueError(f"channel={self.channel} but {self.layer!r} has {n_channels} channels")
        return int(self.channel)


@torch.no_grad()
def capture_raster(
    model: nn.Module,
    x: torch.Tensor,
    layer: str,
    *,
    sample: int = 0,
    where: str = "output",
    max_neurons: int | None = None,
    channel: int | str | None = None,
) -> torch.Tensor:
    """Run ``model(x)`` once and return the ``[T, N]`` raster of ``layer`` for batch index ``sample``."""
    with RasterRecorder(model, layer, sample=sample, where=where, max_neurons=max_neurons, channel=channel) as rec:
        model(x)
    if rec.raster is None:
        raise ValueError(f"layer {layer!r} did not run during the forward pass")
    return rec.raster

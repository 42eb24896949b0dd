"""Spike rasters: the activity of one layer over time for one sample.

A raster is a ``[T, N]`` tensor (time steps x neurons, the neuron axis flattened from the layer's
per-sample shape) taken from a module's output (``where="output"``, e.g. a neuron layer) or
input (``where="input"``, e.g. what a conv receives).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["RasterRecorder", "capture_raster"]


class RasterRecorder:
    """Context manager that keeps the first ``[T, N]`` raster of ``layer`` seen during forwards.

    Args:
        model: the network.
        layer: module name (as in ``model.named_modules()``).
        sample: index in the batch (dim 1 of a ``[T, B, ...]`` tensor).
        where: ``"output"`` or ``"input"`` of the module.
        max_neurons: keep only the first ``max_neurons`` neurons (``None``: all).
    """

    def __init__(
        self, model: nn.Module, layer: str, *, sample: int = 0, where: str = "output", max_neurons: int | None = None
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
        self.module = modules[layer]
        self.layer = layer
        self.sample = sample
        self.where = where
        self.max_neurons = max_neurons
        self.raster: torch.Tensor | None = None
        self._handle: Any = None

    def __enter__(self) -> RasterRecorder:
        self._handle = self.module.register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

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
        r = t.detach()[:, self.sample].flatten(1)
        if self.max_neurons is not None:
            r = r[:, : self.max_neurons]
        self.raster = r.cpu().clone()


@torch.no_grad()
def capture_raster(
    model: nn.Module,
    x: torch.Tensor,
    layer: str,
    *,
    sample: int = 0,
    where: str = "output",
    max_neurons: int | None = None,
) -> torch.Tensor:
    """Run ``model(x)`` once and return the ``[T, N]`` raster of ``layer`` for batch index ``sample``."""
    with RasterRecorder(model, layer, sample=sample, where=where, max_neurons=max_neurons) as rec:
        model(x)
    if rec.raster is None:
        raise ValueError(f"layer {layer!r} did not run during the forward pass")
    return rec.raster

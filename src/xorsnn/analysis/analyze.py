"""The function-level entry point: ``analyze(model, batches, ...) -> Report``.

It is independent of checkpoints and datasets: give it a model and a few batches (a
``DataLoader`` works). Two passes are made:

1. **firing pass** (``torch.no_grad``, eval mode by default): per-layer input rates and kinds,
   MAC counts, SOPs, neuron rates, block redundancy, an optional raster;
2. **gradient pass** (only when the batches carry labels and ``gradients`` allows it): the
   mean-output cross-entropy (or ``loss_fn``) summed over the batches, then per-block gradient
   norms and consecutive-block cosines. Gradients, BN buffers and the train/eval mode of the
   model are restored afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from itertools import islice
from typing import Any

import torch
from torch import nn

from .._checks import check_choice
from .energy import GRADED_COSTS, get_convention
from .firing import FiringMonitor
from .gradients import BlockGradStats, accumulate_gradients, mean_output_ce
from .raster import RasterRecorder
from .redundancy import RedundancyMonitor
from .report import Report

__all__ = ["analyze", "split_batch"]


def split_batch(batch: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``x`` or ``(x, y, ...)`` -> ``(x, y or None)``."""
    if isinstance(batch, torch.Tensor):
        return batch, None
    if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], torch.Tensor):
        y = batch[1] if len(batch) > 1 and isinstance(batch[1], torch.Tensor) else None
        return batch[0], y
    raise ValueError(
        f"each batch must be a tensor x or a sequence (x, y, ...) of tensors, got {type(batch).__name__}"
    )


def _describe(model: nn.Module) -> str:
    family = getattr(model, "family", None)
    depth = getattr(model, "depth", None)
    parts = [type(model).__name__]
    if family:
        parts.append(f"family={family}")
    if isinstance(depth, int):
        parts.append(f"depth={depth}")
    return " ".join(parts)


def analyze(
    model: nn.Module,
    batches: Iterable[Any],
    *,
    T: int | None = None,
    device: torch.device | str | None = None,
    max_batches: int | None = None,
    eval_mode: bool = True,
    gradients: bool | str = "auto",
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = mean_output_ce,
    grad_train_mode: bool = True,
    dense_layers: str | Sequence[str] = "auto",
    raster_layer: str | None = None,
    raster_sample: int = 0,
    raster_where: str = "output",
    raster_max_neurons: int | None = None,
    raster_channel: int | str | None = None,
    headline: str = "45nm",
    headline_graded_cost: str = "mac",
) -> Report:
    """Firing rates, op counts, energy, spike redundancy and gradient statistics of ``model``.

    Args:
        model: any network returning time-first outputs ``[T, B, ...]``.
        batches: iterable of ``x`` or ``(x, y, ...)``; ``x`` as the model takes it.
        T: time steps; sets ``model.T`` for the analysis when the model has that attribute
            (restored afterwards) and is checked against the output's first dim.
        device: move the model and batches there (the model stays there).
        max_batches: use at most this many batches.
        eval_mode: run the firing pass in eval mode (BN running statistics).
        gradients: ``"auto"`` (when labels are given), ``True`` (labels required) or ``False``.
        loss_fn: ``loss_fn(output, y)`` for the gradient pass (default: mean-output CE).
        grad_train_mode: BN in train mode during the gradient pass (buffers are restored).
        dense_layers: ``"auto"`` (first synaptic layer on non-binary input) or module names.
        raster_layer: module whose ``[T, N]`` raster of sample ``raster_sample`` is kept; ``"auto"``:
            the most active spiking-neuron layer (most spikes per sample, rate below 1), recorded in one extra
            forward pass of the first batch.
        raster_channel: ``None`` (flattened), a channel index or ``"auto"`` (the sample's most active
            channel) of a ``[T, B, C, ...]`` layer.
        raster_where: ``"output"`` or ``"input"`` of ``raster_layer``.
        raster_max_neurons: keep at most this many neurons in the raster.
        headline: convention of the headline energy (``"45nm"``/``"a"`` or ``"77fJ"``/``"b"``).
        headline_graded_cost: ``"mac"`` or ``"ac"`` -- how the headline prices graded inputs.
    """
    headline = _check_analyze_args(model, headline, headline_graded_cost, gradients, T, max_batches)
    data = _prepare_batches(model, batches, max_batches, device)
    old_T = getattr(model, "T", None)
    set_T = T is not None and isinstance(old_T, int)
    was_training = model.training
    try:
        if set_T:
            model.T = T  # type: ignore[assignment]
        model.train(not eval_mode)
        fire = FiringMonitor(model, dense_layers=dense_layers)
        red = RedundancyMonitor(model)
        rec = None
        if raster_layer and raster_layer != "auto":
            rec = RasterRecorder(model, raster_layer, sample=raster_sample, where=raster_where,
                                 max_neurons=raster_max_neurons, channel=raster_channel)
        T_out = _firing_pass(model, data, fire, red, rec, T)
        if raster_layer == "auto":
            rec = _auto_raster(model, fire.neuron_stats(), data[0][0], sample=raster_sample,
                               max_neurons=raster_max_neurons, channel=raster_channel)
        grads = _gradient_pass(model, data, gradients, loss_fn, grad_train_mode)
    finally:
        if set_T:
            model.T = old_T  # type: ignore[assignment]
        model.train(was_training)

    ops = fire.op_table()
    blocks = red.results()
    return Report(
        model=_describe(model), T=T_out, samples=fire.samples, batches=len(data), ops=ops,
        neurons=fire.neuron_stats(), blocks=blocks, gradients=grads, headline_convention=headline,
        headline_graded_cost=headline_graded_cost, notes=_notes(ops, blocks, T_out),
        raster=None if rec is None else rec.raster,
        raster_layer=None if rec is None else rec.layer,
        raster_info=None if rec is None else rec.info,
    )


def _check_analyze_args(model: Any, headline: str, graded_cost: str, gradients: Any, T: Any,
                        max_batches: Any) -> str:
    """``ValueError`` for a bad argument of :func:`analyze`; returns the headline convention's key."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be an nn.Module, got {type(model).__name__}")
    key = get_convention(headline).key
    check_choice("headline_graded_cost", graded_cost, GRADED_COSTS)
    if gradients not in ("auto", True, False):
        raise ValueError(f"gradients must be 'auto', True or False, got {gradients!r}")
    if T is not None and (not isinstance(T, int) or isinstance(T, bool) or T < 1):
        raise ValueError(f"T must be a positive int, got {T!r}")
    if max_batches is not None and max_batches < 1:
        raise ValueError(f"max_batches must be >= 1, got {max_batches!r}")
    return key


def _prepare_batches(model: nn.Module, batches: Iterable[Any], max_batches: int | None,
                     device: torch.device | str | None) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    data = [split_batch(b) for b in (batches if max_batches is None else islice(batches, max_batches))]
    if not data:
        raise ValueError("batches is empty: give at least one batch")
    if device is not None:
        model.to(device)
        data = [(x.to(device), None if y is None else y.to(device)) for x, y in data]
    return data


def _firing_pass(model: nn.Module, data: list[tuple[torch.Tensor, Any]], fire: FiringMonitor,
                 red: RedundancyMonitor, rec: RasterRecorder | None, T: int | None) -> int:
    """Run every batch under the monitors; returns the output's (checked) number of time steps."""
    steps_seen: set[int] = set()
    with torch.no_grad(), fire, red, (nullcontext() if rec is None else rec):
        for x, _ in data:
            out = model(x)
            if isinstance(out, torch.Tensor):
                steps_seen.add(int(out.shape[0]))
    if len(steps_seen) != 1:
        raise ValueError(f"the model output's time dimension varied across batches: {sorted(steps_seen)}")
    T_out = steps_seen.pop()
    if T is not None and T_out != T:
        raise ValueError(
            f"T={T} but the model output has {T_out} time steps; the model must return [T, B, ...] "
            "(set its T attribute or pass [T, B, ...] inputs)"
        )
    return T_out


def _gradient_pass(model: nn.Module, data: list[tuple[torch.Tensor, Any]], gradients: bool | str,
                   loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                   train_mode: bool) -> list[BlockGradStats] | None:
    has_labels = all(y is not None for _, y in data)
    if gradients is True and not has_labels:
        raise ValueError("gradients=True needs labelled batches (x, y)")
    if gradients is True or (gradients == "auto" and has_labels):
        return accumulate_gradients(model, list(data), loss_fn=loss_fn, train_mode=train_mode)  # type: ignore[arg-type]
    return None


def _auto_raster(model: nn.Module, neurons: Sequence[Any], x: torch.Tensor, *, sample: int,
                 max_neurons: int | None, channel: int | str | None) -> RasterRecorder | None:
    """Raster of the most active neuron layer -- the most spikes per sample and step, among layers
    that are not saturated (rate < 1) -- recorded in one more forward."""
    candidates = [n for n in neurons if 0 < n.rate < 1] or [n for n in neurons if n.rate > 0]
    if not candidates:
        return None
    layer = max(candidates, key=lambda n: n.rate * n.neurons).name
    rec = RasterRecorder(model, layer, sample=sample, max_neurons=max_neurons, channel=channel)
    with torch.no_grad(), rec:
        model(x)
    return rec


def _notes(ops: Any, blocks: Any, T: int) -> list[str]:
    notes = []
    for r in ops:
        if r.dense:
            msg = (
                f"`{r.name}`: first layer on {r.kind} input, priced as dense MACs (no rate discount); "
                f"it ran {r.steps:g} time(s) per sample"
            )
            if r.steps < T:
                msg += f" -- the code computes it once and repeats its output over the {T} steps, so it is not x T"
            notes.append(msg + ".")
    flagged = [r for r in ops if r.flagged]
    if flagged:
        names = ", ".join(f"`{r.name}` ({r.kind})" for r in flagged)
        share = sum(r.sops for r in flagged) / ops.sops if ops.sops else 0.0
        notes.append(
            f"{len(flagged)} layer(s) receive graded or real-valued input, so their non-zero inputs are not single-bit "
            f"spikes ({share:.1%} of all SOPs): {names}. The energy tables price them as MACs ('mac') and, as the "
            "SEW/Spikformer/ReverB tables did, as ACs ('ac')."
        )
    skipped = sorted({b.note for b in blocks if b.overlap is None and b.note})
    for note in skipped:
        notes.append(f"Spike overlap not defined for some blocks: {note}.")
    return notes

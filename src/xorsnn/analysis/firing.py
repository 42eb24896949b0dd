"""Firing statistics through forward hooks: input rates of synaptic layers, neuron output rates.

:class:`FiringMonitor` attaches hooks (no change to the model) while it is open::

    with FiringMonitor(model) as mon:
        for x, _ in batches:
            model(x)
    table = mon.op_table()          # per-layer A_l, steps, fr_l, kind, SOPs  (OpTable)
    neurons = mon.neuron_stats()    # per-neuron-layer output rates

What is recorded, per module name:

* every synaptic layer (conv/linear, see :data:`~xorsnn.analysis.ops.SYNAPTIC_TYPES`): its input's
  non-zero fraction, its kind (binary / graded / real, :mod:`~xorsnn.analysis.kinds`), the MACs of
  one execution and the executions per sample (so a stem that runs once and is repeated over
  ``T`` is counted once -- what the code does);
* every module with an op counter (``extra_ops`` method or :func:`register_op_counter`): its records
  (a module with a bool attribute ``capture_op_operands`` has it set to ``True`` while the monitor
  is open, so it can keep the internal tensors its counter needs; the old value is restored);
* every spiking neuron: the output rate overall and per time step, and the output kind.

The number of samples of each forward is read from the model output (time-first ``[T, B, ...]``:
``batch_dim=1``). The first synaptic layer executed is priced as dense MACs when its input is not
binary (real-valued pixels); pass ``dense_layers`` to choose the dense layers yourself.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from ..neurons import SpikingNeuron
from .hooks import HookedMonitor
from .kinds import ValueCounts, worst_kind
from .ops import CAPTURE_FLAG, SYNAPTIC_TYPES, extra_op_records, op_counter_for, synaptic_macs
from .optable import LayerOps, OpTable

__all__ = ["FiringMonitor", "NeuronStats", "count_ops"]


@dataclass
class NeuronStats:
    """Output statistics of one spiking-neuron layer.

    Attributes:
        name: module name.
        rate: fraction of non-zero outputs over all entries seen.
        kind: ``"binary"`` (spikes) or ``"real"`` (real-valued spikes, e.g. ReverB).
        rate_per_step: firing rate at each time step (dim 0 of the output).
        entries: number of output entries seen.
        neurons: neurons per sample (output entries of one step and one sample).
    """

    name: str
    rate: float
    kind: str
    rate_per_step: list[float] = field(default_factory=list)
    entries: int = 0
    neurons: int = 0

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class _LayerAcc:
    op: str
    counts: ValueCounts = field(default_factory=ValueCounts)
    macs_total: float = 0.0
    events_total: float = 0.0
    step_samples: int = 0
    kind: str = "binary"
    dense: bool = False
    synaptic: bool = True


@dataclass
class _NeuronAcc:
    counts: ValueCounts = field(default_factory=ValueCounts)
    step_nonzero: list[int] = field(default_factory=list)
    step_entries: list[int] = field(default_factory=list)
    neurons: int = 0


def _first_tensor(obj: Any) -> torch.Tensor | None:
    if isinstance(obj, torch.Tensor):
        return obj
    if isinstance(obj, dict):
        obj = list(obj.values())
    if isinstance(obj, (tuple, list)):
        for item in obj:
            t = _first_tensor(item)
            if t is not None:
                return t
    return None


class FiringMonitor(HookedMonitor):
    """Context manager recording firing statistics of ``model`` (see the module docstring).

    Args:
        model: the network.
        dense_layers: names of the layers priced as dense MACs, or ``"auto"`` (the first synaptic
            layer executed, when its input is not binary).
        synaptic_types: module types counted as synaptic layers.
        neuron_types: module types whose outputs are recorded as neuron layers.
        batch_dim: dimension of the model output holding the batch (1 for ``[T, B, K]``).
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        dense_layers: str | Iterable[str] = "auto",
        synaptic_types: tuple[type[nn.Module], ...] = SYNAPTIC_TYPES,
        neuron_types: tuple[type[nn.Module], ...] = (SpikingNeuron,),
        batch_dim: int = 1,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise ValueError(f"model must be an nn.Module, got {type(model).__name__}")
        self.model = model
        names = {n for n, _ in model.named_modules()}
        if isinstance(dense_layers, str):
            if dense_layers != "auto":
                raise ValueError(f"dense_layers must be 'auto' or a list of module names, got {dense_layers!r}")
            self.dense_layers: set[str] | None = None
        else:
            self.dense_layers = set(dense_layers)
            unknown = self.dense_layers - names
            if unknown:
                raise ValueError(f"dense_layers: no module named {sorted(unknown)} in the model")
        self.synaptic_types = synaptic_types
        self.neuron_types = neuron_types
        self.batch_dim = batch_dim
        self.samples = 0
        self.forwards = 0
        self._layers: dict[str, _LayerAcc] = {}
        self._neurons: dict[str, _NeuronAcc] = {}
        self._handles: list[Any] = []
        self._captures: list[tuple[nn.Module, bool]] = []

    # -- hooks ----------------------------------------------------------------------------
    def __enter__(self) -> FiringMonitor:
        for name, module in self.model.named_modules():
            if op_counter_for(module) is not None:
                self._handles.append(module.register_forward_hook(self._extra_hook(name)))
                if isinstance(getattr(module, CAPTURE_FLAG, None), bool):  # counter needs internal tensors
                    self._captures.append((module, getattr(module, CAPTURE_FLAG)))
                    setattr(module, CAPTURE_FLAG, True)
            elif isinstance(module, self.synaptic_types):
                self._handles.append(module.register_forward_hook(self._synaptic_hook(name)))
            if isinstance(module, self.neuron_types):
                self._handles.append(module.register_forward_hook(self._neuron_hook(name)))
        self._handles.append(self.model.register_forward_hook(self._root_hook))
        return self

    def close(self) -> None:
        """Remove the hooks and restore the capture flags (the statistics stay available)."""
        super().close()
        for module, previous in self._captures:
            setattr(module, CAPTURE_FLAG, previous)
        self._captures.clear()

    def _acc(self, key: str, op: str, synaptic: bool) -> _LayerAcc:
        if key not in self._layers:
            self._layers[key] = _LayerAcc(op=op, synaptic=synaptic)
        return self._layers[key]

    def _synaptic_hook(self, name: str):
        def hook(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
            x = inputs[0]
            y = _first_tensor(output)
            if not isinstance(x, torch.Tensor) or y is None:
                return
            a, executions = synaptic_macs(module, x, y)
            acc = self._acc(name, type(module).__name__, True)
            before = acc.counts.nonzero
            acc.counts.update(x)
            rate = (acc.counts.nonzero - before) / x.numel() if x.numel() else 0.0
            acc.macs_total += a * executions
            acc.events_total += rate * a * executions
            acc.step_samples += executions
            acc.kind = acc.counts.kind

        return hook

    def _extra_hook(self, name: str):
        def hook(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
            for rec in extra_op_records(module, inputs, output):
                acc = self._acc(f"{name}:{rec.name}", rec.name, False)
                acc.macs_total += rec.macs
                acc.events_total += rec.rate * rec.macs
                acc.step_samples += rec.step_samples
                acc.kind = worst_kind(acc.kind, rec.kind)
                acc.dense = acc.dense or rec.dense

        return hook

    def _neuron_hook(self, name: str):
        def hook(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
            y = _first_tensor(output)
            if y is None:
                return
            acc = self._neurons.setdefault(name, _NeuronAcc())
            acc.counts.update(y)
            if y.dim() >= 2:
                per_step = (y.detach() != 0).flatten(1).sum(1).tolist()
                missing = max(0, len(per_step) - len(acc.step_nonzero))
                acc.step_nonzero += [0] * missing
                acc.step_entries += [0] * missing
                per_entries = y[0].numel()
                for t, nz in enumerate(per_step):
                    acc.step_nonzero[t] += int(nz)
                    acc.step_entries[t] += per_entries
                if y.dim() >= 3:
                    acc.neurons = y[0, 0].numel()

        return hook

    def _root_hook(self, module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        y = _first_tensor(output)
        if y is None or y.dim() <= self.batch_dim:
            raise ValueError(
                f"FiringMonitor: cannot read the batch size from the model output (batch_dim={self.batch_dim}); "
                f"expected a time-first tensor [T, B, ...], got "
                f"{None if y is None else tuple(y.shape)}"
            )
        self.samples += int(y.shape[self.batch_dim])
        self.forwards += 1

    # -- results --------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget all statistics (the hooks stay attached)."""
        self.samples = 0
        self.forwards = 0
        self._layers.clear()
        self._neurons.clear()

    def _is_dense(self, name: str, acc: _LayerAcc, first_synaptic: str | None) -> bool:
        if acc.dense:
            return True
        if self.dense_layers is not None:
            return name in self.dense_layers
        return name == first_synaptic and acc.kind != "binary"

    def op_table(self) -> OpTable:
        """Per-sample counts of every synaptic layer and extra op, in execution order."""
        if self.samples == 0:
            raise ValueError("FiringMonitor: no forward pass was recorded; run the model inside the monitor")
        # self._layers is in execution order (insertion order of the first call)
        first_synaptic = next((name for name, acc in self._layers.items() if acc.synaptic), None)
        return OpTable(
            LayerOps(
                name=name,
                op=acc.op,
                macs=acc.macs_total / acc.step_samples,
                steps=acc.step_samples / self.samples,
                rate=acc.events_total / acc.macs_total if acc.macs_total else 0.0,
                kind=acc.kind,
                dense=self._is_dense(name, acc, first_synaptic),
                nonbinary_fraction=acc.counts.nonbinary_fraction if acc.synaptic else float("nan"),
                max_abs=acc.counts.max_abs if acc.synaptic else float("nan"),
            )
            for name, acc in self._layers.items()
            if acc.step_samples
        )

    def neuron_stats(self) -> list[NeuronStats]:
        """Output statistics of every neuron layer, in execution order."""
        out = []
        for name, acc in self._neurons.items():
            per_step = [nz / n if n else 0.0 for nz, n in zip(acc.step_nonzero, acc.step_entries, strict=True)]
            kind = "binary" if acc.counts.kind == "binary" else "real"
            out.append(NeuronStats(name, acc.counts.rate, kind, per_step, acc.counts.entries, acc.neurons))
        return out


@torch.no_grad()
def count_ops(
    model: nn.Module, x: torch.Tensor, *, dense_layers: str | Iterable[str] = "auto", eval_mode: bool = True
) -> OpTable:
    """Per-sample op counts of one forward of ``model`` on ``x`` (eval mode, no gradients).

    The ``A_l`` and ``steps`` columns depend only on the architecture and input shape; the rates
    are those of ``x`` (use :meth:`OpTable.with_rate` for literature-style uniform-rate estimates).
    """
    was_training = model.training
    model.train(not eval_mode)
    try:
        with FiringMonitor(model, dense_layers=dense_layers) as mon:
            model(x)
    finally:
        model.train(was_training)
    return mon.op_table()

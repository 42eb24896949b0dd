"""Counting the operations of one module call: synaptic layers and the ``extra_ops`` protocol.

Every count is an **ANN-equivalent MAC count** ``A`` (multiply-accumulates a dense network would do)
together with the non-zero fraction ``rate`` of the operand whose zeros are skipped. The SOP rule
of the SNN literature is then ``SOP = rate x A`` (summed over time steps and samples).

Synaptic layers (``nn.Conv1d/2d/3d``, ``nn.Linear`` and their subclasses, e.g. the time-distributed
layers of :mod:`xorsnn.layers` or binary-weight layers) are counted automatically:

* convolution: ``A = C_out * C_in/groups * prod(kernel) * prod(output spatial size)`` per execution;
* linear: ``A = in_features * out_features`` per execution;

where one *execution* is one sample at one time step (a ``[T, B, C, H, W]`` call has ``T*B``).

**The extra-ops protocol** -- for work that is not a synaptic layer (attention matmuls such as
Spikformer's ``Q K^T V``, SDSA's masked column sums, a-XNOR's rank-1 terms). A module reports its
own operations in either of two ways:

1. define a method ``extra_ops(self, inputs, output) -> Iterable[OpRecord | Mapping]``, called by
   the analysis after every forward of the module with the positional ``inputs`` tuple and the
   ``output``; or
2. register a counter for a class you cannot edit:
   ``register_op_counter(MyAttention, fn)`` with ``fn(module, inputs, output) -> Iterable[...]``.

A counter that needs tensors internal to the forward pass (attention's ``Q``, ``K``, ``V`` spikes)
can ask for them: give the module a bool attribute ``capture_op_operands`` (:data:`CAPTURE_FLAG`),
``False`` by default. :class:`~xorsnn.analysis.firing.FiringMonitor` sets it to ``True`` while it is
open; the module then keeps (detached) what its ``extra_ops`` needs for the next report and drops
it there, so nothing is held outside an analysis. The spiking attentions of
:mod:`xorsnn.models.transformers` work this way.

Each record describes one operation of *this call* (all samples and time steps together):

=================  ===========================================================================
field              meaning
=================  ===========================================================================
``name``           short label, e.g. ``"q@k^T"``; reported as ``"<module name>:<name>"``
``macs``           dense ANN-equivalent MACs of the whole call (all steps, samples, heads)
``rate``           non-zero fraction of the event operand (the one whose zeros cost nothing)
``step_samples``   (time step, sample) pairs the call covered -- ``T*B`` for a ``[T, B, ...]`` call
``kind``           ``"binary"``, ``"graded"`` or ``"real"``: what the event operand holds
``dense``          ``True``: priced as dense MACs, no rate discount (e.g. real x real products)
=================  ===========================================================================

:meth:`OpRecord.from_events` fills ``rate`` and ``kind`` from the event tensor itself. A module
that reports ``extra_ops`` and is *also* a conv/linear subclass is counted only through its
report. See :func:`matmul_op` and :func:`xorsnn.analysis.attention_ops.ssa_ops` for worked uses.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from .._checks import check_choice
from .kinds import KINDS, ValueCounts

__all__ = [
    "OpRecord",
    "SYNAPTIC_TYPES",
    "CAPTURE_FLAG",
    "OpCounter",
    "register_op_counter",
    "op_counter_for",
    "extra_op_records",
    "synaptic_macs",
    "synaptic_events",
    "matmul_op",
]

_CONV_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
SYNAPTIC_TYPES: tuple[type[nn.Module], ...] = (*_CONV_TYPES, nn.Linear)
"""Module types whose input rate and MACs are counted automatically."""

CAPTURE_FLAG = "capture_op_operands"
"""Bool attribute a module sets up when its op counter needs tensors kept from the forward pass."""


@dataclass(frozen=True)
class OpRecord:
    """One operation of one module call (see the module docstring for the fields)."""

    name: str
    macs: float
    rate: float
    step_samples: int
    kind: str = "binary"
    dense: bool = False

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("OpRecord: name must be a non-empty string")
        if not math.isfinite(self.macs) or self.macs < 0:
            raise ValueError(f"OpRecord {self.name!r}: macs must be a finite number >= 0, got {self.macs!r}")
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"OpRecord {self.name!r}: rate must be in [0, 1], got {self.rate!r}")
        if int(self.step_samples) < 1:
            raise ValueError(f"OpRecord {self.name!r}: step_samples must be >= 1, got {self.step_samples!r}")
        check_choice(f"OpRecord {self.name!r}: kind", self.kind, KINDS)

    @classmethod
    def from_events(
        cls, name: str, events: torch.Tensor, macs: float, step_samples: int, *, dense: bool = False
    ) -> OpRecord:
        """Record with ``rate`` and ``kind`` measured on the event operand ``events`` (any shape)."""
        counts = ValueCounts()
        counts.update(events)
        return cls(name, float(macs), counts.rate, int(step_samples), counts.kind, dense)

    @classmethod
    def coerce(cls, record: OpRecord | Mapping[str, Any]) -> OpRecord:
        """Accept an :class:`OpRecord` or a mapping with the same keys."""
        if isinstance(record, OpRecord):
            return record
        if isinstance(record, Mapping):
            try:
                return cls(**dict(record))
            except TypeError as exc:
                raise ValueError(
                    f"an extra-ops record must have keys name, macs, rate, step_samples[, kind, dense]; got "
                    f"{sorted(record)}"
                ) from exc
        raise ValueError(f"an extra-ops record must be an OpRecord or a mapping, got {type(record).__name__}")


OpCounter = Callable[[nn.Module, tuple[Any, ...], Any], Iterable[OpRecord | Mapping[str, Any]]]
"""``fn(module, inputs, output) -> records`` -- a counter for a module class (see the protocol)."""

_OP_COUNTERS: dict[type[nn.Module], OpCounter] = {}


def register_op_counter(cls: type[nn.Module], fn: OpCounter) -> None:
    """Count the operations of every ``cls`` instance (and subclass) with ``fn(module, inputs, output)``."""
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ValueError(f"cls must be an nn.Module subclass, got {cls!r}")
    if not callable(fn):
        raise ValueError("fn must be callable as fn(module, inputs, output)")
    _OP_COUNTERS[cls] = fn


def op_counter_for(module: nn.Module) -> OpCounter | None:
    """The op counter of ``module``: its own ``extra_ops`` method, else a registered counter (MRO order)."""
    method = getattr(module, "extra_ops", None)
    if callable(method):
        return lambda m, inputs, output: method(inputs, output)
    for klass in type(module).__mro__:
        if klass in _OP_COUNTERS:
            return _OP_COUNTERS[klass]
    return None


def extra_op_records(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> list[OpRecord]:
    """The validated records ``module`` reports for one call (empty if it reports none)."""
    counter = op_counter_for(module)
    if counter is None:
        return []
    return [OpRecord.coerce(r) for r in counter(module, inputs, output)]


def synaptic_macs(module: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[int, int]:
    """``(A, executions)`` of one call of a conv/linear ``module`` with input ``x`` and output ``y``.

    ``A`` is the ANN-equivalent MAC count of one execution (one sample at one time step); the
    number of executions is the product of the leading dims of ``x`` (``T*B`` for ``[T, B, C, H, W]``,
    ``B`` for a stem run once on ``[B, C, H, W]``).
    """
    if isinstance(module, nn.Linear):
        a = module.in_features * module.out_features
        per = module.in_features
    elif isinstance(module, _CONV_TYPES):
        nd = len(module.kernel_size)
        out_spatial = math.prod(y.shape[-nd:])
        a = module.out_channels * (module.in_channels // module.groups) * math.prod(module.kernel_size) * out_spatial
        per = math.prod(x.shape[-(nd + 1):])
    else:
        raise ValueError(f"synaptic_macs: unsupported module type {type(module).__name__}")
    if per == 0 or x.numel() % per:
        raise ValueError(f"synaptic_macs: input of shape {tuple(x.shape)} does not fit {type(module).__name__}")
    return int(a), x.numel() // per


def synaptic_events(module: nn.Module, x: torch.Tensor) -> float:
    """Exact synaptic events of one call of a conv/linear ``module`` on ``x`` (all leading dims).

    Every non-zero input element counts once per output it reaches: ``out_features`` for a linear; for
    a convolution, the outputs whose receptive field holds it times ``C_out/groups`` (the non-zero mask
    convolved with an all-ones kernel, so padding and strides are accounted for). For a linear layer or a
    stride-1 1x1 convolution this equals ``rate x A x executions`` (:func:`synaptic_macs`, the SOP
    estimate); for a k x k convolution the estimate assumes the non-zeros are spread evenly over
    positions that reach different numbers of outputs. ``xorsnn export``'s op report prices these events.
    """
    if isinstance(module, nn.Linear):
        return float(torch.count_nonzero(x)) * module.out_features
    if not isinstance(module, _CONV_TYPES):
        raise ValueError(f"synaptic_events: unsupported module type {type(module).__name__}")
    nd = len(module.kernel_size)
    mask = (x.detach() != 0).reshape(-1, *x.shape[-(nd + 1):]).to(torch.float32)
    ones = torch.ones(module.groups, module.in_channels // module.groups, *module.kernel_size, device=x.device)
    conv = (F.conv1d, F.conv2d, F.conv3d)[nd - 1]
    reach = conv(mask, ones, None, module.stride, module.padding, module.dilation, module.groups)
    return float(reach.double().sum()) * (module.out_channels // module.groups)


def matmul_op(
    name: str, left: torch.Tensor, right: torch.Tensor, step_samples: int, *, events: str = "left"
) -> OpRecord:
    """Record for the batched product ``left @ right``, one operand being the sparse event stream.

    ``left``: ``[..., n, k]``, ``right``: ``[..., k, m]`` (leading dims broadcastable);
    ``macs = prod(leading) * n * k * m``. ``events="left"`` measures ``rate``/``kind`` on ``left``:
    every non-zero ``left[i, j]`` adds row ``j`` of ``right`` (``m`` accumulates), so ``rate * macs``
    is the number of accumulates. ``events="right"``: every non-zero ``right[j, c]`` adds column ``j``
    of ``left`` (``n`` accumulates).
    """
    if left.dim() < 2 or right.dim() < 2 or left.shape[-1] != right.shape[-2]:
        raise ValueError(
            f"matmul_op {name!r}: expected left [..., n, k] and right [..., k, m], got "
            f"{tuple(left.shape)} and {tuple(right.shape)}"
        )
    if events not in ("left", "right"):
        raise ValueError(f"matmul_op {name!r}: events must be 'left' or 'right', got {events!r}")
    lead = torch.broadcast_shapes(left.shape[:-2], right.shape[:-2])
    macs = math.prod(lead) * left.shape[-2] * left.shape[-1] * right.shape[-1]
    operand = left if events == "left" else right
    return OpRecord.from_events(name, operand, macs, step_samples)

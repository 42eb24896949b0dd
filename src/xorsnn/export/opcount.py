"""Count the additions and multiplications an SNN performs at inference, layer by layer.

:func:`op_report` runs the model once on an input (real images give real spike rates) with
forward hooks and counts, **per sample, over all time steps**:

=======================================  ================================================================
module                                   additions / multiplications
=======================================  ================================================================
conv / linear, weights exactly ±1        one signed addition per synaptic event (non-zero input element
                                         x output it reaches); no multiplication, whatever the input
conv / linear, other weights,            one addition per synaptic event (the classic SOP count)
  binary {0,1} input
conv / linear, other weights,            one MAC (1 mult + 1 add) per synapse, dense, no rate discount
  non-binary input                       (the first layer on pixels, the classifier on pooled features)
bias of a conv / linear                  one addition per output element
FoldedNeuron                             bias ``beta``: one addition per neuron per step; output gain on
                                         real-valued spikes: one multiplication per emitted spike; on
                                         binary spikes: none (constant-amplitude events)
ChannelAffine                            scale: none on ``events``, one mult per non-zero element on
                                         ``sparse``, one per element on ``dense``; shift: one add per element
BatchNorm (not folded)                   one mult + one add per element
AvgPool (k x k)                          k*k - 1 additions + 1 multiplication per output element
adaptive average pool                    (inputs - outputs) additions + 1 multiplication per output
=======================================  ================================================================

Each row also names its input's kind -- ``binary`` / ``graded`` / ``real``, classified by
:mod:`xorsnn.analysis.kinds`, the vocabulary of ``xorsnn analyze``'s SOP and energy tables (a ±1 layer
with a ``binary`` input does one addition per event; ``graded``/``real`` inputs are the ones analyze
flags).

The synaptic counts are :mod:`xorsnn.analysis.ops`'s, the ones ``xorsnn analyze`` builds on: the dense
count is :func:`~xorsnn.analysis.ops.synaptic_macs` (``A`` x executions, the ``steps * A`` of analyze's
table) and the event count :func:`~xorsnn.analysis.ops.synaptic_events`. Analyze's SOP column is the
literature's estimate ``rate x steps x A``; the events here are exact. The two agree exactly for linear
layers and stride-1 1x1 convolutions; for a k x k convolution the estimate assumes the non-zero inputs
are spread evenly over positions that reach different numbers of outputs (borders, strides).

Not counted: neuron state updates (leak, compare, reset -- as in SOP accounting), max-pooling,
element-wise residual merges (ADD/OR/XOR), and anything outside ``nn.Module`` calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from ..analysis.kinds import ValueCounts
from ..analysis.ops import SYNAPTIC_TYPES, synaptic_events, synaptic_macs
from ..layers import effective_weight
from ..neurons import SpikingNeuron
from .inference import ChannelAffine, FoldedNeuron

__all__ = ["OpRow", "OpReport", "op_report"]


@dataclass
class OpRow:
    """Counts of one module, per sample (all time steps). ``input_kind`` is the input's kind in the
    vocabulary of :mod:`xorsnn.analysis.kinds` (``binary`` / ``graded`` / ``real``), the one the SOP /
    energy tables of ``xorsnn analyze`` use."""

    name: str
    kind: str
    additions: float
    multiplications: float
    note: str = ""
    input_kind: str = ""


@dataclass
class OpReport:
    """Per-layer operation counts of one forward pass (see the module docstring for the rules).

    Attributes:
        rows: one :class:`OpRow` per counted module, in call order.
        batch: samples in the input the counts were averaged over.
        full_precision: names of the weight layers whose weights are not exactly ±1.
    """

    rows: list[OpRow]
    batch: int
    full_precision: list[str] = field(default_factory=list)

    @property
    def additions(self) -> float:
        return sum(r.additions for r in self.rows)

    @property
    def multiplications(self) -> float:
        return sum(r.multiplications for r in self.rows)

    def by_kind(self) -> dict[str, tuple[float, float]]:
        """``{kind: (additions, multiplications)}`` summed over rows."""
        out: dict[str, tuple[float, float]] = {}
        for r in self.rows:
            a, m = out.get(r.kind, (0.0, 0.0))
            out[r.kind] = (a + r.additions, m + r.multiplications)
        return out

    def to_markdown(self) -> str:
        lines = [
            "| layer | kind | input | additions | multiplications | note |",
            "|---|---|---|---:|---:|---|",
        ]
        for r in self.rows:
            lines.append(f"| {r.name} | {r.kind} | {r.input_kind} | {r.additions:,.0f} | {r.multiplications:,.0f} "
                         f"| {r.note} |")
        lines.append(f"| **total** | | | **{self.additions:,.0f}** | **{self.multiplications:,.0f}** | "
                     f"per sample, batch of {self.batch} |")
        return "\n".join(lines)


def _input_kind(x: torch.Tensor) -> str:
    """``binary`` / ``graded`` / ``real``, classified as :mod:`xorsnn.analysis.kinds` does."""
    counts = ValueCounts()
    counts.update(x)
    return counts.kind


def _count(name: str, mod: nn.Module, x: torch.Tensor, y: torch.Tensor, full_precision: set[str]) -> OpRow | None:
    """The row of one call of ``mod``; ``full_precision`` names the weight layers that are not exactly ±1."""
    if isinstance(mod, SYNAPTIC_TYPES):
        macs, executions = synaptic_macs(mod, x, y)
        events, dense = synaptic_events(mod, x), float(macs * executions)
        bias_adds = float(y.numel()) if mod.bias is not None else 0.0
        kind = _input_kind(x)
        if name not in full_precision:
            return OpRow(name, "±1 weights", events + bias_adds, 0.0, "signed additions per synaptic event", kind)
        if kind == "binary":
            return OpRow(name, "full precision, spike input", events + bias_adds, 0.0, "SOP: one addition per event",
                         kind)
        return OpRow(name, "full precision, MAC", dense + bias_adds, dense, "dense MACs", kind)
    if isinstance(mod, FoldedNeuron):
        adds = float(x.numel()) if mod.bias is not None else 0.0
        mults = float(torch.count_nonzero(y)) if (mod.gain is not None and mod.real_valued) else 0.0
        note = "bias current" if mod.bias is not None else ""
        if mod.gain is not None:
            what = "gain per emitted spike" if mod.real_valued else "constant-amplitude events"
            note += ("; " if note else "") + what
        return OpRow(name, "neuron (folded)", adds, mults, note)
    if isinstance(mod, ChannelAffine):
        mults = 0.0
        if mod.scale is not None:
            mults = {"events": 0.0, "sparse": float(torch.count_nonzero(x)), "dense": float(x.numel())}[mod.input_kind]
        adds = float(x.numel()) if mod.shift is not None else 0.0
        return OpRow(name, f"channel gain ({mod.input_kind})", adds, mults, "")
    if isinstance(mod, nn.modules.batchnorm._BatchNorm):
        n = float(x.numel())
        return OpRow(name, "batch norm (not folded)", n, n, "eval affine")
    if isinstance(mod, nn.AvgPool2d):
        k = mod.kernel_size if isinstance(mod.kernel_size, tuple) else (mod.kernel_size, mod.kernel_size)
        n = float(y.numel())
        return OpRow(name, "average pool", n * (k[0] * k[1] - 1), n, "")
    if isinstance(mod, nn.AdaptiveAvgPool2d):
        return OpRow(name, "global average pool", float(x.numel() - y.numel()), float(y.numel()), "")
    return None


def _sample_batch(model: nn.Module, x: torch.Tensor | Sequence[int], seed: int) -> torch.Tensor:
    """``x`` itself, or a uniform random batch in ``[0, 1)`` of the shape ``x`` (model dtype and device)."""
    if isinstance(x, torch.Tensor):
        return x
    shape = tuple(int(s) for s in x)
    if len(shape) < 2:
        raise ValueError(f"op_report: x must be a tensor or a shape like (B, C, H, W), got {x!r}")
    gen = torch.Generator().manual_seed(seed)
    p = next(model.parameters())
    return torch.rand(shape, generator=gen).to(dtype=p.dtype, device=p.device)


def _full_precision_layers(model: nn.Module) -> list[str]:
    """Names of the conv / linear layers whose effective weights are not all ±1 (they cost MACs)."""
    out = []
    for name, mod in model.named_modules():
        if isinstance(mod, SYNAPTIC_TYPES):
            w = effective_weight(mod)
            if not bool(((w == 1) | (w == -1)).all()):
                out.append(name)
    return out


def op_report(model: nn.Module, x: torch.Tensor | Sequence[int], *, seed: int = 0) -> OpReport:
    """Per-layer additions and multiplications of one inference pass, per sample.

    Args:
        model: any xorsnn model (typically the output of :func:`~xorsnn.export.reparameterize`).
        x: an input batch (e.g. real images ``[B, C, H, W]``), or a shape for a uniform random batch
            in ``[0, 1)`` (event counts then reflect that input's spike rates).
        seed: seed of the random batch.

    Returns:
        An :class:`OpReport`; ``report.to_markdown()`` renders it.
    """
    x = _sample_batch(model, x, seed)
    batch = int(x.shape[1] if x.dim() in (3, 5) else x.shape[0])
    rows: list[OpRow] = []
    hooks = []

    def make_hook(name: str):
        def hook(mod: nn.Module, args: tuple, out: torch.Tensor) -> None:
            if not args or not isinstance(args[0], torch.Tensor) or not isinstance(out, torch.Tensor):
                return
            row = _count(name, mod, args[0].detach(), out.detach(), not_pm1)
            if row is not None:
                row.input_kind = row.input_kind or _input_kind(args[0].detach())
                rows.append(row)

        return hook

    full_precision = _full_precision_layers(model)
    not_pm1 = set(full_precision)  # the ±1 test is made once per layer, not once per call
    for name, mod in model.named_modules():
        if not isinstance(mod, SpikingNeuron) and mod is not model:
            hooks.append(mod.register_forward_hook(make_hook(name)))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    for r in rows:
        r.additions /= batch
        r.multiplications /= batch
    return OpReport(rows, batch, full_precision)

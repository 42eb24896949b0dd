"""Record what every spiking attention layer saw in a forward pass: rates, attention maps, KV counts.

The attention modules of :mod:`xorsnn.models.transformers` hold no recording state. While
:func:`record_attention` is open it reads each one through forward hooks -- on the Q/K/V projections
(their spikes), on the attention neuron (SSA's ``attn_sn`` / SDSA's ``kv_sn``: its input and output)
and on the module itself -- and asks the module only for what is its own computation: the SSA map
that multiplies ``V`` (:meth:`~xorsnn.models.transformers.SpikingSelfAttention.attention_map`).

>>> from xorsnn.analysis import record_attention
>>> with record_attention(model) as rec:      # doctest: +SKIP
...     model(x)
>>> rec["blocks.0.attn"].rates["q"], rec["blocks.0.attn"].scores.shape    # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..models.transformers.attention import SpikeDrivenSelfAttention, SpikingAttention, SpikingSelfAttention

__all__ = ["AttentionRecord", "record_attention"]


@dataclass
class AttentionRecord:
    """What one attention layer saw in its last forward pass (all tensors detached).

    Attributes:
        kind: ``"ssa"`` or ``"sdsa"``.
        rates: fraction of non-zero entries of ``"q"``, ``"k"``, ``"v"``, ``"attn"`` (SSA: output of
            ``SN_attn``; SDSA: the KV mask) and ``"out"`` (the module's output spikes for SSA, the
            masked ``Q ⊙ KV`` for SDSA).
        head_rates: per-head rates ``[h]`` of ``"q"``, ``"k"``, ``"v"``.
        a: the ``a`` used (``[1]`` or ``[h]``), ``None`` for the dot product.
        scores: SSA only -- the per-head attention map that multiplies ``V``, including ``scale``
            and any normalisation: ``[T, B, h, N, N]``.
        kv: SDSA only -- the input of the KV neuron, ``[T, B, h, d]``.
        kv_mask: SDSA only -- its binary output, ``[T, B, h, d]``.
    """

    kind: str
    rates: dict[str, float]
    head_rates: dict[str, torch.Tensor]
    a: torch.Tensor | None = None
    scores: torch.Tensor | None = None
    kv: torch.Tensor | None = None
    kv_mask: torch.Tensor | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _rate(x: torch.Tensor) -> float:
    return (x != 0).float().mean().item()


def _head_rate(x: torch.Tensor) -> torch.Tensor:
    """Rate per head of ``[T, B, h, N, d]`` -> ``[h]``."""
    return (x != 0).float().mean(dim=(0, 1, 3, 4))


@torch.no_grad()
def _record(module: SpikingAttention, seen: dict[str, torch.Tensor], out: torch.Tensor) -> AttentionRecord:
    """The record of one forward of ``module`` from the tensors its hooks saw."""
    q, k, v = (module.split_heads(seen[n]) for n in "qkv")
    a = module.a_value()
    a = None if a is None else a.detach().clone()
    rates = {"q": _rate(q), "k": _rate(k), "v": _rate(v), "attn": _rate(seen["neuron_out"])}
    record = AttentionRecord(module.kind, rates, {n: _head_rate(t) for n, t in zip("qkv", (q, k, v), strict=True)}, a)
    if isinstance(module, SpikingSelfAttention):
        rates["out"] = _rate(out)
        record.scores = module.attention_map(q, k)
    else:  # SDSA: the neuron's input is the KV column sum, its output the mask that gates Q
        rates["out"] = _rate(q * seen["neuron_out"])
        record.kv = seen["neuron_in"].squeeze(-2)
        record.kv_mask = seen["neuron_out"].squeeze(-2)
    return record


def _attention_neuron(module: SpikingAttention) -> nn.Module:
    if isinstance(module, SpikeDrivenSelfAttention):
        return module.kv_sn
    if isinstance(module, SpikingSelfAttention):
        return module.attn_sn
    raise ValueError(f"record_attention: no recording rule for {type(module).__name__}")


def _hooks(module: SpikingAttention, name: str, records: dict[str, AttentionRecord]) -> list[Any]:
    seen: dict[str, torch.Tensor] = {}

    def keep_output(key: str):
        return lambda _m, _i, out: seen.__setitem__(key, out.detach())

    def neuron(_m: nn.Module, inputs: tuple[Any, ...], out: torch.Tensor) -> None:
        seen.update(neuron_in=inputs[0].detach(), neuron_out=out.detach())

    def done(_m: nn.Module, _i: Any, out: torch.Tensor) -> None:
        records[name] = _record(module, seen, out)
        seen.clear()

    handles = [getattr(module, n).register_forward_hook(keep_output(n)) for n in "qkv"]
    return [*handles, _attention_neuron(module).register_forward_hook(neuron), module.register_forward_hook(done)]


@contextmanager
def record_attention(model: nn.Module) -> Iterator[dict[str, AttentionRecord]]:
    """Record every spiking attention layer of ``model`` while the context is open (example: the module docstring).

    Yields a dict ``{module name: AttentionRecord}`` that is updated after each forward pass (it
    holds the *last* pass; collect per batch for dataset statistics). The hooks are removed on exit;
    the records stay readable. The model is not modified.
    """
    records: dict[str, AttentionRecord] = {}
    handles = []
    try:
        for name, module in model.named_modules():
            if isinstance(module, SpikingAttention):
                handles += _hooks(module, name, records)
        yield records
    finally:
        for h in handles:
            h.remove()

"""Op counting of spiking attention: the product counters and the counter of xorsnn's attention modules.

Shapes: ``q``, ``k`` ``[..., N, d]`` and ``v`` ``[..., N, d_v]`` with any leading dims (typically
``[T, B, heads]``); ``step_samples`` is ``T*B`` of the call. Each function returns the list of
:class:`~xorsnn.analysis.ops.OpRecord` of the products the attention evaluates; the energy model
prices binary-event records as SOPs and flags graded/real ones.

* :func:`ssa_ops` -- Spikformer SSA ``Q K^T V`` (either evaluation order). Both products have a
  binary event operand (``Q`` for ``Q K^T`` and ``Q (K^T V)``, ``V`` for ``(Q K^T) V``, ``K`` for
  ``K^T V``), so both are SOPs scaled by that operand's rate (energy-and-losses notes, §2).
* :func:`axnor_ops` -- a-XNOR attention ``S V`` with ``S = Q K^T + a (1-Q)(1-K)^T``, counted in the
  **expanded** form ``(1+a) Q (K^T V) + a (d - |Q|)(1^T V) - a 1 (|K|^T V)``: the complement maps
  ``1-Q``, ``1-K`` are dense (rate ``1-r``), so counting ``(1-Q)((1-K)^T V)`` as SOPs would inflate
  the energy. The rank-1 combination is a handful of real-valued multiplies per output entry.
* :func:`sdsa_ops` -- Spike-driven Transformer SDSA ``Q * SN(sum_N(K * V))``: two masks and one
  column sum, each counted as one accumulate per event (an upper bound: a mask is an AND).

For :class:`~xorsnn.models.transformers.SpikingAttention` (Spikformer's SSA, SDT's SDSA, either
similarity) :func:`attention_records` is the one description of what is counted: the registered op
counter applies it to the spikes of a forward pass (``analyze`` / ``count_ops``), and
:func:`attention_table` to dense operands (the per-sample, per-step table).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ..models.transformers.attention import SpikingAttention
from .ops import OpRecord, matmul_op, register_op_counter

__all__ = ["ssa_ops", "axnor_ops", "sdsa_ops", "attention_records", "attention_table", "count_attention"]


def _check_qkv(fn: str, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    if q.dim() < 2 or q.shape != k.shape or v.shape[:-1] != q.shape[:-1]:
        raise ValueError(
            f"{fn}: expected q, k [..., N, d] of the same shape and v [..., N, d_v], got "
            f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}"
        )


def ssa_ops(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, step_samples: int, *, order: str = "kv_first"
) -> list[OpRecord]:
    """Ops of ``Q K^T V``: ``order="kv_first"`` (``K^T V`` then ``Q (.)``) or ``"qk_first"``."""
    _check_qkv("ssa_ops", q, k, v)
    kt = k.transpose(-2, -1)
    if order == "kv_first":
        return [
            matmul_op("k^T@v", kt, v, step_samples, events="left"),
            matmul_op("q@(k^T v)", q, kt @ v, step_samples, events="left"),
        ]
    if order == "qk_first":
        return [
            matmul_op("q@k^T", q, kt, step_samples, events="left"),
            matmul_op("(q k^T)@v", q @ kt, v, step_samples, events="right"),
        ]
    raise ValueError(f"ssa_ops: order must be 'kv_first' or 'qk_first', got {order!r}")


def _popcounts(q: torch.Tensor, k: torch.Tensor, step_samples: int) -> list[OpRecord]:
    """``|q|``, ``|k|``: one accumulate per spike of ``q`` / ``k``."""
    return [OpRecord.from_events("|q|", q, q.numel(), step_samples),
            OpRecord.from_events("|k|", k, k.numel(), step_samples)]


def axnor_ops(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, step_samples: int) -> list[OpRecord]:
    """Ops of a-XNOR attention ``S V`` in the expanded form (see the module docstring).

    Records: ``k^T@v`` and ``q@(k^T v)`` (binary events, as in SSA); popcounts ``|q|``, ``|k|`` and
    the column sums ``1^T v``, ``|k|^T v`` (one accumulate per spike); ``axnor:combine`` -- the
    rank-1 term and the two scalings, ``3 * N * d_v`` real multiply-adds per head and step, priced
    as dense MACs (kind ``"real"``).
    """
    _check_qkv("axnor_ops", q, k, v)
    lead = math.prod(q.shape[:-2])
    n, dv = q.shape[-2], v.shape[-1]
    ones_n = torch.ones(n, 1, dtype=q.dtype, device=q.device)
    return [
        *ssa_ops(q, k, v, step_samples, order="kv_first"),
        *_popcounts(q, k, step_samples),
        matmul_op("1^T@v", ones_n.transpose(0, 1), v, step_samples, events="right"),
        matmul_op("|k|^T@v", k.sum(-1, keepdim=True).transpose(-2, -1), v, step_samples, events="right"),
        OpRecord("axnor:combine", float(3 * lead * n * dv), 1.0, int(step_samples), "real", dense=True),
    ]


def sdsa_ops(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, step_samples: int) -> list[OpRecord]:
    """Ops of SDSA ``Q * SN(sum_N(K * V))`` (``q``, ``k``, ``v`` all ``[..., N, D]``)."""
    _check_qkv("sdsa_ops", q, k, v)
    if v.shape != q.shape:
        raise ValueError(f"sdsa_ops: v must have the shape of q {tuple(q.shape)}, got {tuple(v.shape)}")
    n_entries = q.numel()
    return [
        OpRecord.from_events("k*v", k, n_entries, step_samples),
        OpRecord.from_events("sum_N(k*v)", k * v, n_entries, step_samples),
        OpRecord.from_events("q*kv", q, n_entries, step_samples),
    ]


def _ssa_records(module: SpikingAttention, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                 step_samples: int) -> list[OpRecord]:
    """Dot product: :func:`ssa_ops` in the module's order. a-XNOR, ``kv_first``: :func:`axnor_ops`
    (expanded form); ``qk_first``: the two SSA products, the popcounts ``|q|``, ``|k|`` (one accumulate
    per spike) and the rank-1 correction of the ``N x N`` scores (2 real MACs per score)."""
    order = module.order  # type: ignore[attr-defined]
    if module.similarity == "dot":
        return ssa_ops(q, k, v, step_samples, order=order)
    if order == "kv_first":
        return axnor_ops(q, k, v, step_samples)
    lead, n = math.prod(q.shape[:-2]), q.shape[-2]
    return [
        *ssa_ops(q, k, v, step_samples, order="qk_first"),
        *_popcounts(q, k, step_samples),
        OpRecord("axnor:correction", float(2 * lead * n * n), 1.0, step_samples, "real", dense=True),
    ]


def _sdsa_records(module: SpikingAttention, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                  step_samples: int) -> list[OpRecord]:
    """:func:`sdsa_ops`; a-XNOR adds the column popcounts of ``K`` and ``V`` (one accumulate per spike)
    and the per-channel correction (3 real MACs per channel)."""
    records = sdsa_ops(q, k, v, step_samples)
    if module.similarity == "axnor":
        channels = math.prod(q.shape[:-2]) * q.shape[-1]  # T * B * h * d
        records += [
            OpRecord.from_events("axnor:sum_N(k)", k, k.numel(), step_samples),
            OpRecord.from_events("axnor:sum_N(v)", v, v.numel(), step_samples),
            OpRecord("axnor:correction", float(3 * channels), 1.0, step_samples, "real", dense=True),
        ]
    return records


def attention_records(module: SpikingAttention, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                      step_samples: int) -> list[OpRecord]:
    """The op records of ``module``'s attention products on the spikes ``q``, ``k``, ``v``
    ``[T, B, h, N, d]`` (projections are counted as layers), plus the real-valued rescaling / shift of
    ``normalize="match_dot"`` / ``"center"`` (one MAC per output entry)."""
    if module.kind == "sdsa":
        records, n_out = _sdsa_records(module, q, k, v, step_samples), math.prod(q.shape[:-2]) * q.shape[-1]
    elif module.kind == "ssa":
        records, n_out = _ssa_records(module, q, k, v, step_samples), v.numel()
    else:
        raise ValueError(f"attention_records: module.kind must be 'ssa' or 'sdsa', got {module.kind!r}")
    if module.normalize != "none":
        records.append(OpRecord(f"norm:{module.normalize}", float(n_out), 1.0, step_samples, "real", dense=True))
    return records


def count_attention(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> list[OpRecord]:
    """The op counter of :class:`SpikingAttention` (registered): :func:`attention_records` on the spikes
    the module kept from its last forward (it keeps them while ``capture_op_operands`` is set)."""
    operands = module.pop_op_operands()  # type: ignore[operator]
    if operands is None:
        raise ValueError(
            f"{type(module).__name__}: no attention operands were captured; set capture_op_operands=True "
            "before the forward pass (xorsnn.analysis.FiringMonitor does)"
        )
    x = inputs[0]
    return attention_records(module, *operands, step_samples=int(x.shape[0] * x.shape[1]))  # type: ignore[arg-type]


def attention_table(module: SpikingAttention, tokens: int | None = None) -> list[dict[str, Any]]:
    """Accumulates of ``module``'s attention products per sample and time step, at ``tokens`` = ``N``
    (default: the last forward's).

    Each entry: ``name``, ``macs`` (ANN-equivalent multiply-accumulates, all heads) and ``operands`` --
    the spike tensors (``"q"``, ``"k"``, ``"v"``) whose silence removes the accumulates (empty for the
    dense, real-valued a-XNOR terms and the normalisation). Computed with :func:`attention_records`
    on dense operands, so the table and the counts of ``analyze`` cannot disagree.
    """
    n = tokens if tokens is not None else module.last_tokens
    if n is None:
        raise ValueError("attention_table: pass tokens=N or run a forward pass first")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"attention_table: tokens must be a positive integer, got {n!r}")
    shape = (1, 1, module.num_heads, int(n), module.head_dim)
    ones, zeros = torch.ones(shape), torch.zeros(shape)
    dense = attention_records(module, ones, ones, ones, 1)
    silenced = {t: attention_records(module, *(zeros if u == t else ones for u in "qkv"), 1) for t in "qkv"}
    return [{"name": r.name, "macs": int(r.macs),
             "operands": tuple(t for t in "qkv" if not r.dense and silenced[t][i].rate == 0)}
            for i, r in enumerate(dense)]


register_op_counter(SpikingAttention, count_attention)

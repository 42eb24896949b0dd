"""Ready-made op counters for spiking attention (for use inside a module's ``extra_ops``).

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
"""

from __future__ import annotations

import math

import torch

from .ops import OpRecord, matmul_op

__all__ = ["ssa_ops", "axnor_ops", "sdsa_ops"]


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
        kv = kt @ v
        return [
            matmul_op("k^T@v", kt, v, step_samples, events="left"),
            matmul_op("q@(k^T v)", q, kv, step_samples, events="left"),
        ]
    if order == "qk_first":
        qk = q @ kt
        return [
            matmul_op("q@k^T", q, kt, step_samples, events="left"),
            matmul_op("(q k^T)@v", qk, v, step_samples, events="right"),
        ]
    raise ValueError(f"ssa_ops: order must be 'kv_first' or 'qk_first', got {order!r}")


def axnor_ops(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, step_samples: int) -> list[OpRecord]:
    """Ops of a-XNOR attention ``S V`` in the expanded form (see the module docstring).

    Records: ``k^T@v`` and ``q@(k^T v)`` (binary events, as in SSA); popcounts ``|q|``, ``|k|`` and
    the column sums ``1^T v``, ``|k|^T v`` (one accumulate per spike); ``axnor:combine`` -- the
    rank-1 term and the two scalings, ``3 * N * d_v`` real multiply-adds per head and step, priced
    as dense MACs (kind ``"real"``).
    """
    _check_qkv("axnor_ops", q, k, v)
    kt = k.transpose(-2, -1)
    lead = math.prod(q.shape[:-2])
    n, d, dv = q.shape[-2], q.shape[-1], v.shape[-1]
    ones_n = torch.ones(q.shape[-2], 1, dtype=q.dtype, device=q.device)
    return [
        matmul_op("k^T@v", kt, v, step_samples, events="left"),
        matmul_op("q@(k^T v)", q, kt @ v, step_samples, events="left"),
        OpRecord.from_events("|q|", q, lead * n * d, step_samples),
        OpRecord.from_events("|k|", k, lead * n * d, step_samples),
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

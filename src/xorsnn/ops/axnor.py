"""a-XNOR similarity between binary spike vectors, computed without pairwise ``d``-sized tensors.

The a-XNOR similarity (Xiao et al., CVPR 2025; reconstruction in ``docs/transformers.md``) scores
each feature pair of a query ``q`` and a key ``k`` as (1,1) -> 1, (0,0) -> ``a``, mismatch -> 0::

    sim_a(q, k) = Σ_i [ q_i k_i + a (1 - q_i)(1 - k_i) ]
                = (1 + a) q·k - a |q| - a |k| + a d          (|q| = Σ_i q_i, d = len(q))

``a = 0`` is the dot product of Spikformer's SSA. The right-hand side is an algebraic identity, so it
holds for real-valued ``q, k`` too (the "smooth form" used for gradient checks).

Matrix forms, per head, with ``Q [N, d]``, ``K [M, d]``, ``V [M, d_v]``:

* scores (``QKᵀ`` first)::

      S = (1 + a) Q Kᵀ - a |Q| 1ᵀ - a 1 |K|ᵀ + a d

* linear-attention ordering (``KᵀV`` first)::

      S V = (1 + a) Q (KᵀV) + a (d 1 - |Q|)(1ᵀV) - a 1 (|K|ᵀV)
          = Q [KᵀV + a (KᵀV - 1 (1ᵀV))]  +  1 · a [d (1ᵀV) - 1ᵀ(KᵀV)]

  using ``|K|ᵀV = 1ᵀ(KᵀV)``. The second line is what :func:`axnor_attention` evaluates: the one
  ``[d, d_v]`` product of the dot-product path, a rank-one correction of that ``d x d_v`` matrix and a
  row added to every output row -- ``O(d d_v + N d_v)`` extra work, no ``[N, M, d]`` tensor.

* the Spike-driven Transformer's per-channel column sum (SDSA, no ``QKᵀ``)::

      KV_c = Σ_n [ k_nc v_nc + a (1 - k_nc)(1 - v_nc) ]
           = (1 + a) Σ_n k_nc v_nc - a Σ_n k_nc - a Σ_n v_nc + a N

  (:func:`axnor_kv`; this mapping of a-XNOR onto SDSA is a reconstruction, see the docs).

``a`` is a float or a tensor. A 1-D tensor of length ``h`` is read as one value per head and
applied to dimension ``-3`` of ``q`` (``[..., h, N, d]``); any other tensor must broadcast against
``q.shape[:-2] + (1, 1)``. With ``a = 0`` every function returns the dot-product result bit for bit.
"""

from __future__ import annotations

from typing import Literal

import torch

from .._checks import check_choice

__all__ = ["ORDERS", "axnor_scores", "axnor_attention", "axnor_kv", "dot_matching_factor"]

ORDERS = ("kv_first", "qk_first")

AValue = float | torch.Tensor
Order = Literal["kv_first", "qk_first"]


def _check_tensor(fn: str, name: str, t: torch.Tensor, min_dim: int, shape: str) -> None:
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{fn}: {name} must be a torch.Tensor of shape {shape}, got {type(t).__name__}")
    if not t.is_floating_point():
        raise ValueError(f"{fn}: {name} must be a floating-point tensor, got dtype {t.dtype}")
    if t.dim() < min_dim:
        raise ValueError(f"{fn}: {name} must have shape {shape}, got {tuple(t.shape)}")


def _as_a(fn: str, a: AValue, q: torch.Tensor) -> AValue:
    """Validate ``a`` and give it a shape that broadcasts against ``[..., h, N, M]``."""
    if isinstance(a, bool) or not isinstance(a, (int, float, torch.Tensor)):
        raise ValueError(f"{fn}: a must be a float or a tensor, got {type(a).__name__}")
    if not isinstance(a, torch.Tensor):
        a = float(a)
        if not a == a or a in (float("inf"), float("-inf")):
            raise ValueError(f"{fn}: a must be finite, got {a!r}")
        return a
    if not a.is_floating_point():
        raise ValueError(f"{fn}: a must be a floating-point tensor, got dtype {a.dtype}")
    if a.dim() == 1 and a.numel() > 1:  # one value per head
        if q.dim() < 3 or q.shape[-3] != a.numel():
            raise ValueError(
                f"{fn}: a 1-D a of length {a.numel()} is read as one value per head and needs q of shape "
                f"[..., h={a.numel()}, N, d], got q {tuple(q.shape)}"
            )
        return a.view(-1, 1, 1)
    try:
        if a.dim() >= 2 and tuple(a.shape[-2:]) != (1, 1):
            raise RuntimeError("a varies along the score matrix")
        torch.broadcast_shapes(a.shape, q.shape[:-2] + (1, 1))
    except RuntimeError:
        raise ValueError(
            f"{fn}: a of shape {tuple(a.shape)} does not broadcast against q.shape[:-2] + (1, 1) = "
            f"{tuple(q.shape[:-2]) + (1, 1)}"
        ) from None
    return a


def _like(a: AValue, t: torch.Tensor) -> AValue:
    """``a`` in ``t``'s dtype: a learnable fp32 ``a`` must not promote a bf16/fp16 (autocast) product to
    fp32. The cast is differentiable, so ``a`` still gets its gradient (in fp32)."""
    return a.to(t.dtype) if isinstance(a, torch.Tensor) and a.dtype != t.dtype else a


def axnor_scores(q: torch.Tensor, k: torch.Tensor, a: AValue) -> torch.Tensor:
    """a-XNOR score matrix ``S = (1 + a) Q Kᵀ - a |Q| 1ᵀ - a 1 |K|ᵀ + a d``.

    Args:
        q: queries ``[..., N, d]`` (binary spikes, or real values for the smooth form).
        k: keys ``[..., M, d]``; leading dims broadcast with ``q``'s.
        a: score of a (0, 0) pair: float, per-head ``[h]`` tensor, or a tensor broadcastable to
            ``q.shape[:-2] + (1, 1)``.

    Returns:
        ``S`` ``[..., N, M]``; ``S[..., n, m] = Σ_i [q_ni k_mi + a (1 - q_ni)(1 - k_mi)]``.
    """
    fn = "axnor_scores"
    _check_tensor(fn, "q", q, 2, "[..., N, d]")
    _check_tensor(fn, "k", k, 2, "[..., M, d]")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"{fn}: q and k need the same feature size d, got {q.shape[-1]} and {k.shape[-1]}")
    a = _as_a(fn, a, q)
    dot = q @ k.transpose(-2, -1)
    a = _like(a, dot)
    d = q.shape[-1]
    pop_q = q.sum(-1, keepdim=True).to(dot.dtype)  # [..., N, 1]; the product's dtype (autocast)
    pop_k = k.sum(-1).unsqueeze(-2).to(dot.dtype)  # [..., 1, M]
    return (1 + a) * dot - a * (pop_q + pop_k - d)


def axnor_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    a: AValue,
    scale: float | torch.Tensor = 1.0,
    *,
    order: Order = "kv_first",
) -> torch.Tensor:
    """Un-normalised a-XNOR attention ``scale * S V`` (no softmax), in either evaluation order.

    Args:
        q: queries ``[..., N, d]``.
        k: keys ``[..., M, d]``.
        v: values ``[..., M, d_v]``.
        a: see :func:`axnor_scores`.
        scale: multiplies the result (Spikformer: 0.125); a float or a broadcastable tensor.
        order: ``"kv_first"`` forms ``KᵀV`` (``[d, d_v]``) first, cost ``O(N d d_v)``;
            ``"qk_first"`` forms ``S`` (``[N, M]``) first, cost ``O(N M (d + d_v))``.
            Both compute the same function (exactly, in integer arithmetic).

    Returns:
        ``[..., N, d_v]``.
    """
    fn = "axnor_attention"
    _check_tensor(fn, "q", q, 2, "[..., N, d]")
    _check_tensor(fn, "k", k, 2, "[..., M, d]")
    _check_tensor(fn, "v", v, 2, "[..., M, d_v]")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"{fn}: q and k need the same feature size d, got {q.shape[-1]} and {k.shape[-1]}")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"{fn}: k and v need the same number of tokens M, got {k.shape[-2]} and {v.shape[-2]}")
    check_choice(f"{fn}: order", order, ORDERS)
    if order == "qk_first":
        out = axnor_scores(q, k, a) @ v
    else:
        a = _as_a(fn, a, q)
        kv = k.transpose(-2, -1) @ v  # [..., d, d_v]
        a = _like(a, kv)
        col_v = v.sum(-2, keepdim=True).to(kv.dtype)  # [..., 1, d_v] = 1ᵀV
        m = kv + a * (kv - col_v)  # (1 + a) KᵀV - a 1 (1ᵀV)
        c = a * (q.shape[-1] * col_v - kv.sum(-2, keepdim=True))  # a [d 1ᵀV - |K|ᵀV]
        out = q @ m + c
    return out * scale


def axnor_kv(k: torch.Tensor, v: torch.Tensor, a: AValue) -> torch.Tensor:
    """SDSA column sums with a-XNOR pairing: ``Σ_n [k_nc v_nc + a (1 - k_nc)(1 - v_nc)]``.

    Args:
        k: keys ``[..., N, d]``.
        v: values ``[..., N, d]`` (same shape as ``k``).
        a: see :func:`axnor_scores` (``q`` there is ``k`` here: per head on dim ``-3``).

    Returns:
        ``[..., 1, d]`` (``keepdim`` over the token dimension), ``(1 + a) Σ kv - a Σ k - a Σ v + a N``.
    """
    fn = "axnor_kv"
    _check_tensor(fn, "k", k, 2, "[..., N, d]")
    _check_tensor(fn, "v", v, 2, "[..., N, d]")
    if k.shape != v.shape:
        raise ValueError(f"{fn}: k and v must have the same shape, got {tuple(k.shape)} and {tuple(v.shape)}")
    a = _as_a(fn, a, k)
    kv = (k * v).sum(-2, keepdim=True)
    a = _like(a, kv)
    n = k.shape[-2]
    pops = (k.sum(-2, keepdim=True) + v.sum(-2, keepdim=True)).to(kv.dtype)
    return (1 + a) * kv - a * (pops - n)


def dot_matching_factor(rate_x: torch.Tensor, rate_y: torch.Tensor, a: AValue, eps: float = 1e-6) -> torch.Tensor:
    """Factor that brings the expected a-XNOR score back to the dot product's expected score.

    For independent spikes with rates ``r_x, r_y`` the expected per-feature scores are
    ``r_x r_y`` (dot) and ``r_x r_y + a (1 - r_x)(1 - r_y)`` (a-XNOR). Multiplying the a-XNOR
    result by their ratio ``(r_x r_y + eps) / (r_x r_y + a (1 - r_x)(1 - r_y) + eps)`` keeps the
    input of the next neuron at the dot product's scale (``docs/transformers.md``, "scale").
    With ``a = 0`` the factor is exactly 1.

    Args:
        rate_x, rate_y: firing rates in ``[0, 1]`` (any broadcastable shapes; pass detached values).
        a: float or tensor broadcastable against the rates.

    Returns:
        The factor, shaped like the broadcast of the inputs.
    """
    both = rate_x * rate_y
    return (both + eps) / (both + a * (1 - rate_x) * (1 - rate_y) + eps)

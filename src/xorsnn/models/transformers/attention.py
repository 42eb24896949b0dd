"""Spiking self-attention with a switchable similarity: Spikformer's SSA and SDT's SDSA.

Both modules work on tokens ``[T, B, N, C]`` with ``h`` heads of size ``d = C / h``.

* :class:`SpikingSelfAttention` (Spikformer, Zhou et al. 2023)::

      Q, K, V = SN(BN(Linear(x)))                        (binary, [T, B, h, N, d])
      A       = SN_attn(scale * sim(Q, K) V)             (no softmax; SN_attn has V_th = 0.5)
      out     = SN(BN(Linear(A)))

* :class:`SpikeDrivenSelfAttention` (Spike-driven Transformer v1, Yao et al. 2023)::

      s       = SN(x)                                    (x is the real-valued membrane stream)
      Q, K, V = SN(BN(Linear(s)))                        (no bias)
      KV      = SN_kv(scale * Σ_tokens K ⊙ V)            (per channel; SN_kv has V_th = 0.5)
      out     = BN(Linear(Q ⊙ KV))                       (the caller adds the shortcut x)

``similarity="dot"`` is the original; ``similarity="axnor"`` replaces the coincidence count by the
a-XNOR score (:mod:`xorsnn.ops.axnor`) -- for SDSA by the per-channel analogue
``Σ_n [k v + a (1 - k)(1 - v)]`` (a reconstruction).

The (0, 0) pairs add ``≈ a n (1 - r_x)(1 - r_y)`` to every score (``n`` features: ``d`` for SSA,
``N`` tokens for SDSA; ``r`` the firing rates), which can saturate the attention neuron at the
paper's scale. ``normalize`` (the models' ``attn_norm``) chooses what to do, with ``r_x, r_y`` the
detached per-(t, b, head) rates of the two operands:

* ``"none"`` -- nothing: ``scale * S`` as in the paper's recipe (default);
* ``"match_dot"`` -- multiply by :func:`~xorsnn.ops.axnor.dot_matching_factor`, so the *expected*
  score equals the dot product's at the same rates;
* ``"center"`` -- subtract the expected (0, 0) contribution ``a n (1 - r_x)(1 - r_y)`` from every
  score: the dot product plus a zero-mean a-XNOR term. For SSA this is a per-row constant shift of
  the scores -- the transformation a softmax would ignore.

All three are the identity at ``a = 0``.

Analysis reads these modules from outside (they hold no analysis state but ``last_tokens``):

* :func:`xorsnn.analysis.record_attention` records Q/K/V/output firing rates (overall and per head),
  the attention map (SSA, :meth:`SpikingSelfAttention.attention_map`) or the KV counts and binary KV
  mask (SDSA), and ``a``, through forward hooks on the projections and the attention neuron;
* ``module.geometry()`` gives the sizes (tokens ``N``, heads, head dim, ordering, similarity);
  :func:`xorsnn.analysis.attention_table` the ANN-equivalent accumulate counts of the attention
  products, per sample and time step, with the spike tensors that gate them;
* the attention products are counted by :mod:`xorsnn.analysis.attention_ops`, the op counter
  registered for :class:`SpikingAttention` (``register_op_counter``), on the actual Q/K/V spikes,
  kept only while ``capture_op_operands`` is ``True`` (the analysis sets it during its pass);
* the neurons are ordinary named submodules (``q.sn``, ``k.sn``, ``v.sn``, ``attn_sn`` / ``kv_sn``),
  so generic forward hooks on :class:`~xorsnn.neurons.SpikingNeuron` see their spikes.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ..._checks import check_choice
from ...blocks.common import NeuronFactory
from ...ops.axnor import ORDERS, axnor_attention, axnor_kv, axnor_scores, dot_matching_factor
from ..resnet import check_positive_ints
from .similarity import NORMALIZATIONS, SIMILARITIES, AXNORCoefficient
from .tokens import TokenLinear

__all__ = ["SpikingAttention", "SpikingSelfAttention", "SpikeDrivenSelfAttention"]


class SpikingAttention(nn.Module):
    """Base of the spiking attentions: heads, similarity, ``a``, scale and geometry.

    Args:
        dim: channels ``C``; must be divisible by ``num_heads``.
        num_heads: heads ``h``.
        similarity: ``"dot"`` or ``"axnor"``.
        a_coef: the :class:`AXNORCoefficient` (required for ``"axnor"``, must be ``None`` for ``"dot"``).
        scale: multiplies the attention product before its neuron.
        normalize: ``"none"``, ``"match_dot"`` or ``"center"`` (a-XNOR only; see the module docstring).
    """

    kind = "attention"
    q: TokenLinear  # the projections to Q, K and V spikes, built by the subclasses
    k: TokenLinear
    v: TokenLinear

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        similarity: str,
        a_coef: AXNORCoefficient | None,
        scale: float,
        normalize: str,
    ) -> None:
        super().__init__()
        check_positive_ints(dim=dim, num_heads=num_heads)
        if dim % num_heads:
            raise ValueError(f"dim={dim} must be divisible by num_heads={num_heads}")
        check_choice("similarity", similarity, SIMILARITIES)
        if similarity == "axnor" and not isinstance(a_coef, AXNORCoefficient):
            raise ValueError("similarity='axnor' needs an AXNORCoefficient a_coef")
        if similarity == "dot" and a_coef is not None:
            raise ValueError("a_coef only applies to similarity='axnor'")
        if a_coef is not None and a_coef.num_values not in (1, num_heads):
            raise ValueError(f"a_coef holds {a_coef.num_values} values; expected 1 or num_heads={num_heads}")
        check_choice("attention normalisation", normalize, NORMALIZATIONS)
        if normalize != "none" and similarity != "axnor":
            raise ValueError(f"attention normalisation {normalize!r} only applies to similarity='axnor'")
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale <= 0:
            raise ValueError(f"attention scale must be a finite number > 0, got {scale!r}")
        self.dim = dim
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.similarity = similarity
        self.a_coef = a_coef
        self.scale = float(scale)
        self.normalize = normalize
        self.last_tokens: int | None = None
        self.capture_op_operands = False
        self._op_operands: tuple[torch.Tensor, ...] | None = None

    # -- helpers -----------------------------------------------------------------------------
    def a_value(self) -> torch.Tensor | None:
        """Current ``a`` (``[1]`` or ``[h]``, differentiable when learnable), ``None`` for ``"dot"``."""
        return None if self.a_coef is None else self.a_coef()

    def _check_input(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[-1] != self.dim:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"{type(self).__name__}: x must have shape [T, B, N, C={self.dim}], got {shape}")

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """``[T, B, N, C] -> [T, B, h, N, d]``."""
        return x.unflatten(-1, (self.num_heads, self.head_dim)).transpose(2, 3)

    @staticmethod
    def merge_heads(x: torch.Tensor) -> torch.Tensor:
        """``[T, B, h, N, d] -> [T, B, N, C]``."""
        return x.transpose(2, 3).flatten(-2)

    def _normalisation(
        self, x: torch.Tensor, y: torch.Tensor, a: torch.Tensor, n: int
    ) -> tuple[torch.Tensor | float, torch.Tensor | float]:
        """``(factor, offset)`` per (t, b, head), ``[T, B, h, 1, 1]``: scores become ``factor * (S - offset)``.

        ``x, y`` are the two spike operands ``[T, B, h, *, *]`` and ``n`` the number of summed features.
        """
        if self.normalize == "none":
            return 1.0, 0.0
        rx = x.detach().mean(dim=(-2, -1), keepdim=True)
        ry = y.detach().mean(dim=(-2, -1), keepdim=True)
        a = a.view(-1, 1, 1)
        if self.normalize == "match_dot":
            return dot_matching_factor(rx, ry, a), 0.0
        return 1.0, a * (n * (1 - rx) * (1 - ry))

    def geometry(self) -> dict[str, Any]:
        """Sizes and options for analysis: tokens ``N`` (of the last forward), heads, head dim, ..."""
        a = self.a_value()
        return {
            "kind": self.kind,
            "dim": self.dim,
            "heads": self.num_heads,
            "head_dim": self.head_dim,
            "tokens": self.last_tokens,
            "order": getattr(self, "order", None),
            "similarity": self.similarity,
            "scale": self.scale,
            "normalize": self.normalize,
            "a": None if a is None else a.detach().tolist(),
        }

    def _qkv(self, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The Q, K, V spikes ``[T, B, h, N, d]`` of the tokens ``s``; kept for the op counter while counting."""
        q, k, v = (self.split_heads(proj(s)) for proj in (self.q, self.k, self.v))
        if self.capture_op_operands:
            self._op_operands = (q.detach(), k.detach(), v.detach())
        return q, k, v

    # -- op counting (the extra-ops protocol of xorsnn.analysis) ------------------------------
    def pop_op_operands(self) -> tuple[torch.Tensor, ...] | None:
        """The ``(q, k, v)`` kept by the last forward while counting (``None`` if none), and forget them."""
        operands, self._op_operands = self._op_operands, None
        return operands

    def extra_repr(self) -> str:
        parts = [f"dim={self.dim}", f"heads={self.num_heads}", f"similarity={self.similarity!r}",
                 f"scale={self.scale:g}"]
        if self.normalize != "none":
            parts.append(f"normalize={self.normalize!r}")
        if hasattr(self, "order"):
            parts.append(f"order={self.order!r}")
        return ", ".join(parts)

class SpikingSelfAttention(SpikingAttention):
    """Spikformer's SSA with a switchable similarity (see the module docstring).

    Args:
        dim, num_heads, similarity, a_coef, scale, normalize: see :class:`SpikingAttention`
            (Spikformer: ``scale=0.125``).
        neuron: factory of the Q/K/V/output neurons (LIF τ 2, V_th 1).
        attn_neuron: factory of ``SN_attn`` (LIF τ 2, V_th 0.5).
        qkv_bias: bias of the Q/K/V linear layers (CIFAR code: yes; ImageNet code: no).
        order: ``"kv_first"`` (``Q (KᵀV)``, cost ``O(N d²)``) or ``"qk_first"`` (``(QKᵀ) V``, ``O(N² d)``).

    Shapes: ``[T, B, N, C] -> [T, B, N, C]`` (binary spikes).
    """

    kind = "ssa"

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        neuron: NeuronFactory,
        attn_neuron: NeuronFactory,
        qkv_bias: bool = True,
        scale: float = 0.125,
        order: str = "kv_first",
        similarity: str = "dot",
        a_coef: AXNORCoefficient | None = None,
        normalize: str = "none",
    ) -> None:
        super().__init__(dim, num_heads, similarity=similarity, a_coef=a_coef, scale=scale, normalize=normalize)
        check_choice("attention order", order, ORDERS)
        self.order = order
        self.q = TokenLinear(dim, dim, bias=qkv_bias, neuron=neuron())
        self.k = TokenLinear(dim, dim, bias=qkv_bias, neuron=neuron())
        self.v = TokenLinear(dim, dim, bias=qkv_bias, neuron=neuron())
        self.attn_sn = attn_neuron()
        self.proj = TokenLinear(dim, dim, bias=True, neuron=neuron())

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, a: torch.Tensor | None) -> torch.Tensor:
        """``scale * sim(Q, K) V`` per head, ``[T, B, h, N, d]``."""
        if a is None:
            if self.order == "kv_first":
                y = q @ (k.transpose(-2, -1) @ v)
            else:
                y = (q @ k.transpose(-2, -1)) @ v
            return y * self.scale
        y = axnor_attention(q, k, v, a, order=self.order)  # type: ignore[arg-type]
        factor, offset = self._normalisation(q, k, a, self.head_dim)
        if self.normalize == "center":  # (S - offset) V = S V - offset 1 (1ᵀV)
            y = y - offset * v.sum(-2, keepdim=True)
        return y * (self.scale * factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        q, k, v = self._qkv(x)
        a = self.a_value()
        attn = self.attn_sn(self.merge_heads(self._attend(q, k, v, a)))
        self.last_tokens = x.shape[2]
        return self.proj(attn)

    @torch.no_grad()
    def attention_map(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """The per-head map that multiplies ``V``, scale and normalisation included: ``[T, B, h, N, N]``
        from the spikes ``q``, ``k`` ``[T, B, h, N, d]`` (the kv-first order never forms it)."""
        a = self.a_value()
        if a is None:
            return (q @ k.transpose(-2, -1)) * self.scale
        factor, offset = self._normalisation(q, k, a.detach(), self.head_dim)
        return (axnor_scores(q, k, a.detach()) - offset) * (self.scale * factor)

class SpikeDrivenSelfAttention(SpikingAttention):
    """SDT v1's SDSA branch with a switchable similarity (see the module docstring).

    Args:
        dim, num_heads, similarity, a_coef, scale, normalize: see :class:`SpikingAttention`
            (SDT: ``scale=1``).
        neuron: factory of the shortcut and Q/K/V neurons (LIF τ 2, V_th 1).
        attn_neuron: factory of the KV ("talking-heads") neuron (LIF τ 2, V_th 0.5).

    Shapes: membrane stream ``[T, B, N, C]`` -> branch output ``[T, B, N, C]`` (real-valued; the
    block adds it to its input -- a membrane shortcut).
    """

    kind = "sdsa"

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        neuron: NeuronFactory,
        attn_neuron: NeuronFactory,
        scale: float = 1.0,
        similarity: str = "dot",
        a_coef: AXNORCoefficient | None = None,
        normalize: str = "none",
    ) -> None:
        super().__init__(dim, num_heads, similarity=similarity, a_coef=a_coef, scale=scale, normalize=normalize)
        self.shortcut_sn = neuron()
        self.q = TokenLinear(dim, dim, bias=False, neuron=neuron())
        self.k = TokenLinear(dim, dim, bias=False, neuron=neuron())
        self.v = TokenLinear(dim, dim, bias=False, neuron=neuron())
        self.kv_sn = attn_neuron()
        self.proj = TokenLinear(dim, dim, bias=True, neuron=None)

    def _column_sums(self, k: torch.Tensor, v: torch.Tensor, a: torch.Tensor | None) -> torch.Tensor:
        """``scale * Σ_tokens sim(k, v)`` per head and channel, ``[T, B, h, 1, d]``."""
        if a is None:
            return (k * v).sum(-2, keepdim=True) * self.scale
        factor, offset = self._normalisation(k, v, a, k.shape[-2])
        return (axnor_kv(k, v, a) - offset) * (self.scale * factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        q, k, v = self._qkv(self.shortcut_sn(x))
        a = self.a_value()
        kv = self._column_sums(k, v, a)
        mask = self.kv_sn(kv)
        y = q * mask
        self.last_tokens = x.shape[2]
        return self.proj(self.merge_heads(y))

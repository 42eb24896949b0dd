"""Neuron dynamics shared by every spiking neuron, and its multi-step implementations.

All neurons in xorsnn are special cases of one affine charge / fire / reset step. With ``V`` the
membrane *after* the previous reset and ``X[t]`` the input current::

    H[t] = k * V[t-1] + c * X[t] + b          (charge)
    S[t] = Θ(H[t] - V_th)                     (fire; surrogate gradient in backward)
    O[t] = S[t]            (binary spikes)  or  H[t] * S[t]   (real-valued spikes, ReverB-SNN)
    V[t] = H[t] * (1 - S[t]) + V_reset * S[t] (hard reset)   or   H[t] - V_th * S[t]  (soft reset)

==============================  ==========  =============  ===============
neuron                          k           c              b
==============================  ==========  =============  ===============
LIF, tau form (decay_input)     1 - 1/tau   1/tau          V_reset / tau
LIF, tau form (no decay_input)  1 - 1/tau   1              V_reset / tau
LIF, decay form (MS / tdBN)     decay       1              0
IF                              1           1              0
==============================  ==========  =============  ===============

The tau form is SpikingJelly's ``H = V + (X - (V - V_reset)) / tau``; the decay form is the
MS-ResNet / tdBN ``U = decay * U * (1 - S) + X`` (hard reset to 0 folded into ``V``).
With ``detach_reset`` the spike that enters the reset is detached, as in SpikingJelly and MS-ResNet.

Two multi-step implementations compute the same function:

* :func:`multistep_autograd` -- a plain Python loop over ``T`` recorded by autograd. It is the
  reference (test oracle) and supports everything, including gradients through the final state.
* :func:`multistep_bptt` -- forward over ``T`` without building a graph, then a hand-written
  backward over ``T`` (BPTT). It saves only ``H`` (one tensor of the input's size) and
  recomputes spikes and surrogate derivatives from it, so it is faster and leaner on the CPU and
  is the template for the fused GPU kernels. The returned final state is detached.

A third, :func:`xorsnn.neurons.backends.multistep_fused_cpu`, runs the same forward and backward as
one numba kernel call each (the default on the CPU when numba is installed); the torch functions
here stay the oracle it is tested against. :func:`xorsnn.neurons.backends.multistep` chooses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from .surrogate import Surrogate

__all__ = ["NeuronDynamics", "single_step", "multistep_autograd", "multistep_bptt"]


@dataclass(frozen=True)
class NeuronDynamics:
    """Constants of the affine neuron step (see the module docstring for the equations).

    Attributes:
        k: leak factor applied to the post-reset membrane ``V[t-1]``.
        c: gain on the input current ``X[t]``.
        b: constant current added every step.
        v_threshold: firing threshold ``V_th``.
        v_reset: reset value of a hard reset (ignored by a soft reset).
        hard_reset: ``True`` for reset-to-``v_reset``, ``False`` for subtract-``V_th``.
        detach_reset: detach the spike in the reset path.
        surrogate: surrogate gradient of the Heaviside step.
        real_valued: emit ``H * S`` (ReverB real-valued spikes) instead of ``S``.
        threshold_grad: for real-valued spikes, keep the jump term ``H * σ'(H - V_th)`` in
            ``∂O/∂H = S + H σ'(H - V_th)``; ``False`` keeps only ``S`` (ReverB's a.e. derivative).
    """

    k: float
    c: float
    b: float
    v_threshold: float
    v_reset: float
    hard_reset: bool
    detach_reset: bool
    surrogate: Surrogate
    real_valued: bool = False
    threshold_grad: bool = True

    @property
    def v_init(self) -> float:
        """Membrane value at rest (``V[-1]``): ``v_reset`` for a hard reset, 0 for a soft one."""
        return self.v_reset if self.hard_reset else 0.0

    def firing_current(self, margin: float = 1e-3) -> float:
        """Constant input current that makes the neuron fire at *every* step from rest.

        Used to initialise SEW-AND's last BN bias so that the backbone fires at initialisation.
        From rest (and after every hard reset) ``H = k * v_init + c * X + b``; the returned current
        reaches ``V_th * (1 + margin)`` so that rounding cannot keep ``H`` just below ``V_th``.
        A soft reset leaves ``H - V_th >= 0`` behind, which only helps.
        """
        return (self.v_threshold * (1 + margin) - self.b - self.k * self.v_init) / self.c


def charge(v: torch.Tensor, x_t: torch.Tensor, d: NeuronDynamics) -> torch.Tensor:
    """The charge ``H = c X + k V + b`` in PyTorch's float operations and order (terms that are
    switched off are skipped). Every torch-side neuron step (training, export) calls this one."""
    h = x_t * d.c if d.c != 1.0 else x_t
    if d.k != 0.0:
        h = h + (v * d.k if d.k != 1.0 else v)
    if d.b != 0.0:
        h = h + d.b
    return h


def single_step(
    x_t: torch.Tensor, v: torch.Tensor | None, d: NeuronDynamics
) -> tuple[torch.Tensor, torch.Tensor]:
    """One time step with explicit state, recorded by autograd.

    Args:
        x_t: input current ``[B, ...]``.
        v: post-reset membrane from the previous step ``[B, ...]`` or ``None`` (rest).
        d: neuron constants.

    Returns:
        ``(out_t, v_new)``, both ``[B, ...]``: the spikes (or real-valued spikes) and the new
        post-reset membrane. Gradients flow through ``v`` unless the caller detaches it (SLTT).
    """
    if v is None:
        v = torch.full_like(x_t, d.v_init)
    h = charge(v, x_t, d)
    s = d.surrogate(h - d.v_threshold)
    if d.real_valued:
        out = h * s if d.threshold_grad else h * s.detach()
    else:
        out = s
    s_r = s.detach() if d.detach_reset else s
    if d.hard_reset:
        v_new = h * (1 - s_r) + d.v_reset * s_r if d.v_reset != 0.0 else h * (1 - s_r)
    else:
        v_new = h - d.v_threshold * s_r
    return out, v_new


def multistep_autograd(
    x: torch.Tensor, d: NeuronDynamics, v0: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference multi-step neuron: a loop of :func:`single_step` over ``T``.

    Args:
        x: input currents ``[T, B, ...]``.
        d: neuron constants.
        v0: initial post-reset membrane ``[B, ...]`` or ``None`` (rest).

    Returns:
        ``(out, v_T)``: outputs ``[T, B, ...]`` and the final membrane ``[B, ...]``.
    """
    v = v0
    outs = []
    for t in range(x.shape[0]):
        o, v = single_step(x[t], v, d)
        outs.append(o)
    assert v is not None
    return torch.stack(outs), v


class _MultiStepBPTT(torch.autograd.Function):
    """Whole-sequence neuron with a hand-written backward through time."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, v0: torch.Tensor | None, d: NeuronDynamics):  # type: ignore[override]
        compute_dtype = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
        xs = x.to(compute_dtype)
        v = (
            torch.full_like(xs[0], d.v_init)
            if v0 is None
            else v0.detach().to(compute_dtype).expand_as(xs[0]).clone()
        )
        h_seq = torch.empty_like(xs)
        out = torch.empty_like(x)
        for t in range(xs.shape[0]):
            h = charge(v, xs[t], d)
            h_seq[t] = h
            s = (h >= d.v_threshold).to(compute_dtype)
            out[t] = h * s if d.real_valued else s
            if d.hard_reset:
                v = torch.where(s.bool(), torch.full_like(h, d.v_reset), h)
            else:
                v = h - d.v_threshold * s
        ctx.save_for_backward(h_seq)
        ctx.d = d
        ctx.has_v0 = v0 is not None
        ctx.x_dtype = x.dtype
        ctx.mark_non_differentiable(v)
        return out, v.to(x.dtype)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor, _grad_v: torch.Tensor | None):  # type: ignore[override]
        (h_seq,) = ctx.saved_tensors
        d: NeuronDynamics = ctx.d
        g_out = grad_out.to(h_seq.dtype)
        grad_x = torch.empty_like(h_seq)
        grad_v = torch.zeros_like(h_seq[0])  # dL/dV[t], carried backwards
        for t in range(h_seq.shape[0] - 1, -1, -1):
            h = h_seq[t]
            s = (h >= d.v_threshold).to(h.dtype)
            sg = d.surrogate.derivative(h - d.v_threshold)
            go = g_out[t]
            # dL/dS through the output ...
            if d.real_valued:
                grad_s = go * h if d.threshold_grad else torch.zeros_like(h)
                grad_h = go * s
            else:
                grad_s = go
                grad_h = torch.zeros_like(h)
            # ... and through the reset (unless the reset spike is detached)
            if d.hard_reset:
                if not d.detach_reset:
                    grad_s = grad_s + grad_v * (d.v_reset - h)
                grad_h = grad_h + grad_v * (1 - s)
            else:
                if not d.detach_reset:
                    grad_s = grad_s - grad_v * d.v_threshold
                grad_h = grad_h + grad_v
            grad_h = grad_h + grad_s * sg
            grad_x[t] = grad_h * d.c if d.c != 1.0 else grad_h
            grad_v = grad_h * d.k
        grad_v0 = grad_v if ctx.has_v0 and ctx.needs_input_grad[1] else None
        return grad_x.to(ctx.x_dtype), grad_v0, None


def multistep_bptt(
    x: torch.Tensor, d: NeuronDynamics, v0: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Multi-step neuron with a hand-written BPTT backward (same function as the reference).

    Args:
        x: input currents ``[T, B, ...]`` (fp16/bf16 inputs are integrated in fp32).
        d: neuron constants.
        v0: initial post-reset membrane ``[B, ...]`` or ``None``; gradients flow into ``v0``.

    Returns:
        ``(out, v_T)``: outputs ``[T, B, ...]`` in ``x.dtype`` and the final membrane ``[B, ...]``
        (detached: no gradient flows back through the returned state).
    """
    if not math.isfinite(d.k):  # pragma: no cover - guarded by the neuron constructors
        raise ValueError("neuron leak must be finite")
    return _MultiStepBPTT.apply(x, v0, d)

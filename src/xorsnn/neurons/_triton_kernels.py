"""Triton kernels of the fused multi-step neuron (imported lazily; needs ``triton``).

The same function as :mod:`xorsnn.neurons._cpu_kernels` and ``_MultiStepBPTT`` -- one program per
block of ``BLOCK`` neurons, looping over ``T`` inside so that the membranes stay in registers:

* :func:`neuron_forward_kernel`: ``x`` ``[T, N]`` (any float dtype, integrated in fp32) -> ``out``
  ``[T, N]`` (the input's dtype), ``H`` ``[T, N]`` fp32 (saved for the backward, optional) and the
  final membrane ``v`` ``[N]`` fp32 (in place: initial -> final);
* :func:`neuron_backward_kernel`: BPTT from ``H`` and ``dL/dO`` -> ``dL/dX`` ``[T, N]`` fp32 and
  ``dL/dV[-1]`` ``[N]``; spikes and surrogate derivatives are recomputed from ``H``.

With ``MERGE`` 1 the output is ``OR(s, O) = (s + O) - s*O`` (``s`` ``[T, N]``, the block input of an OA /
XOR identity block) and the backward also writes ``dL/ds = g - g*O`` (fp32); with ``MERGE`` 2 (forward
only) it is ``O + s`` (SEW's ADD), as in the CPU kernel.

The forward performs the float operations of :func:`xorsnn.neurons.dynamics.charge` in the same
order (``h = c*x``, ``+ k*v``, ``+ b``; fire ``h >= V_th``), and is launched with
``enable_fp_fusion=False`` so that no multiply-add is contracted into an FMA: spikes are bitwise
equal to the torch reference. The surrogate derivatives are the formulas of the surrogate classes'
``scalar_derivative`` (dispatched on ``kernel_id``, a compile-time constant).

On a machine without a GPU the kernels run under ``TRITON_INTERPRET=1`` on CPU tensors (how CI
tests them, ``tests/test_triton_kernels.py``); the interpreter evaluates them with NumPy.
"""

from __future__ import annotations

import triton
import triton.language as tl

__all__ = ["neuron_forward_kernel", "neuron_backward_kernel", "BLOCK", "KERNEL_SURROGATE_IDS"]

BLOCK = 256
KERNEL_SURROGATE_IDS = frozenset({0, 1, 2, 3})  # atan, sigmoid, triangle, rectangle (Surrogate.kernel_id)


@triton.jit
def _surrogate_derivative(x, p, SID: tl.constexpr):
    """``σ'(x)`` of surrogate ``SID`` with parameter ``p`` (fp32)."""
    if SID == 0:  # atan
        y = 1.5707963267948966 * p * x
        return p / (2.0 * (1.0 + y * y))
    elif SID == 1:  # sigmoid
        z = tl.exp(-tl.abs(p * x))
        return p * z / ((1.0 + z) * (1.0 + z))
    elif SID == 2:  # triangle
        return tl.maximum(p - tl.abs(x), 0.0) / (p * p)
    else:  # rectangle
        return tl.where(tl.abs(x) < p / 2.0, 1.0 / p, 0.0)


@triton.jit
def neuron_forward_kernel(x_ptr, v_ptr, out_ptr, h_ptr, s_ptr, T, N, k, c, b, vth, vreset,
                          USE_C: tl.constexpr, USE_K: tl.constexpr, K_ONE: tl.constexpr, USE_B: tl.constexpr,
                          HARD: tl.constexpr, REAL: tl.constexpr, STORE_H: tl.constexpr, MERGE: tl.constexpr,
                          BLOCK: tl.constexpr):
    """All ``T`` steps of ``BLOCK`` neurons (see the module docstring)."""
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    v = tl.load(v_ptr + offs, mask=mask, other=0.0)
    for t in range(T):
        x = tl.load(x_ptr + t * N + offs, mask=mask, other=0.0).to(tl.float32)
        h = x * c if USE_C else x
        if USE_K:
            h = h + (v if K_ONE else v * k)
        if USE_B:
            h = h + b
        fire = h >= vth
        if REAL:
            o = tl.where(fire, h, h * 0.0)
        else:
            o = tl.where(fire, 1.0, 0.0)
        if MERGE == 1:
            sv = tl.load(s_ptr + t * N + offs, mask=mask, other=0.0).to(tl.float32)
            o = (sv + o) - sv * o
        elif MERGE == 2:
            o = o + tl.load(s_ptr + t * N + offs, mask=mask, other=0.0).to(tl.float32)
        tl.store(out_ptr + t * N + offs, o.to(out_ptr.dtype.element_ty), mask=mask)
        if STORE_H:
            tl.store(h_ptr + t * N + offs, h, mask=mask)
        if HARD:
            v = tl.where(fire, vreset, h)
        else:
            v = tl.where(fire, h - vth, h)
    tl.store(v_ptr + offs, v, mask=mask)


@triton.jit
def neuron_backward_kernel(h_ptr, g_ptr, gx_ptr, gv_ptr, s_ptr, gs_ptr, T, N, k, c, vth, vreset, p,
                           USE_C: tl.constexpr, HARD: tl.constexpr, REAL: tl.constexpr, DETACH: tl.constexpr,
                           TGRAD: tl.constexpr, SID: tl.constexpr, MERGE: tl.constexpr, BLOCK: tl.constexpr):
    """BPTT over all ``T`` steps, last to first (``_MultiStepBPTT.backward`` per element)."""
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    gv = tl.zeros((BLOCK,), dtype=tl.float32)  # dL/dV[t], carried backwards (the final state is detached)
    for i in range(T):
        t = T - 1 - i
        h = tl.load(h_ptr + t * N + offs, mask=mask, other=0.0)
        go = tl.load(g_ptr + t * N + offs, mask=mask, other=0.0).to(tl.float32)
        fire = h >= vth
        if MERGE == 1:  # OR(s, O): dL/ds = g - g*O, dL/dO = g - g*s
            sv = tl.load(s_ptr + t * N + offs, mask=mask, other=0.0).to(tl.float32)
            if REAL:
                o = tl.where(fire, h, h * 0.0)
            else:
                o = tl.where(fire, 1.0, 0.0)
            tl.store(gs_ptr + t * N + offs, go - go * o, mask=mask)
            go = go - go * sv
        sg = _surrogate_derivative(h - vth, p, SID)
        if REAL:  # O = H * S: dO/dS = H (the jump, optional), dO/dH = S
            gs = go * h if TGRAD else go * 0.0
            gh = tl.where(fire, go, 0.0)
        else:
            gs = go
            gh = go * 0.0
        if HARD:  # V = H (1 - S) + V_reset S
            if not DETACH:
                gs = gs + gv * (vreset - h)
            gh = gh + tl.where(fire, 0.0, gv)
        else:  # V = H - V_th S
            if not DETACH:
                gs = gs - gv * vth
            gh = gh + gv
        gh = gh + gs * sg
        tl.store(gx_ptr + t * N + offs, gh * c if USE_C else gh, mask=mask)
        gv = gh * k
    tl.store(gv_ptr + offs, gv, mask=mask)

"""Numba kernels of the fused multi-step CPU neuron (imported lazily; needs numba, extra ``deploy``).

Layouts (C-contiguous, one dtype ``D`` = float32 or float64 throughout):

* ``x``, ``out``, ``h_seq``, ``g_out``, ``grad_x``: ``[T, N]`` -- time-first, the neuron dims flattened;
* ``v`` / ``grad_v``: ``[N]``, updated in place (initial -> final membrane; 0 -> ``dL/dV[-1]``);
* ``consts`` ``[8]`` (dtype ``D``): ``k, c, b, v_threshold, v_reset, v_init, surrogate parameter, 1`` (the
  ``1`` in ``D``: a literal ``1`` would promote float32 arithmetic to float64 in numba);
* ``flags`` ``[12]`` (int64): ``use_c, use_k, k_is_one, use_b, hard_reset, real_valued,
  detach_reset, threshold_grad, surrogate kernel_id, store_h, merge, 0``;
* ``s`` / ``grad_s``: ``[T, N]``, used only with a ``merge``: the block input merged with the spikes
  ``O``. ``merge`` 1 (:data:`MERGE_OR`): ``out = OR(s, O) = (s + O) - s*O`` (the poly form of
  :func:`xorsnn.ops.spike_or`), its gradient ``g - g*O`` goes to ``grad_s`` and the spikes' gradient
  ``g - g*s`` enters the BPTT; ``merge`` 2 (:data:`MERGE_ADD`, the forward only): ``out = O + s``
  (SEW's ADD), whose backward is the plain one (both gradients are ``g``). Without a merge they are
  ``[1, 1]`` placeholders.

The forward performs the float operations of :func:`xorsnn.neurons.dynamics.single_step` /
``_MultiStepBPTT`` in the same order and precision (``h = c*x``, ``+ k*v``, ``+ b``; fire
``h >= V_th``; reset), so spikes are bitwise equal to the torch reference; ``fastmath`` stays off
so that no multiply-add is contracted. The backward is ``_MultiStepBPTT.backward`` per neuron, with
spikes recomputed from the saved ``H`` and the surrogate derivative taken from the surrogate
classes' own ``scalar_derivative`` (dispatched on their ``kernel_id`` in :func:`_backward_chunk`).

Work is split over chunks of :data:`CHUNK` neurons (``prange``); a chunk loops over ``T`` inside,
so its membranes stay in L1 between time steps. :func:`forward` / :func:`backward` run them on as
many threads as torch uses (``torch.get_num_threads()``), and use the ``*_serial`` builds (no thread
pool at all) for one thread or one chunk: numba's OpenMP pool is a second pool beside torch's, and
on an oversubscribed machine a parallel launch can wait a whole scheduler slice (~10 ms) for it.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from .surrogate import ATan, Rectangle, Sigmoid, Triangle

__all__ = ["MERGE_OR", "MERGE_ADD", "forward", "backward", "neuron_forward", "neuron_backward", "neuron_forward_serial",
           "neuron_backward_serial", "set_threads", "KERNEL_SURROGATE_IDS", "CHUNK"]

#: ``flags[10]``: the merge of the spikes with ``s`` done inside the kernels (0: none)
MERGE_OR, MERGE_ADD = 1, 2

#: neurons per parallel task: 4096 fp32 membranes (16 KiB) + the current step's inputs fit in L1/L2.
CHUNK = 4096

_atan = njit(inline="always", cache=True)(ATan.scalar_derivative)
_sigmoid = njit(inline="always", cache=True)(Sigmoid.scalar_derivative)
_triangle = njit(inline="always", cache=True)(Triangle.scalar_derivative)
_rectangle = njit(inline="always", cache=True)(Rectangle.scalar_derivative)
_ATAN, _SIGMOID, _TRIANGLE, _RECTANGLE = ATan.kernel_id, Sigmoid.kernel_id, Triangle.kernel_id, Rectangle.kernel_id

#: the surrogate ids :func:`_backward_chunk` dispatches (a surrogate with another id runs on torch);
#: ``tests/test_neuron_kernels.py`` checks that every class in ``SURROGATES`` is covered.
KERNEL_SURROGATE_IDS = frozenset({_ATAN, _SIGMOID, _TRIANGLE, _RECTANGLE})


def set_threads(n: int) -> None:
    """Use ``n`` threads in the kernels (clipped to numba's pool size)."""
    n = max(1, min(int(n), numba.config.NUMBA_NUM_THREADS))
    if numba.get_num_threads() != n:
        numba.set_num_threads(n)


@njit(inline="always", cache=True, fastmath=False, error_model="numpy")
def _spike(h, vth, real, zero, one):  # type: ignore[no-untyped-def]
    """The output of a neuron whose charged membrane is ``h``: ``1``/``0``, or ``h``/``0`` for real-valued spikes."""
    if real:
        return h if h >= vth else h * zero
    return one if h >= vth else zero


@njit(inline="always", cache=True, fastmath=False, error_model="numpy")
def _step(xj, vj, k, c, b, vth, vreset, use_c, use_k, k_one, use_b, hard, real, zero, one):  # type: ignore[no-untyped-def]
    """One neuron, one step, in torch's float operations and order: returns ``(h, out, v_next)``."""
    h = xj * c if use_c else xj
    if use_k:
        h = h + (vj if k_one else vj * k)
    if use_b:
        h = h + b
    fire = h >= vth
    o = _spike(h, vth, real, zero, one)
    if hard:
        return h, o, (vreset if fire else h)
    return h, o, (h - vth if fire else h)


@njit(inline="always", cache=True, fastmath=False, error_model="numpy")
def _forward_chunk(x, v, consts, flags, out, h_seq, s, lo, hi):  # type: ignore[no-untyped-def]
    """Neurons ``lo:hi`` over all ``T`` steps (see :func:`neuron_forward`). The two inner loops
    (with / without storing ``H``) are kept apart: a maybe-aliasing store stops LLVM vectorising;
    the OR merge is a second pass over the chunk's step, still in L1."""
    t_n = x.shape[0]
    k, c, b, vth, vreset = consts[0], consts[1], consts[2], consts[3], consts[4]
    use_c, use_k, k_one, use_b = flags[0] != 0, flags[1] != 0, flags[2] != 0, flags[3] != 0
    hard, real, store_h, merge = flags[4] != 0, flags[5] != 0, flags[9] != 0, flags[10]
    zero, one = consts[0] - consts[0], consts[7]
    vc = v[lo:hi]
    for t in range(t_n):
        xt = x[t, lo:hi]
        ot = out[t, lo:hi]
        if store_h:
            ht = h_seq[t, lo:hi]
            for j in range(hi - lo):
                ht[j], ot[j], vc[j] = _step(xt[j], vc[j], k, c, b, vth, vreset, use_c, use_k, k_one, use_b,
                                            hard, real, zero, one)
        else:
            for j in range(hi - lo):
                _, ot[j], vc[j] = _step(xt[j], vc[j], k, c, b, vth, vreset, use_c, use_k, k_one, use_b,
                                        hard, real, zero, one)
        if merge == MERGE_OR:
            st = s[t, lo:hi]
            for j in range(hi - lo):
                ot[j] = (st[j] + ot[j]) - st[j] * ot[j]
        elif merge == MERGE_ADD:
            st = s[t, lo:hi]
            for j in range(hi - lo):
                ot[j] = ot[j] + st[j]


@njit(inline="always", cache=True, fastmath=False, error_model="numpy")
def _grad_step(h, go, gv, sg, k, c, vth, vreset, use_c, hard, real, detach, tgrad, zero):  # type: ignore[no-untyped-def]
    """BPTT through one neuron step: ``(dL/dX[t], dL/dV[t-1])`` from ``H[t]``, ``dL/dO[t]``, ``dL/dV[t]``
    and the surrogate derivative ``sg`` at ``H[t] - V_th`` (``_MultiStepBPTT.backward`` per element)."""
    fire = h >= vth
    if real:  # O = H * S: dO/dS = H (the jump, optional), dO/dH = S
        gs = go * h if tgrad else zero
        gh = go if fire else zero
    else:
        gs = go
        gh = zero
    if hard:  # V = H (1 - S) + V_reset S
        if not detach:
            gs = gs + gv * (vreset - h)
        if not fire:
            gh = gh + gv
    else:  # V = H - V_th S
        if not detach:
            gs = gs - gv * vth
        gh = gh + gv
    gh = gh + gs * sg
    return (gh * c if use_c else gh), gh * k


@njit(inline="always", cache=True, fastmath=False, error_model="numpy")
def _backward_chunk(h_seq, g_out, consts, flags, grad_x, grad_v, s, grad_s, lo, hi):  # type: ignore[no-untyped-def]
    """Neurons ``lo:hi`` over all ``T`` steps, last to first (see :func:`neuron_backward`). One inner
    loop per surrogate: a call chosen per element would keep LLVM from vectorising the loop. With the
    OR merge a first pass writes ``dL/ds`` and the spikes' gradient, into a chunk-sized scratch array
    (not into ``grad_x``: a loop reading and writing one array fails LLVM's runtime alias check and runs
    unvectorised)."""
    t_n = h_seq.shape[0]
    k, c, vth, vreset, p = consts[0], consts[1], consts[3], consts[4], consts[6]
    use_c = flags[0] != 0
    hard, real, detach, tgrad = flags[4] != 0, flags[5] != 0, flags[6] != 0, flags[7] != 0
    sid, merge = flags[8], flags[10] == MERGE_OR  # an ADD's backward is the plain one
    zero, one = consts[0] - consts[0], consts[7]
    gvc = grad_v[lo:hi]
    gm = np.empty_like(gvc) if merge else gvc
    for t in range(t_n - 1, -1, -1):
        ht = h_seq[t, lo:hi]
        gt = g_out[t, lo:hi]
        gxt = grad_x[t, lo:hi]
        if merge:  # OR(s, O): dL/ds = g - g*O, dL/dO = g - g*s (the autograd of (s + O) - s*O)
            st, gst = s[t, lo:hi], grad_s[t, lo:hi]
            for j in range(hi - lo):
                gj = gt[j]
                gst[j] = gj - gj * _spike(ht[j], vth, real, zero, one)
                gm[j] = gj - gj * st[j]
            gt = gm
        if sid == _ATAN:
            for j in range(hi - lo):
                gxt[j], gvc[j] = _grad_step(ht[j], gt[j], gvc[j], _atan(ht[j] - vth, p), k, c, vth, vreset,
                                            use_c, hard, real, detach, tgrad, zero)
        elif sid == _SIGMOID:
            for j in range(hi - lo):
                gxt[j], gvc[j] = _grad_step(ht[j], gt[j], gvc[j], _sigmoid(ht[j] - vth, p), k, c, vth, vreset,
                                            use_c, hard, real, detach, tgrad, zero)
        elif sid == _TRIANGLE:
            for j in range(hi - lo):
                gxt[j], gvc[j] = _grad_step(ht[j], gt[j], gvc[j], _triangle(ht[j] - vth, p), k, c, vth, vreset,
                                            use_c, hard, real, detach, tgrad, zero)
        else:
            for j in range(hi - lo):
                gxt[j], gvc[j] = _grad_step(ht[j], gt[j], gvc[j], _rectangle(ht[j] - vth, p), k, c, vth,
                                            vreset, use_c, hard, real, detach, tgrad, zero)


@njit(parallel=True, cache=True, fastmath=False, error_model="numpy")
def neuron_forward(x, v, consts, flags, out, h_seq, s):  # type: ignore[no-untyped-def]
    """All ``T`` steps of the neuron: ``x`` ``[T, N]`` -> ``out`` ``[T, N]``; ``v`` ``[N]`` in place.

    With ``flags[9]`` (store_h) the charged membranes ``H`` also go to ``h_seq`` ``[T, N]``; with
    ``flags[10]`` (merge) ``out`` is ``OR(s, spikes)`` or ``spikes + s``.
    """
    m_n = x.shape[1]
    for ci in prange((m_n + CHUNK - 1) // CHUNK):
        _forward_chunk(x, v, consts, flags, out, h_seq, s, ci * CHUNK, min(m_n, ci * CHUNK + CHUNK))


@njit(parallel=True, cache=True, fastmath=False, error_model="numpy")
def neuron_backward(h_seq, g_out, consts, flags, grad_x, grad_v, s, grad_s):  # type: ignore[no-untyped-def]
    """BPTT over all ``T`` steps from the saved ``H`` ``[T, N]`` and ``dL/dO`` ``g_out`` ``[T, N]``.

    Writes ``dL/dX`` to ``grad_x`` ``[T, N]``; ``grad_v`` ``[N]`` enters as ``dL/dV[T-1]`` (zeros: the
    returned state is detached) and leaves as ``dL/dV[-1]`` (the gradient of the initial state).
    With ``flags[10] == MERGE_OR`` ``g_out`` is the gradient of ``OR(s, spikes)`` and ``dL/ds`` goes to ``grad_s``.
    """
    m_n = h_seq.shape[1]
    for ci in prange((m_n + CHUNK - 1) // CHUNK):
        _backward_chunk(h_seq, g_out, consts, flags, grad_x, grad_v, s, grad_s, ci * CHUNK,
                        min(m_n, ci * CHUNK + CHUNK))


@njit(cache=True, fastmath=False, error_model="numpy")
def neuron_forward_serial(x, v, consts, flags, out, h_seq, s):  # type: ignore[no-untyped-def]
    """:func:`neuron_forward` on the calling thread, without the thread pool."""
    m_n = x.shape[1]
    for ci in range((m_n + CHUNK - 1) // CHUNK):
        _forward_chunk(x, v, consts, flags, out, h_seq, s, ci * CHUNK, min(m_n, ci * CHUNK + CHUNK))


@njit(cache=True, fastmath=False, error_model="numpy")
def neuron_backward_serial(h_seq, g_out, consts, flags, grad_x, grad_v, s, grad_s):  # type: ignore[no-untyped-def]
    """:func:`neuron_backward` on the calling thread, without the thread pool."""
    m_n = h_seq.shape[1]
    for ci in range((m_n + CHUNK - 1) // CHUNK):
        _backward_chunk(h_seq, g_out, consts, flags, grad_x, grad_v, s, grad_s, ci * CHUNK,
                        min(m_n, ci * CHUNK + CHUNK))


def forward(x, v, consts, flags, out, h_seq, s, threads: int) -> None:  # type: ignore[no-untyped-def]
    """:func:`neuron_forward` on ``threads`` threads (the serial build for one thread or one chunk)."""
    if threads <= 1 or x.shape[1] <= CHUNK:
        neuron_forward_serial(x, v, consts, flags, out, h_seq, s)
        return
    set_threads(threads)
    neuron_forward(x, v, consts, flags, out, h_seq, s)


def backward(h_seq, g_out, consts, flags, grad_x, grad_v, s, grad_s, threads: int) -> None:  # type: ignore[no-untyped-def]
    """:func:`neuron_backward` on ``threads`` threads (the serial build for one thread or one chunk)."""
    if threads <= 1 or h_seq.shape[1] <= CHUNK:
        neuron_backward_serial(h_seq, g_out, consts, flags, grad_x, grad_v, s, grad_s)
        return
    set_threads(threads)
    neuron_backward(h_seq, g_out, consts, flags, grad_x, grad_v, s, grad_s)

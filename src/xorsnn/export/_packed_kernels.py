"""Numba kernels of the bit-packed CPU engine (imported lazily; needs the ``deploy`` extra: ``numba``).

Layouts (all C-contiguous):

* packed spikes ``[N, H + 2p, W + 2p, Cw]`` ``uint64``: bit ``c % 64`` of word ``c // 64`` is the spike
  of channel ``c`` at that pixel; the border of width ``p`` (the conv's zero padding) is all zeros;
* packed weights ``[KH, KW, Cw, O]`` ``uint64``: bit set where the ±1 weight is ``+1``;
* sign table ``[KH, KW, C, O]`` float (``±1``) for the real-valued-spike path.

For binary inputs ``s`` and ±1 weights ``w`` the conv output is
``sum_i s_i w_i = 2 * popcount(s AND w_pos) - popcount(s)`` over the receptive field: integers, so
the result is exact in any float format that holds them.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange, types
from numba.extending import intrinsic

from ..neurons._cpu_kernels import _step as _cpu_step

__all__ = ["pack_spikes", "popcount_conv", "signed_add_conv", "neuron_pack", "fused_conv_bn_neuron",
           "set_threads"]


@intrinsic
def _popcnt64(typingctx, x):  # type: ignore[no-untyped-def]
    sig = types.int64(types.uint64)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.ctpop(args[0])

    return sig, codegen


def set_threads(n: int) -> None:
    """Use ``n`` threads (clipped to numba's pool size)."""
    numba.set_num_threads(max(1, min(int(n), numba.config.NUMBA_NUM_THREADS)))


@njit(inline="always")
def _popcount_row(xp, wpos, n, oh, stride, off, acc, s):  # type: ignore[no-untyped-def]
    """Accumulate output row ``oh`` of image ``n``: ``acc[ow, o] += popcount(x AND w+)`` and
    ``s[ow] += popcount(x)`` over the receptive field (the caller zeroes ``acc`` and ``s``; the conv
    output is ``2 * acc - s``). All-zero input words are skipped; the inner loop over ``O`` vectorises."""
    kh_n, kw_n, cw_n, o_n = wpos.shape
    ow_n = acc.shape[0]
    for kh in range(kh_n):
        for kw in range(kw_n):
            for cw in range(cw_n):
                wr = wpos[kh, kw, cw]
                for ow in range(ow_n):
                    xw = xp[n, oh * stride + kh + off, ow * stride + kw + off, cw]
                    if xw == 0:
                        continue
                    s[ow] += _popcnt64(xw)
                    a = acc[ow]
                    for o in range(o_n):
                        a[o] += _popcnt64(xw & wr[o])


@njit(inline="always")
def _neuron_step(x, v, k, c, b, vth, vreset, use_c, use_k, k_one, use_b, hard):  # type: ignore[no-untyped-def]
    """One neuron update with binary output: the fused CPU neuron's step
    (:func:`xorsnn.neurons._cpu_kernels._step`, one definition). Returns ``(fire, h, v_next)``."""
    h, o, v_next = _cpu_step(x, v, k, c, b, vth, vreset, use_c, use_k, k_one, use_b, hard, False, 0.0, 1.0)
    return o != 0.0, h, v_next


@njit(parallel=True, cache=True)
def pack_spikes(x, pad):  # type: ignore[no-untyped-def]
    """``x`` float ``[N, C, H, W]`` -> ``(packed [N, H+2p, W+2p, Cw] uint64, binary)``.

    ``binary`` is ``False`` when some value is neither 0 nor 1 (the packed array is then invalid).
    Branch-free inner loop over ``W`` (vectorisable).
    """
    n_img, c_in, h_in, w_in = x.shape
    cw = (c_in + 63) // 64
    out = np.zeros((n_img, h_in + 2 * pad, w_in + 2 * pad, cw), np.uint64)
    bad = np.zeros(n_img, np.int64)
    for n in prange(n_img):
        nb = 0
        for c in range(c_in):
            word = c // 64
            sh = np.uint64(c % 64)
            for h in range(h_in):
                row = out[n, h + pad]
                xr = x[n, c, h]
                for w in range(w_in):
                    v = xr[w]
                    one = v == 1
                    nb += (v != 0) & (~one)
                    row[w + pad, word] |= np.uint64(one) << sh
        bad[n] = nb
    return out, bad.sum() == 0


@njit(parallel=True, cache=True)
def popcount_conv(xp, wpos, stride, off, out):  # type: ignore[no-untyped-def]
    """Binary-spike x ±1-weight convolution: ``out [N, O, OH, OW]`` (float) from packed operands.

    ``off`` = (padding of ``xp``) - (padding of the conv) >= 0: a padding-1 array serves a 1x1 conv.

    One task per output row; the row's accumulators ``[OW, O]`` stay in L1 while the kernel taps and
    channel words stream past; the inner loop over ``O`` (contiguous weight words) vectorises.
    """
    n_img = xp.shape[0]
    o_n = wpos.shape[3]
    oh_n, ow_n = out.shape[2], out.shape[3]
    for job in prange(n_img * oh_n):
        n = job // oh_n
        oh = job % oh_n
        acc = np.zeros((ow_n, o_n), np.int64)
        s = np.zeros(ow_n, np.int64)
        _popcount_row(xp, wpos, n, oh, stride, off, acc, s)
        for o in range(o_n):
            for ow in range(ow_n):
                out[n, o, oh, ow] = 2 * acc[ow, o] - s[ow]


@njit(parallel=True, cache=True)
def signed_add_conv(x, sign, stride, pad, out):  # type: ignore[no-untyped-def]
    """Real-valued spikes x ±1 weights, event-driven: every non-zero input adds ``±x`` to the outputs
    it reaches (the sign is a table lookup: no multiplication by a weight). Accumulates in float64.

    ``x`` ``[N, C, H, W]``, ``sign`` ``[KH, KW, C, O]`` (``±1``), ``out`` ``[N, O, OH, OW]``.
    """
    n_img, c_in, h_in, w_in = x.shape
    kh_n, kw_n, _, o_n = sign.shape
    oh_n, ow_n = out.shape[2], out.shape[3]
    for job in prange(n_img * oh_n):
        n = job // oh_n
        oh = job % oh_n
        acc = np.empty(o_n, np.float64)
        for ow in range(ow_n):
            acc[:] = 0.0
            for kh in range(kh_n):
                ih = oh * stride + kh - pad
                if ih < 0 or ih >= h_in:
                    continue
                for kw in range(kw_n):
                    iw = ow * stride + kw - pad
                    if iw < 0 or iw >= w_in:
                        continue
                    for c in range(c_in):
                        v = np.float64(x[n, c, ih, iw])
                        if v == 0.0:
                            continue
                        for o in range(o_n):
                            acc[o] += v * sign[kh, kw, c, o]  # v * ±1: a sign flip, exact
            for o in range(o_n):
                out[n, o, oh, ow] = acc[o]


@njit(parallel=True, cache=True)
def neuron_pack(x, consts, flags, out, packed):  # type: ignore[no-untyped-def]
    """Binary-spike neuron over ``x`` ``[T, B, C, H, W]`` that also packs its spikes.

    Same float operations as :func:`xorsnn.neurons.dynamics.multistep_bptt` (bitwise-equal spikes in ``out``
    ``[T, B, C, H, W]``); ``packed`` ``[T*B, H+2, W+2, Cw]`` receives the spikes in the layout of
    :func:`pack_spikes` with padding 1 (its border must be zero). ``x`` may have a leading size of 1
    for an input that is the same at every step (a static image's stem current): ``T`` is then
    ``out.shape[0]``. One task per ``(b, h)`` row; the row's membranes ``[C, W]`` stay in L1.
    """
    _, b_n, c_n, h_n, w_n = x.shape
    t_n = out.shape[0]
    t_step = 1 if x.shape[0] > 1 else 0
    cw_n = packed.shape[3]
    k, c, b, vth, vreset, vinit = consts[0], consts[1], consts[2], consts[3], consts[4], consts[5]
    use_c, use_k, k_one, use_b, hard = flags[0], flags[1], flags[2], flags[3], flags[4]
    zero = consts[0] - consts[0]
    one = zero + 1
    for job in prange(b_n * h_n):
        bi = job // h_n
        hi = job % h_n
        v = np.full((c_n, w_n), vinit, x.dtype)
        acc = np.empty((cw_n, w_n), np.uint64)  # word-major: the inner loop over W is contiguous
        for t in range(t_n):
            acc[:] = 0
            for ch in range(c_n):
                xr = x[t * t_step, bi, ch, hi]
                orow = out[t, bi, ch, hi]
                vr = v[ch]
                accw = acc[ch // 64]
                sh = np.uint64(ch % 64)
                for j in range(w_n):
                    fire, _, vn = _neuron_step(xr[j], vr[j], k, c, b, vth, vreset, use_c, use_k, k_one, use_b, hard)
                    vr[j] = vn
                    orow[j] = one if fire else zero
                    accw[j] |= np.uint64(fire) << sh
            n = t * b_n + bi
            for j in range(w_n):
                for q in range(cw_n):
                    packed[n, hi + 1, j + 1, q] = acc[q, j]


@njit(inline="always")
def _bn_and_add(a, sw, alpha, beta, res_kind, res_packed, res_float, n, oh, ow, one, zero, xv):  # type: ignore[no-untyped-def]
    """``xv[o] = BN(y[o])`` for the conv output ``y = 2 a - sw`` of one position, then the residual
    added before the neuron (``res_kind`` 1: a packed spike as +1/+0; 2: a float current)."""
    o_n = xv.shape[0]
    for o in range(o_n):
        xv[o] = np.float32(np.float64(2 * a[o] - sw) * alpha[o] + beta[o])
    if res_kind == 1:
        for q in range((o_n + 63) // 64):
            rw = res_packed[n, oh + 1, ow + 1, q]
            for j in range(min(64, o_n - 64 * q)):
                xv[64 * q + j] = xv[64 * q + j] + (one if (rw >> np.uint64(j)) & np.uint64(1) else zero)
    elif res_kind == 2:
        rf = res_float[n, oh, ow]
        for o in range(o_n):
            xv[o] = xv[o] + rf[o]


@njit(inline="always")
def _fire_and_pack(xv, vr, consts, flags, res_kind, res_packed, n, oh, ow, one, zero, out_packed, out_float,
                   write_float):  # type: ignore[no-untyped-def]
    """One neuron step per channel on ``xv`` (membranes ``vr``), spikes packed into ``out_packed``
    after the word-wise merge (``res_kind`` 3: OR, 4: XOR with ``res_packed``), optionally as floats."""
    o_n = xv.shape[0]
    k, c, b, vth, vreset = consts[0], consts[1], consts[2], consts[3], consts[4]
    for q in range((o_n + 63) // 64):
        word = np.uint64(0)
        for j in range(min(64, o_n - 64 * q)):
            o = 64 * q + j
            fire, _, vn = _neuron_step(xv[o], vr[o], k, c, b, vth, vreset, flags[0], flags[1], flags[2], flags[3],
                                       flags[4])
            vr[o] = vn
            word |= np.uint64(fire) << np.uint64(j)
        if res_kind == 3:
            word |= res_packed[n, oh + 1, ow + 1, q]
        elif res_kind == 4:
            word ^= res_packed[n, oh + 1, ow + 1, q]
        out_packed[n, oh + 1, ow + 1, q] = word
        if write_float:
            of = out_float[n, oh, ow]
            for j in range(min(64, o_n - 64 * q)):
                of[64 * q + j] = one if (word >> np.uint64(j)) & np.uint64(1) else zero


@njit(parallel=True, cache=True)
def fused_conv_bn_neuron(xp, wpos, stride, off, t_n, oh_n, ow_n, alpha, beta,
                         res_kind, res_packed, res_float, consts, flags, neuron_on,
                         out_packed, out_float, write_float):  # type: ignore[no-untyped-def]
    """Binary-spike x ±1 conv, then BN, an optional residual add and a multi-step neuron, in one pass.

    ``xp`` packed input ``[T*B, H+2p, W+2p, Cw]`` (image ``n = t*B + b``), ``wpos`` ``[KH, KW, Cw, O]``;
    ``off`` as in :func:`popcount_conv`. The integer conv output ``y`` goes through BN as
    ``float32(float64(y) * alpha[o] + beta[o])`` (the fused multiply-add of PyTorch's CPU batch norm;
    the caller verifies it against PyTorch for every possible ``y`` before using this kernel).
    Residual (``res_kind``), before the neuron: 0 none; 1 a binary spike read from ``res_packed``
    ``[T*B, OH+2, OW+2, Ow]`` (padding 1), added as ``+1.0`` / ``+0.0``; 2 the float ``res_float``
    ``[T*B, OH, OW, O]`` added; after the neuron, on the packed spikes: 3 OR with ``res_packed`` (the
    OA shortcut), 4 XOR with it (XOR ``merge`` blocks).
    With ``neuron_on`` the sum drives the neuron of :func:`neuron_pack` (same float ops, membranes
    ``[OW, O]`` kept in L1 across the ``T`` steps of a ``(b, oh)`` job) whose spikes are packed into
    ``out_packed`` ``[T*B, OH+2, OW+2, Ow]`` (zero border) and, with ``write_float``, written to
    ``out_float`` ``[T*B, OH, OW, O]`` (channels last); without it the BN(+residual) value itself goes
    to ``out_float``. Float32 only (``consts``, ``res_float``, ``out_float``); ``alpha``/``beta`` float64.
    """
    nt = xp.shape[0]
    b_n = nt // t_n
    o_n = wpos.shape[3]
    zero = consts[0] - consts[0]
    one = zero + 1
    for job in prange(b_n * oh_n):
        bi = job // oh_n
        oh = job % oh_n
        acc = np.zeros((ow_n, o_n), np.int64)
        s = np.zeros(ow_n, np.int64)
        v = np.full((ow_n, o_n), consts[5], np.float32)
        xv = np.empty(o_n, np.float32)
        for t in range(t_n):
            n = t * b_n + bi
            acc[:] = 0
            s[:] = 0
            _popcount_row(xp, wpos, n, oh, stride, off, acc, s)
            for ow in range(ow_n):
                _bn_and_add(acc[ow], s[ow], alpha, beta, res_kind, res_packed, res_float, n, oh, ow, one, zero, xv)
                if not neuron_on:
                    out_float[n, oh, ow, :] = xv
                    continue
                _fire_and_pack(xv, v[ow], consts, flags, res_kind, res_packed, n, oh, ow, one, zero, out_packed,
                               out_float, write_float)

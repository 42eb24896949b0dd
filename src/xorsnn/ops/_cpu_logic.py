"""Numba kernels of the fused polynomial OR / XOR (imported lazily; needs numba, extra ``deploy``).

Layout: ``a``, ``b``, ``g`` (``dL/d out``), ``out``, ``ga``, ``gb`` are flat C-contiguous arrays of one
dtype (float32 or float64) and one length ``N``. ``op`` is :data:`OR` (``a + b - a*b``) or :data:`XOR`
(``a + b - 2*a*b``).

Each kernel does, per element and in the same order and precision, the float operations torch
performs for the expressions in :mod:`xorsnn.ops.logic` and for their autograd backward, so the
results are bitwise equal to the torch path for any inputs, binary or not
(``tests/test_fused_logic.py``); ``fastmath`` stays off so that no multiply-add is contracted:

* OR forward ``(a + b) - a*b``; backward ``ga = g - g*b``, ``gb = g - g*a`` (the add's ``g`` plus
  the mul's ``(-g)*b``);
* XOR forward ``(a + b) - (a*2)*b``; backward ``ga = g - (g*b)*2``, ``gb = g - g*(a*2)`` (doubling written
  ``x + x``: exact like ``x*2``, and it keeps the arithmetic in the arrays' dtype -- a literal ``2`` would
  promote float32 to float64 in numba).

One call replaces 3-4 aten ops forward and ~6 backward (the adds, muls, negations and the
accumulation of the two gradient contributions). Work is split over chunks of :data:`CHUNK`
elements; :func:`forward` / :func:`backward` use the parallel build for more than one thread and
more than one chunk, as :mod:`xorsnn.neurons._cpu_kernels` does.
"""

from __future__ import annotations

from numba import njit, prange

from ..neurons._cpu_kernels import set_threads

__all__ = ["OR", "XOR", "CHUNK", "forward", "backward"]

OR, XOR = 0, 1

#: elements per parallel task
CHUNK = 16384


@njit(inline="always", cache=True, fastmath=False, error_model="numpy")
def _forward_chunk(a, b, out, op, lo, hi):  # type: ignore[no-untyped-def]
    """Elements ``lo:hi``, through slices: indexing the whole arrays inside a ``prange`` body keeps LLVM
    from vectorising the loop (the parallel build ran 8x slower than the serial one on one thread)."""
    a, b, out = a[lo:hi], b[lo:hi], out[lo:hi]
    if op == OR:
        for j in range(hi - lo):
            out[j] = (a[j] + b[j]) - a[j] * b[j]
    else:
        for j in range(hi - lo):
            out[j] = (a[j] + b[j]) - (a[j] + a[j]) * b[j]


@njit(inline="always", cache=True, fastmath=False, error_model="numpy")
def _backward_chunk(a, b, g, ga, gb, op, lo, hi):  # type: ignore[no-untyped-def]
    """Both gradients in one pass over ``g`` (elements ``lo:hi``, through slices as in :func:`_forward_chunk`)."""
    a, b, g, ga, gb = a[lo:hi], b[lo:hi], g[lo:hi], ga[lo:hi], gb[lo:hi]
    if op == OR:
        for j in range(hi - lo):
            gj = g[j]
            ga[j] = gj - gj * b[j]
            gb[j] = gj - gj * a[j]
    else:
        for j in range(hi - lo):
            gj = g[j]
            gbj = gj * b[j]
            ga[j] = gj - (gbj + gbj)
            gb[j] = gj - gj * (a[j] + a[j])


@njit(parallel=True, cache=True, fastmath=False, error_model="numpy")
def _forward_parallel(a, b, out, op):  # type: ignore[no-untyped-def]
    n = a.shape[0]
    for ci in prange((n + CHUNK - 1) // CHUNK):
        _forward_chunk(a, b, out, op, ci * CHUNK, min(n, ci * CHUNK + CHUNK))


@njit(cache=True, fastmath=False, error_model="numpy")
def _forward_serial(a, b, out, op):  # type: ignore[no-untyped-def]
    _forward_chunk(a, b, out, op, 0, a.shape[0])


@njit(parallel=True, cache=True, fastmath=False, error_model="numpy")
def _backward_parallel(a, b, g, ga, gb, op):  # type: ignore[no-untyped-def]
    n = a.shape[0]
    for ci in prange((n + CHUNK - 1) // CHUNK):
        _backward_chunk(a, b, g, ga, gb, op, ci * CHUNK, min(n, ci * CHUNK + CHUNK))


@njit(cache=True, fastmath=False, error_model="numpy")
def _backward_serial(a, b, g, ga, gb, op):  # type: ignore[no-untyped-def]
    _backward_chunk(a, b, g, ga, gb, op, 0, a.shape[0])


def forward(a, b, out, op: int, threads: int) -> None:  # type: ignore[no-untyped-def]
    """``out = OR(a, b)`` or ``XOR(a, b)`` (poly forms) on ``threads`` threads."""
    if threads <= 1 or a.shape[0] <= CHUNK:
        _forward_serial(a, b, out, op)
        return
    set_threads(threads)
    _forward_parallel(a, b, out, op)


def backward(a, b, g, ga, gb, op: int, threads: int) -> None:  # type: ignore[no-untyped-def]
    """``ga``, ``gb`` from ``g = dL/d out`` on ``threads`` threads."""
    if threads <= 1 or a.shape[0] <= CHUNK:
        _backward_serial(a, b, g, ga, gb, op)
        return
    set_threads(threads)
    _backward_parallel(a, b, g, ga, gb, op)

"""Backends of the multi-step neuron, and the choice between them.

One neuron definition (:class:`~xorsnn.neurons.dynamics.NeuronDynamics`), several implementations
of the same function ``[T, B, ...] -> ([T, B, ...], [B, ...])``:

==============  ==========================================================================
``"autograd"``  :func:`~xorsnn.neurons.dynamics.multistep_autograd`: the reference loop of
                ``single_step`` (the oracle); gradients also flow through the final state.
``"torch"``     :func:`~xorsnn.neurons.dynamics.multistep_bptt`: torch ops, a Python loop over
                ``T`` forward and a hand-written BPTT backward (``"bptt"`` is an alias).
``"cpu"``       :func:`multistep_fused_cpu`: one numba kernel call for the forward over all ``T``
                and one for the backward; CPU tensors, needs numba (extra ``deploy``).
``"triton"``    :func:`multistep_triton`: the same two kernels in Triton (``_triton_kernels.py``) for
                CUDA tensors; on a machine without a GPU they run on CPU tensors under
                ``TRITON_INTERPRET=1`` (how CI tests them). Needs ``triton``.
``"auto"``      ``"cpu"`` for CPU fp32/fp16/bf16 tensors of at least
                :data:`FUSED_CPU_MIN_NUMEL` elements when numba is importable and the surrogate has a
                kernel; else ``"torch"`` (CUDA included: the Triton kernels are opt-in until
                they have been measured on a GPU).
==============  ==========================================================================

The fused kernel saves only ``H`` (fp32, one tensor of the input's size) for the backward and
recomputes spikes and surrogate derivatives from it; fp16/bf16 inputs are integrated in fp32, like
the torch path. Spikes are bitwise equal to the torch reference, membranes and gradients equal to
it up to float rounding (``tests/test_neuron_kernels.py``).
"""

from __future__ import annotations

import functools
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch.autograd.function import once_differentiable

from .._checks import check_choice
from .dynamics import NeuronDynamics, multistep_autograd, multistep_bptt

__all__ = [
    "BACKENDS",
    "FUSED_CPU_MIN_NUMEL",
    "fused_cpu_available",
    "fused_cpu_supports",
    "resolve_backend",
    "multistep",
    "multistep_fused_cpu",
    "multistep_triton",
    "triton_available",
]

BACKENDS = ("auto", "torch", "cpu", "triton", "autograd", "bptt")

#: ``"auto"`` uses the fused CPU kernel from this many input elements (``T * B * ...``) on. Measured
#: (1 thread, fp32, forward + backward): no crossover -- the kernel is ~2.3x faster than the torch
#: path already at 64 elements (~105 us vs ~235 us of fixed cost) and ~5-10x at 10^5-10^6; the
#: floor only keeps toy tensors on the oracle path.
FUSED_CPU_MIN_NUMEL = 1024

_COMPUTE_DTYPES = (torch.float32, torch.float64)
_AUTO_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


@functools.cache
def _kernels() -> ModuleType | None:
    """The numba kernel module, or ``None`` when numba cannot be imported."""
    try:
        from . import _cpu_kernels
    except ImportError:
        return None
    return _cpu_kernels


@functools.cache
def _triton_kernels() -> ModuleType | None:
    """The Triton kernel module, or ``None`` when triton cannot be imported."""
    try:
        from . import _triton_kernels as kernels
    except ImportError:
        return None
    return kernels


def triton_available() -> bool:
    """Whether the Triton neuron kernels can be imported (``pip install triton``)."""
    return _triton_kernels() is not None


def _triton_interpreting() -> bool:
    import os

    return os.environ.get("TRITON_INTERPRET", "") not in ("", "0")


def fused_cpu_available() -> bool:
    """Whether the fused CPU kernels can run (numba importable)."""
    return _kernels() is not None


def fused_cpu_supports(d: NeuronDynamics) -> bool:
    """Whether the fused kernel implements ``d`` (its surrogate has a ``kernel_id`` in the dispatch)."""
    kern = _kernels()
    return kern is not None and d.surrogate.kernel_id in kern.KERNEL_SURROGATE_IDS


def _check_triton(x: torch.Tensor, d: NeuronDynamics) -> None:
    if not triton_available():
        raise ValueError("backend='triton' needs triton: pip install triton")
    if x.device.type != "cuda" and not (x.device.type == "cpu" and _triton_interpreting()):
        raise ValueError(f"backend='triton' needs a CUDA tensor (or TRITON_INTERPRET=1 for CPU tensors), got one on "
                         f"{x.device}")
    if x.dtype not in _AUTO_DTYPES:
        raise ValueError(f"backend='triton' integrates in fp32: x must be float32, float16 or bfloat16, got {x.dtype}")
    if d.surrogate.kernel_id is None:
        raise ValueError(f"backend='triton' has no kernel for surrogate {d.surrogate!r}; use backend='torch'")


def check_backend(backend: Any) -> str:
    """Validate a ``backend=`` argument; returns it. Raises a one-line ``ValueError``."""
    check_choice("backend", backend, BACKENDS)
    if backend == "triton" and not triton_available():
        raise ValueError("backend='triton' needs triton: pip install triton")
    if backend == "cpu" and not fused_cpu_available():
        raise ValueError("backend='cpu' needs numba: pip install 'xorsnn[deploy]' (or pip install numba)")
    return backend


def _is_compiling() -> bool:
    compiler = getattr(torch, "compiler", None)
    return bool(compiler is not None and hasattr(compiler, "is_compiling") and compiler.is_compiling())


def resolve_backend(backend: str, x: torch.Tensor, d: NeuronDynamics) -> str:
    """The implementation ``backend`` stands for on input ``x``: ``"autograd"``, ``"torch"``, ``"cpu"`` or
    ``"triton"``.

    Args:
        backend: one of :data:`BACKENDS` (``"bptt"`` resolves to ``"torch"``).
        x: the input currents ``[T, B, ...]``.
        d: the neuron constants.
    """
    if backend == "bptt":
        return "torch"
    if backend in ("autograd", "torch"):
        return backend
    if backend == "cpu":
        if x.device.type != "cpu":
            raise ValueError(f"backend='cpu' needs a CPU tensor, got one on {x.device}")
        if not fused_cpu_supports(d):
            raise ValueError(f"backend='cpu' has no kernel for surrogate {d.surrogate!r}; use backend='torch'")
        return "cpu"
    if backend == "triton":
        _check_triton(x, d)
        return "triton"
    if backend == "auto":
        # CUDA stays on "torch" until the Triton kernels have been measured on a GPU (benchmarks/gpu_check.py):
        # they are tested under the interpreter only, so they are opt-in (backend="triton") for now
        fused = (
            x.device.type == "cpu"
            and x.dtype in _AUTO_DTYPES
            and x.numel() >= FUSED_CPU_MIN_NUMEL
            and not _is_compiling()
            and fused_cpu_supports(d)
        )
        return "cpu" if fused else "torch"
    check_backend(backend)  # raises for unknown names
    raise AssertionError(backend)  # pragma: no cover


def multistep(
    x: torch.Tensor, d: NeuronDynamics, v0: torch.Tensor | None = None, backend: str = "auto"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Multi-step neuron on the chosen backend (see the module docstring).

    Args:
        x: input currents ``[T, B, ...]``.
        d: neuron constants.
        v0: initial post-reset membrane ``[B, ...]`` or ``None`` (rest).
        backend: one of :data:`BACKENDS`.

    Returns:
        ``(out, v_T)``: outputs ``[T, B, ...]`` in ``x.dtype`` and the final membrane ``[B, ...]``
        (detached except with ``"autograd"``).
    """
    impl = resolve_backend(backend, x, d)
    if impl == "cpu":
        return multistep_fused_cpu(x, d, v0)
    if impl == "triton":
        return multistep_triton(x, d, v0)
    if impl == "autograd":
        return multistep_autograd(x, d, v0)
    return multistep_bptt(x, d, v0)


# -- fused CPU kernel ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _kernel_args(d: NeuronDynamics, dtype: torch.dtype, store_h: bool, merge: int = 0
                 ) -> tuple[np.ndarray, np.ndarray]:
    """``(consts, flags)`` arrays of :mod:`xorsnn.neurons._cpu_kernels` for ``d`` (cached; not to be written)."""
    np_dtype = np.float32 if dtype == torch.float32 else np.float64
    consts = np.array(
        [d.k, d.c, d.b, d.v_threshold, d.v_reset, d.v_init, d.surrogate.param, 1.0], dtype=np_dtype
    )
    flags = np.array(
        [
            d.c != 1.0, d.k != 0.0, d.k == 1.0, d.b != 0.0, d.hard_reset, d.real_valued,
            d.detach_reset, d.threshold_grad, d.surrogate.kernel_id, store_h, merge, 0,
        ],
        dtype=np.int64,
    )
    return consts, flags


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return dtype if dtype in _COMPUTE_DTYPES else torch.float32


def _flat(t: torch.Tensor, dtype: torch.dtype, t_n: int) -> torch.Tensor:
    """``t`` ``[T, ...]`` as a C-contiguous ``[T, N]`` tensor of ``dtype`` (no copy when it already is)."""
    return t.detach().to(dtype).contiguous().view(t_n, -1)


def _input_grads(ctx: Any, grad_x: torch.Tensor, grad_v: torch.Tensor) -> tuple[Any, Any, None]:
    """The ``(x, v0, d)`` gradients of a fused neuron's backward from the kernel's ``[T, N]`` / ``[N]`` outputs."""
    gx = grad_x.view(ctx.x_shape).to(ctx.x_dtype) if ctx.needs_input_grad[0] else None
    gv0 = None
    if ctx.v0_dtype is not None and ctx.needs_input_grad[1]:
        gv0 = grad_v.view(ctx.x_shape[1:]).to(ctx.v0_dtype)
    return gx, gv0, None


def _save_forward(ctx: Any, d: NeuronDynamics, x: torch.Tensor, v0: torch.Tensor | None, v: torch.Tensor,
                  h_seq: torch.Tensor | None, s: torch.Tensor | None = None) -> torch.Tensor:
    """What a fused forward keeps for its backward (``h_seq`` ``[T, N]`` when a gradient is needed, and the
    OR operand ``s``); returns the final membrane ``v`` ``[N]`` in ``x``'s state shape and dtype
    (non-differentiable)."""
    if h_seq is not None:
        ctx.save_for_backward(h_seq, *(() if s is None else (s,)))
    ctx.d = d
    ctx.x_shape, ctx.x_dtype = x.shape, x.dtype
    ctx.v0_dtype = None if v0 is None else v0.dtype
    v_final = v.view(x.shape[1:]).to(x.dtype)
    ctx.mark_non_differentiable(v_final)
    ctx.set_materialize_grads(False)  # no zero tensor for the final state's (absent) gradient
    return v_final


def _saved_h(ctx: Any, grad_out: torch.Tensor | None) -> torch.Tensor | None:
    """The forward's ``h_seq`` ``[T, N]``, or ``None`` when the spikes did not reach the loss (gradients are
    not materialised, so ``grad_out`` is ``None``)."""
    return None if grad_out is None else ctx.saved_tensors[0]


_NO_MERGE = np.zeros((1, 1), dtype=np.float32)  # the kernels' placeholder for an absent merge operand (never read)

#: the merges of the spikes ``O`` with a shortcut ``s`` the fused kernels do: ``"or"`` is
#: ``spike_or(s, O)`` (poly form: ``s + O - s*O``), ``"add"`` is ``O + s`` (SEW's ADD)
MERGES = {"or": 1, "add": 2}


class _FusedCPUNeuron(torch.autograd.Function):
    """Whole-sequence neuron: one numba call forward, one backward (BPTT). With a shortcut ``s`` the
    output is its ``merge`` (:data:`MERGES`) with the spikes, done inside the same kernel calls."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, v0: torch.Tensor | None, d: NeuronDynamics,  # type: ignore[override]
                s: torch.Tensor | None = None, merge: str = "or"):
        kern = _kernels()
        assert kern is not None
        dtype = _compute_dtype(x.dtype)
        t_n, state_shape = x.shape[0], x.shape[1:]
        xs = _flat(x, dtype, t_n)
        n = xs.shape[1]
        np_dtype = np.float32 if dtype == torch.float32 else np.float64
        if v0 is None:  # numpy allocations: no aten call besides the kernel's (launch count of a step)
            v = torch.from_numpy(np.full((n,), d.v_init, dtype=np_dtype))
        else:
            v = v0.detach().to(dtype).expand(state_shape).reshape(n).clone()
        store_h = bool(ctx.needs_input_grad[0] or ctx.needs_input_grad[1] or ctx.needs_input_grad[3])
        h_seq = torch.empty((t_n, n) if store_h else (1, 1), dtype=dtype)
        out = torch.empty((t_n, n), dtype=dtype)
        ss = _NO_MERGE.astype(np_dtype, copy=False) if s is None else _flat(s, dtype, t_n).numpy()
        consts, flags = _kernel_args(d, dtype, store_h, 0 if s is None else MERGES[merge])
        kern.forward(xs.numpy(), v.numpy(), consts, flags, out.numpy(), h_seq.numpy(), ss, torch.get_num_threads())
        ctx.merge = None if s is None else merge
        # an OR's s (the block input) costs no memory: the branch's first conv saves it anyway
        return out.view(x.shape).to(x.dtype), _save_forward(ctx, d, x, v0, v, h_seq if store_h else None,
                                                             s if merge == "or" else None)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: torch.Tensor, _grad_v: torch.Tensor | None):  # type: ignore[override]
        h_seq = _saved_h(ctx, grad_out)
        if h_seq is None:
            return None, None, None, None, None
        kern = _kernels()
        assert kern is not None
        t_n, n = h_seq.shape
        g = _flat(grad_out, h_seq.dtype, t_n)
        grad_x = torch.empty_like(h_seq)
        np_dtype = np.float32 if h_seq.dtype == torch.float32 else np.float64
        grad_v = torch.from_numpy(np.zeros(n, dtype=np_dtype))
        s = ctx.saved_tensors[1] if len(ctx.saved_tensors) > 1 else None
        if s is None:
            ss = gs = _NO_MERGE.astype(np_dtype, copy=False)
        else:
            ss, gs = _flat(s, h_seq.dtype, t_n).numpy(), np.empty((t_n, n), dtype=np_dtype)
        consts, flags = _kernel_args(ctx.d, h_seq.dtype, True, 0 if s is None else MERGES["or"])
        kern.backward(h_seq.numpy(), g.numpy(), consts, flags, grad_x.numpy(), grad_v.numpy(), ss, gs,
                      torch.get_num_threads())
        return (*_input_grads(ctx, grad_x, grad_v), _shortcut_grad(ctx, grad_out, gs), None)


def _shortcut_grad(ctx: Any, grad_out: torch.Tensor, gs: Any) -> torch.Tensor | None:
    """``dL/ds`` of a merged fused neuron: the kernel's ``gs`` for an OR, ``dL/d out`` itself for an ADD."""
    if ctx.merge is None or not ctx.needs_input_grad[3]:
        return None
    if ctx.merge == "add":
        return grad_out
    grad = torch.from_numpy(gs) if isinstance(gs, np.ndarray) else gs
    return grad.view(ctx.x_shape).to(ctx.x_dtype)


def _check_shortcut(fn: str, x: torch.Tensor, shortcut: Any, merge: Any, dtypes: tuple[torch.dtype, ...]) -> None:
    """Refuse a ``shortcut`` that is not a tensor of ``x``'s shape, dtype and device, a dtype outside ``dtypes``
    (the merge is exact only where it is computed in the input dtype), or an unknown ``merge``."""
    if shortcut is None:
        return
    check_choice(f"{fn}: merge", merge, tuple(MERGES))
    if not isinstance(shortcut, torch.Tensor) or (shortcut.shape, shortcut.dtype, shortcut.device) != (
            x.shape, x.dtype, x.device):
        got = (f"{tuple(shortcut.shape)} {shortcut.dtype} on {shortcut.device}" if isinstance(shortcut, torch.Tensor)
               else type(shortcut).__name__)
        raise ValueError(f"{fn}: shortcut must be a tensor of x's shape, dtype and device "
                         f"{tuple(x.shape)} {x.dtype} on {x.device}, got {got}")
    if x.dtype not in dtypes:
        names = " or ".join(str(t).replace("torch.", "") for t in dtypes)
        raise ValueError(f"{fn}: a shortcut needs {names} inputs (the merge is exact in the input dtype), "
                         f"got {x.dtype}")


def multistep_fused_cpu(
    x: torch.Tensor, d: NeuronDynamics, v0: torch.Tensor | None = None, shortcut: torch.Tensor | None = None,
    merge: str = "or",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Multi-step neuron as one fused numba kernel per direction (same function as the reference).

    Args:
        x: input currents ``[T, B, ...]`` on the CPU, any float dtype (fp16/bf16 integrated in fp32),
            any strides.
        d: neuron constants (a surrogate with a kernel: see :func:`fused_cpu_supports`).
        v0: initial post-reset membrane ``[B, ...]`` (or broadcastable to it) or ``None``;
            gradients flow into ``v0``.
        shortcut: optional ``[T, B, ...]`` tensor (the shape and dtype of ``x``, float32 / float64) merged
            with the spikes inside the kernel: the output is then ``spike_or(shortcut, spikes)`` (poly form,
            ``merge="or"``) or ``spikes + shortcut`` (``merge="add"``), bitwise equal to that expression and
            its gradients; gradients flow into ``shortcut``.
        merge: ``"or"`` or ``"add"`` (:data:`MERGES`).

    Returns:
        ``(out, v_T)``: outputs ``[T, B, ...]`` in ``x.dtype`` and the final membrane ``[B, ...]``
        (detached).
    """
    _check_shortcut("multistep_fused_cpu", x, shortcut, merge, _COMPUTE_DTYPES)
    if x.device.type != "cpu":
        raise ValueError(f"multistep_fused_cpu: x must be a CPU tensor, got one on {x.device}")
    if not x.is_floating_point():
        raise ValueError(f"multistep_fused_cpu: x must be a floating-point tensor, got {x.dtype}")
    if x.dim() < 2:
        raise ValueError(f"multistep_fused_cpu: x must have shape [T, B, ...], got {tuple(x.shape)}")
    if not fused_cpu_supports(d):
        raise ValueError(f"multistep_fused_cpu: no kernel for surrogate {d.surrogate!r} (or numba missing)")
    return _FusedCPUNeuron.apply(x, v0, d, shortcut, merge)


# -- fused Triton kernel ------------------------------------------------------------------------


def _triton_flags(d: NeuronDynamics) -> dict[str, Any]:
    return {"USE_C": d.c != 1.0, "USE_K": d.k != 0.0, "K_ONE": d.k == 1.0, "USE_B": d.b != 0.0,
            "HARD": d.hard_reset, "REAL": d.real_valued}


class _FusedTritonNeuron(torch.autograd.Function):
    """Whole-sequence neuron: one Triton launch forward, one backward (BPTT); with ``s``, the output is
    its ``merge`` (:data:`MERGES`) with the spikes, done in the same launches."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, v0: torch.Tensor | None, d: NeuronDynamics,  # type: ignore[override]
                s: torch.Tensor | None = None, merge: str = "or"):
        kern = _triton_kernels()
        assert kern is not None
        t_n, state_shape = x.shape[0], x.shape[1:]
        xs = x.detach().contiguous().view(t_n, -1)
        n = xs.shape[1]
        if v0 is None:
            v = torch.full((n,), d.v_init, dtype=torch.float32, device=x.device)
        else:
            v = v0.detach().to(torch.float32).expand(state_shape).reshape(n).clone()
        store_h = bool(ctx.needs_input_grad[0] or ctx.needs_input_grad[1] or ctx.needs_input_grad[3])
        h_seq = torch.empty((t_n, n) if store_h else (1,), dtype=torch.float32, device=x.device)
        out = torch.empty((t_n, n), dtype=x.dtype, device=x.device)
        ss = xs if s is None else s.detach().contiguous().view(t_n, n)  # xs: a placeholder, never read
        grid = (max(1, -(-n // kern.BLOCK)),)
        kern.neuron_forward_kernel[grid](
            xs, v, out, h_seq, ss, t_n, n, d.k, d.c, d.b, d.v_threshold, d.v_reset, **_triton_flags(d),
            STORE_H=store_h, MERGE=0 if s is None else MERGES[merge], BLOCK=kern.BLOCK, enable_fp_fusion=False)
        ctx.merge = None if s is None else merge
        return out.view(x.shape), _save_forward(ctx, d, x, v0, v, h_seq if store_h else None,
                                                s if merge == "or" else None)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: torch.Tensor, _grad_v: torch.Tensor | None):  # type: ignore[override]
        h_seq = _saved_h(ctx, grad_out)
        if h_seq is None:
            return None, None, None, None, None
        kern = _triton_kernels()
        assert kern is not None
        d: NeuronDynamics = ctx.d
        t_n, n = h_seq.shape
        g = grad_out.detach().contiguous().view(t_n, n)
        grad_x = torch.empty_like(h_seq)
        grad_v = torch.zeros(n, dtype=torch.float32, device=h_seq.device)
        s = ctx.saved_tensors[1] if len(ctx.saved_tensors) > 1 else None
        ss = h_seq if s is None else s.detach().contiguous().view(t_n, n)  # h_seq: a placeholder, never read
        gs = h_seq if s is None else torch.empty_like(h_seq)
        flags = _triton_flags(d)
        grid = (max(1, -(-n // kern.BLOCK)),)
        kern.neuron_backward_kernel[grid](
            h_seq, g, grad_x, grad_v, ss, gs, t_n, n, d.k, d.c, d.v_threshold, d.v_reset, d.surrogate.param,
            USE_C=flags["USE_C"], HARD=flags["HARD"], REAL=flags["REAL"], DETACH=d.detach_reset,
            TGRAD=d.threshold_grad, SID=d.surrogate.kernel_id, MERGE=0 if s is None else MERGES["or"],
            BLOCK=kern.BLOCK, enable_fp_fusion=False)
        return (*_input_grads(ctx, grad_x, grad_v), _shortcut_grad(ctx, grad_out, gs), None)


def multistep_triton(
    x: torch.Tensor, d: NeuronDynamics, v0: torch.Tensor | None = None, shortcut: torch.Tensor | None = None,
    merge: str = "or",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Multi-step neuron as one fused Triton kernel per direction (same function as the reference).

    Args:
        x: input currents ``[T, B, ...]``: a CUDA tensor (a CPU one under ``TRITON_INTERPRET=1``),
            float32 / float16 / bfloat16 (integrated in fp32, ``H`` saved in fp32).
        d: neuron constants (a surrogate with a kernel).
        v0: initial post-reset membrane ``[B, ...]`` (or broadcastable) or ``None``; gradients flow into it.
        shortcut, merge: an optional float32 tensor of ``x``'s shape merged with the spikes inside the kernels,
            as :func:`multistep_fused_cpu`'s (``merge="or"``: ``spike_or(shortcut, spikes)``; ``"add"``).

    Returns:
        ``(out, v_T)``: outputs ``[T, B, ...]`` in ``x.dtype`` and the final membrane ``[B, ...]`` (detached).
    """
    if x.dim() < 2:
        raise ValueError(f"multistep_triton: x must have shape [T, B, ...], got {tuple(x.shape)}")
    _check_triton(x, d)
    _check_shortcut("multistep_triton", x, shortcut, merge, (torch.float32,))
    return _FusedTritonNeuron.apply(x, v0, d, shortcut, merge)

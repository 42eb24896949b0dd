"""Fused CPU OR / XOR (poly forms, numba) vs the torch expressions they replace.

The kernel must not change results: outputs and both gradients bitwise equal to ``a + b - a*b`` /
``a + b - 2*a*b`` and their autograd backward, binary spikes or not, fp32 and fp64; the choice
between kernel and torch ops is automatic (CPU, contiguous, same dtype, large enough, not compiling).
"""

import numpy as np
import pytest
import torch

import xorsnn
from xorsnn.ops import logic, spike_or, spike_xor

pytest.importorskip("numba")

_TORCH = {"or": lambda a, b: a + b - a * b, "xor": lambda a, b: a + b - 2 * a * b}
_FUSED = {"or": logic._or_poly, "xor": logic._xor_poly}
# sizes below, at and across the parallel chunk (16384); odd sizes leave a partial chunk
SHAPES = [(2, 1024), (2, 3, 1000, 7), (16385,), (3, 40000)]


def _pair(shape, dtype, binary, seed):
    g = torch.Generator().manual_seed(seed)
    a, b = torch.rand(shape, generator=g, dtype=dtype), torch.rand(shape, generator=g, dtype=dtype)
    if binary:
        a, b = (a > 0.6).to(dtype), (b > 0.4).to(dtype)
    return a, b


def _run(fn, a, b, grad_out, want=(True, True)):
    a, b = a.clone().requires_grad_(want[0]), b.clone().requires_grad_(want[1])
    out = fn(a, b)
    out.backward(grad_out)
    return out.detach(), a.grad, b.grad, out.grad_fn


@pytest.mark.parametrize("op", ["or", "xor"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("binary", [True, False], ids=["binary", "real"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_fused_equals_torch_bitwise(op, dtype, binary, shape):
    a, b = _pair(shape, dtype, binary, seed=len(shape))
    g = torch.randn(shape, dtype=dtype, generator=torch.Generator().manual_seed(7))
    out, ga, gb, fn = _run(_FUSED[op], a, b, g)
    ref, ra, rb, _ = _run(_TORCH[op], a, b, g)
    assert type(fn).__name__ == "_FusedPolyBackward"
    assert torch.equal(out, ref) and torch.equal(ga, ra) and torch.equal(gb, rb)


@pytest.mark.parametrize("op", ["or", "xor"])
@pytest.mark.parametrize("want", [(True, False), (False, True)])
def test_one_operand_needing_grad(op, want):
    a, b = _pair((2, 3000), torch.float32, False, seed=1)
    g = torch.randn(2, 3000)
    _, ga, gb, _ = _run(_FUSED[op], a, b, g, want)
    _, ra, rb, _ = _run(_TORCH[op], a, b, g, want)
    assert (ga is None) == (ra is None) and (gb is None) == (rb is None)
    got, exp = (ga, ra) if want[0] else (gb, rb)
    assert torch.equal(got, exp)


@pytest.mark.parametrize("op", ["or", "xor"])
def test_parallel_build_equals_serial(op):
    """The prange build (2 threads, several chunks) computes the same elements as the serial one."""
    kern = logic._kernels()
    code = kern.OR if op == "or" else kern.XOR
    rng = np.random.default_rng(0)
    a, b, g = (rng.random(50_001, dtype=np.float32) for _ in range(3))
    outs = []
    for threads in (1, 2):
        out, ga, gb = np.empty_like(a), np.empty_like(a), np.empty_like(a)
        kern.forward(a, b, out, code, threads)
        kern.backward(a, b, g, ga, gb, code, threads)
        outs.append((out, ga, gb))
    for x, y in zip(*outs, strict=True):
        assert np.array_equal(x, y)


@pytest.mark.parametrize("op", ["or", "xor"])
def test_gradcheck_fp64(op):
    a, b = _pair((2, 600), torch.float64, False, seed=3)
    a.requires_grad_()
    b.requires_grad_()
    assert torch.autograd.gradcheck(lambda x, y: logic._FusedPoly.apply(x, y, op), (a, b))


def test_spike_ops_choose_the_kernel_only_where_it_applies():
    a, b = _pair((2, 4, 16, 8, 8), torch.float32, True, seed=0)
    a.requires_grad_()
    assert type(spike_or(a, b).grad_fn).__name__ == "_FusedPolyBackward"
    assert type(spike_xor(a, b).grad_fn).__name__ == "_FusedPolyBackward"
    small = a[:, :1, :1, :1, :1].contiguous()
    assert type(spike_or(small, small.detach()).grad_fn).__name__ != "_FusedPolyBackward"  # < 1024 elements
    strided = a.transpose(0, 1)
    assert type(spike_or(strided, b.transpose(0, 1)).grad_fn).__name__ != "_FusedPolyBackward"
    half = a.detach().half().requires_grad_()
    assert type(spike_xor(half, b.half()).grad_fn).__name__ != "_FusedPolyBackward"
    assert type(spike_or(a, b, "max").grad_fn).__name__ != "_FusedPolyBackward"  # only the poly forms


def test_without_numba_the_torch_ops_run(monkeypatch):
    monkeypatch.setattr(logic, "_kernels", lambda: None)
    a, b = _pair((2, 4096), torch.float32, True, seed=0)
    a.requires_grad_()
    out = spike_xor(a, b)
    assert type(out.grad_fn).__name__ != "_FusedPolyBackward"
    assert torch.equal(out, _TORCH["xor"](a, b))


def test_xoresnet_step_identical_with_and_without_the_kernel(monkeypatch):
    """A whole XOResNet training step does not depend on the logic kernel: the forward exactly, every gradient up
    to float rounding (the kernel hands autograd one summed gradient per operand where the torch ops hand two,
    so the block input's contributions are added in another order)."""
    x = torch.rand(2, 1, 16, 16)
    calls = []
    apply = logic._FusedPoly.apply
    monkeypatch.setattr(logic._FusedPoly, "apply", lambda *a: (calls.append(a[-1]), apply(*a))[1])
    results = []
    for threshold in (logic.FUSED_LOGIC_MIN_NUMEL, 10**12):
        monkeypatch.setattr(logic, "FUSED_LOGIC_MIN_NUMEL", threshold)
        torch.manual_seed(0)
        model = xorsnn.create_model("xoresnet14", T=2, in_channels=1, zero_init_residual=False, xor_prev="shortcut")
        out = model(x)
        out.square().sum().backward()
        results.append((out.detach(), [p.grad for p in model.parameters()]))
    (o1, g1), (o2, g2) = results
    assert "xor" in calls  # the first step ran the XORs on the kernel (the ORs run inside the neuron kernels)
    assert torch.equal(o1, o2)
    for p, q in zip(g1, g2, strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6 * float(q.abs().max()))

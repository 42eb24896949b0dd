"""The Triton neuron kernels, run on the CPU under TRITON_INTERPRET=1: equal to the torch reference.

Spikes exactly; membranes and gradients to 1e-6 in fp32; over T in {1, 2, 4, 8}, shapes, every
neuron form, reset, surrogate and input dtype. On a GPU the same kernels run compiled
(``benchmarks/gpu_check.py``); here the interpreter evaluates them with NumPy.
"""

import os

os.environ.setdefault("TRITON_INTERPRET", "1")  # before the kernels are first imported (triton.jit reads it)

import pytest  # noqa: E402
import torch  # noqa: E402

pytest.importorskip("triton")

from xorsnn.neurons import LIF, neuron_factory  # noqa: E402
from xorsnn.neurons.backends import multistep_triton, resolve_backend  # noqa: E402
from xorsnn.neurons.dynamics import multistep_autograd, multistep_bptt  # noqa: E402

NEURONS = {
    "lif_tau2_atan": {"tau": 2.0},
    "lif_decay_rect": {"tau": None, "decay": 0.25, "v_threshold": 0.5, "surrogate": {"name": "rectangle"}},
    "if_sigmoid": {"tau": None, "surrogate": "sigmoid"},
    "sltt_soft_triangle": {"tau": 1.1, "decay_input": False, "reset": "soft", "surrogate": {"name": "triangle"}},
    "reset_grad": {"tau": 2.0, "detach_reset": False, "v_reset": -0.2},
    "soft_reset_grad": {"tau": 1.5, "reset": "soft", "detach_reset": False, "surrogate": "sigmoid"},
    "real_spikes": {"tau": None, "decay": 0.25, "v_threshold": 0.25, "real_valued": True},
    "real_no_jump": {"tau": 2.0, "real_valued": True, "threshold_grad": False, "surrogate": "triangle"},
}


def _dyn(name):
    return neuron_factory({"type": "lif", **NEURONS[name]})().dynamics


@pytest.mark.parametrize("name", list(NEURONS))
@pytest.mark.parametrize("T", [1, 2, 4, 8])
def test_equals_the_reference_fp32(name, T):
    d = _dyn(name)
    torch.manual_seed(T)
    x = (torch.randn(T, 3, 5, 7) * 1.5 + 0.3).requires_grad_(True)
    ref, v_ref = multistep_autograd(x, d)
    out, v = multistep_triton(x, d)
    assert torch.equal(out, ref), "spikes must be bitwise equal"
    assert float(ref.detach().abs().sum()) > 0, "the neurons must fire"
    torch.testing.assert_close(v, v_ref.detach(), rtol=0, atol=1e-6)
    g = torch.randn_like(ref)
    (gr,) = torch.autograd.grad(ref, x, g)
    (go,) = torch.autograd.grad(out, x, g)
    torch.testing.assert_close(go, gr, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs_are_integrated_in_fp32(dtype):
    d = _dyn("lif_tau2_atan")
    torch.manual_seed(0)
    x = (torch.randn(4, 2, 300) * 1.5).to(dtype).requires_grad_(True)  # 600 neurons: three blocks, a ragged tail
    ref, _ = multistep_bptt(x, d)  # the torch path integrates fp16/bf16 in fp32 too
    out, _ = multistep_triton(x, d)
    assert out.dtype == dtype and torch.equal(out, ref)
    g = torch.randn_like(ref)
    (gr,) = torch.autograd.grad(ref, x, g)
    (go,) = torch.autograd.grad(out, x, g)
    assert go.dtype == dtype and torch.equal(go, gr)


def test_initial_state_and_its_gradient():
    d = _dyn("sltt_soft_triangle")
    torch.manual_seed(1)
    x = torch.randn(5, 2, 9, requires_grad=True)
    v0 = (torch.randn(2, 9) * 0.5).requires_grad_(True)
    ref, v_ref = multistep_autograd(x, d, v0)
    out, v = multistep_triton(x, d, v0)
    assert torch.equal(out, ref)
    torch.testing.assert_close(v, v_ref.detach(), rtol=0, atol=1e-6)
    g = torch.randn_like(ref)
    gr = torch.autograd.grad(ref, (x, v0), g)
    go = torch.autograd.grad(out, (x, v0), g)
    for a, b in zip(go, gr, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


def test_a_neuron_module_with_backend_triton_trains_like_the_torch_one():
    torch.manual_seed(2)
    x = torch.randn(4, 8, 6, 5, 5)
    a, b = LIF(tau=2.0, backend="triton"), LIF(tau=2.0, backend="torch")
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ya, yb = a(xa), b(xb)
    assert torch.equal(ya, yb)
    (ya * torch.arange(ya.numel()).view_as(ya)).sum().backward()
    (yb * torch.arange(yb.numel()).view_as(yb)).sum().backward()
    torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-6, atol=1e-5)


def test_backend_choice():
    d = _dyn("lif_tau2_atan")
    x = torch.randn(2, 3, 4)
    assert resolve_backend("triton", x, d) == "triton"  # a CPU tensor, because TRITON_INTERPRET=1
    assert resolve_backend("auto", x, d) != "triton"  # opt-in: never chosen automatically yet
    with pytest.raises(ValueError, match="integrates in fp32: x must be float32, float16 or bfloat16"):
        resolve_backend("triton", x.double(), d)


@pytest.mark.parametrize("merge", ["or", "add"])
@pytest.mark.parametrize("name", list(NEURONS))
@pytest.mark.parametrize("T", [1, 4])
def test_merge_equals_neuron_then_merge(name, T, merge):
    """``shortcut``: the output and dL/ds bitwise equal to ``s + O - s*O`` / ``O + s`` after the neuron, dL/dx
    within 1e-6."""
    d = _dyn(name)
    torch.manual_seed(T)
    x = (torch.randn(T, 3, 5, 7) * 1.5 + 0.3).requires_grad_(True)
    s = (torch.rand(T, 3, 5, 7) > 0.5).float().requires_grad_(True)
    o_ref, _ = multistep_bptt(x, d)
    ref = s + o_ref - s * o_ref if merge == "or" else o_ref + s
    out, _ = multistep_triton(x, d, None, s, merge)
    assert torch.equal(out, ref)
    g = torch.randn_like(ref)
    gx_ref, gs_ref = torch.autograd.grad(ref, (x, s), g)
    gx, gs = torch.autograd.grad(out, (x, s), g)
    assert torch.equal(gs, gs_ref)
    torch.testing.assert_close(gx, gx_ref, rtol=1e-6, atol=1e-6)


def test_fire_or_and_fire_add_merge_in_the_triton_kernel():
    neuron = LIF(backend="triton")
    x = torch.randn(2, 4, 300)
    s = (torch.rand(2, 4, 300) > 0.5).float()
    assert neuron._merge_kernel(x, s) is multistep_triton
    assert neuron._merge_kernel(x.half(), s.half()) is None  # merged only where exact: fp32
    assert torch.equal(neuron.fire_or(x, s), s + neuron(x) - s * neuron(x))
    assert torch.equal(neuron.fire_add(x, s), neuron(x) + s)

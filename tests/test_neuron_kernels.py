"""Fused CPU neuron kernel (numba) vs the torch reference; backend choice; live neuron attributes.

The kernel must not change results: spikes (and the forward membrane) exactly equal to the torch
path, gradients within 1e-6 in fp32 (and 1e-10 in fp64) of both torch implementations.
Tests that need numba skip cleanly without it.
"""

import itertools
import math

import numpy as np
import pytest
import torch

from xorsnn.neurons import (
    IF,
    LIF,
    SURROGATES,
    RealSpikeLIF,
    SpikingNeuron,
    get_surrogate,
    make_neuron,
    multistep,
    multistep_autograd,
    multistep_bptt,
    multistep_fused_cpu,
    resolve_backend,
)
from xorsnn.neurons import backends as backends_mod
from xorsnn.neurons.backends import FUSED_CPU_MIN_NUMEL, fused_cpu_available

needs_numba = pytest.mark.skipif(not fused_cpu_available(), reason="numba is not installed")

# every neuron form: tau (with/without decay_input, v_reset != 0), decay, IF; hard/soft reset;
# detach_reset on/off; real-valued spikes with/without the threshold term
OPTIONS = [
    dict(),
    dict(tau=1.5, decay_input=False, v_reset=-0.3, detach_reset=False),
    dict(tau=None, decay=0.25, v_threshold=0.5),
    dict(tau=None, decay=0.0, v_threshold=0.7),
    dict(tau=None, reset="soft"),  # IF
    dict(tau=3.0, reset="soft", detach_reset=False, v_threshold=0.3),
    dict(tau=None, decay=0.5, real_valued=True, v_threshold=0.25),
    dict(tau=2.0, real_valued=True, threshold_grad=False, detach_reset=False),
    dict(tau=None, decay=0.25, real_valued=True, detach_reset=False, v_reset=0.1),
]
SURROGATE_SPECS = [
    {"name": "atan", "alpha": 2.5},
    {"name": "sigmoid", "alpha": 4.0},
    {"name": "triangle", "gamma": 0.7},
    {"name": "rectangle", "width": 1.3},
]
SHAPES = [(3, 5), (2, 3, 7, 11), (4100,)]  # per-step shapes; 4100 crosses a kernel chunk (4096)
FP32 = dict(rtol=1e-6, atol=1e-6)


def _opt_id(o):
    return ",".join(f"{k}={v}" for k, v in o.items()) or "default"


def _dyn(options, surrogate):
    return LIF(**options, surrogate=surrogate).dynamics


def _inputs(T, shape, dtype=torch.float32, noncontiguous=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    if noncontiguous:  # a strided view: transposed storage, every other element of the last dim
        full = torch.randn(*reversed((T, *shape[:-1], 2 * shape[-1])), generator=g) * 1.5 + 0.4
        x = full.permute(*reversed(range(len(shape) + 1)))[..., ::2]
        assert not x.is_contiguous() and x.shape == (T, *shape)
    else:
        x = torch.randn(T, *shape, generator=g) * 1.5 + 0.4
    return x.to(dtype)


def _run(fn, x, d, v0, g):
    """Outputs, final state and the gradients of ``sum(out * g)`` w.r.t. ``x`` (and ``v0``)."""
    x = x.detach().clone().requires_grad_()
    v0 = None if v0 is None else v0.detach().clone().requires_grad_()
    out, v = fn(x, d, v0)
    inputs = [x] + ([v0] if v0 is not None else [])
    grads = torch.autograd.grad((out.float() * g).sum(), inputs, allow_unused=True)  # decay=0 ignores v0
    grads = tuple(torch.zeros_like(i) if gr is None else gr for i, gr in zip(inputs, grads, strict=True))
    return out.detach(), v.detach(), grads


# -- kernel vs reference ---------------------------------------------------------------------------


@needs_numba
@pytest.mark.parametrize("surrogate", SURROGATE_SPECS, ids=lambda s: s["name"])
@pytest.mark.parametrize("options", OPTIONS, ids=_opt_id)
@pytest.mark.parametrize("T", [1, 2, 4, 8])
def test_fused_cpu_matches_torch_reference_fp32(T, options, surrogate):
    d = _dyn(options, surrogate)
    fired = 0.0
    for i, (shape, noncontig, with_v0) in enumerate(itertools.product(SHAPES, [False, True], [False, True])):
        x = _inputs(T, shape, noncontiguous=noncontig, seed=i)
        v0 = torch.randn(shape) * 0.5 if with_v0 else None
        g = torch.randn(x.shape)
        out, v, grads = _run(multistep_fused_cpu, x, d, v0, g)
        out_ref, v_ref, grads_ref = _run(multistep_bptt, x, d, v0, g)
        out_ag, _, grads_ag = _run(multistep_autograd, x, d, v0, g)
        assert torch.equal(out, out_ref), "fused forward must be bitwise equal to the torch path"
        assert torch.equal(out, out_ag)
        torch.testing.assert_close(v, v_ref, **FP32)
        for a, b, c in zip(grads, grads_ref, grads_ag, strict=True):
            torch.testing.assert_close(a, b, **FP32)
            torch.testing.assert_close(a, c, **FP32)
        fired += float((out != 0).float().mean())
    assert fired > 0, "the test inputs should make the neuron fire"


@needs_numba
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("options", OPTIONS, ids=_opt_id)
@pytest.mark.parametrize("T", [1, 2, 4, 8])
def test_fused_cpu_half_inputs_accumulate_in_fp32(T, options, dtype):
    d = _dyn(options, "atan")
    for i, (shape, with_v0) in enumerate(itertools.product(SHAPES[:2], [False, True])):
        x = _inputs(T, shape, dtype=dtype, seed=i)
        v0 = (torch.randn(shape) * 0.5).to(dtype) if with_v0 else None
        g = torch.randn(x.shape)
        out, v, grads = _run(multistep_fused_cpu, x, d, v0, g)
        out_ref, v_ref, grads_ref = _run(multistep_bptt, x, d, v0, g)
        assert out.dtype == dtype and v.dtype == dtype
        assert torch.equal(out, out_ref)
        assert torch.equal(v, v_ref)
        for a, b in zip(grads, grads_ref, strict=True):  # fp32 grads within 1e-6, then one rounding to the input dtype
            assert a.dtype == dtype
            torch.testing.assert_close(a.float(), b.float(), rtol=2**-7, atol=1e-6)


@needs_numba
@pytest.mark.parametrize("surrogate", SURROGATE_SPECS, ids=lambda s: s["name"])
@pytest.mark.parametrize("options", OPTIONS, ids=_opt_id)
def test_fused_cpu_fp64_gradients_match_autograd_oracle(options, surrogate):
    """Gradcheck-style: the kernel's BPTT against autograd through the reference loop, in fp64."""
    d = _dyn(options, surrogate)
    x = _inputs(8, (3, 7), dtype=torch.float64)
    v0 = torch.randn(3, 7, dtype=torch.float64) * 0.5
    g = torch.randn(x.shape, dtype=torch.float64)
    out, v, grads = _run(multistep_fused_cpu, x, d, v0, g)
    out_ag, v_ag, grads_ag = _run(multistep_autograd, x, d, v0, g)
    assert torch.equal(out, out_ag)
    torch.testing.assert_close(v, v_ag, rtol=1e-12, atol=1e-12)
    for a, b in zip(grads, grads_ag, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@needs_numba
@pytest.mark.parametrize("options", OPTIONS, ids=_opt_id)
def test_fused_cpu_spikes_exact_at_the_threshold(options):
    """Inputs that land exactly on, and one ulp around, ``V_th``: the kernel fires exactly like torch."""
    d = _dyn(options, "atan")
    vth = np.float32(d.v_threshold)
    # x such that c * x is within a few ulp of V_th from rest; repeated over T so the state matters too
    base = np.float32(vth - np.float32(d.b) - np.float32(d.k) * np.float32(d.v_init)) / np.float32(d.c)
    vals = [base]
    for _ in range(3):
        vals = [np.nextafter(vals[0], np.float32(-np.inf)), *vals, np.nextafter(vals[-1], np.float32(np.inf))]
    x = torch.tensor(np.array(vals, dtype=np.float32)).repeat(4, 50, 1)  # [T=4, 50, 7]
    out, v = multistep_fused_cpu(x, d)
    out_ref, v_ref = multistep_bptt(x, d)
    assert torch.equal(out, out_ref) and torch.equal(v, v_ref)


@needs_numba
def test_fused_cpu_only_v0_requires_grad_and_no_grad_mode():
    d = _dyn({}, "atan")
    x = _inputs(4, (3, 5))
    v0 = (torch.randn(3, 5) * 0.5).requires_grad_()
    out, _ = multistep_fused_cpu(x, d, v0)
    (gv,) = torch.autograd.grad(out.sum(), v0)
    out_r, _ = multistep_bptt(x, d, v0)
    (gv_r,) = torch.autograd.grad(out_r.sum(), v0)
    torch.testing.assert_close(gv, gv_r, **FP32)
    with torch.no_grad():
        out_ng, v_ng = multistep_fused_cpu(x, d)
    assert not out_ng.requires_grad
    assert torch.equal(out_ng, multistep_bptt(x, d)[0])


@needs_numba
def test_fused_kernel_compiles_fp32_once():
    """Shapes, options and surrogates are runtime arguments: one fp32 specialisation per kernel."""
    from xorsnn.neurons import _cpu_kernels as K

    for options, s in zip(OPTIONS, itertools.cycle(SURROGATE_SPECS)):
        for shape in SHAPES:
            x = _inputs(2, shape).requires_grad_()
            out, _ = multistep_fused_cpu(x, _dyn(options, s))
            out.sum().backward()
    compiled = 0
    for kernel in (K.neuron_forward, K.neuron_backward, K.neuron_forward_serial, K.neuron_backward_serial):
        fp32 = [sig for sig in kernel.signatures if str(sig[0].dtype) == "float32"]
        assert len(fp32) <= 1, kernel.signatures
        compiled += len(fp32)
    assert compiled >= 2


@needs_numba
def test_fused_cpu_argument_errors():
    d = _dyn({}, "atan")
    with pytest.raises(ValueError, match="x must have shape"):
        multistep_fused_cpu(torch.zeros(3), d)
    with pytest.raises(ValueError, match="floating-point"):
        multistep_fused_cpu(torch.zeros(2, 3, dtype=torch.int64), d)


# -- surrogates: one source of truth ---------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SURROGATES))
def test_scalar_derivative_matches_tensor_derivative(name):
    """``scalar_derivative`` (what the kernel compiles) equals ``derivative`` (the torch oracle)."""
    for param in (0.5, 1.0, 3.0):
        s = get_surrogate(name, **{SURROGATES[name].param_name: param})
        x = torch.linspace(-4, 4, 801, dtype=torch.float64) + 1e-4  # off the rectangle's edges
        ref = s.derivative(x)
        scalar = torch.tensor([type(s).scalar_derivative(float(v), s.param) for v in x], dtype=torch.float64)
        torch.testing.assert_close(scalar, ref, rtol=1e-12, atol=1e-12)
    assert isinstance(SURROGATES[name].kernel_id, int)
    assert len({cls.kernel_id for cls in SURROGATES.values()}) == len(SURROGATES)


@needs_numba
def test_kernel_dispatch_covers_every_registered_surrogate():
    from xorsnn.neurons import _cpu_kernels as K

    assert {cls.kernel_id for cls in SURROGATES.values()} == K.KERNEL_SURROGATE_IDS


def test_sigmoid_scalar_derivative_does_not_overflow():
    assert SURROGATES["sigmoid"].scalar_derivative(-1e4, 4.0) == 0.0
    assert math.isfinite(SURROGATES["sigmoid"].scalar_derivative(1e4, 4.0))


# -- backend selection -----------------------------------------------------------------------------


@needs_numba
def test_auto_backend_picks_fused_cpu_for_large_cpu_float_tensors():
    d = _dyn({}, "atan")
    big = torch.zeros(2, FUSED_CPU_MIN_NUMEL)
    assert resolve_backend("auto", big, d) == "cpu"
    assert resolve_backend("auto", big.bfloat16(), d) == "cpu"
    assert resolve_backend("auto", torch.zeros(2, 3), d) == "torch"  # too small to pay
    assert resolve_backend("auto", big.double(), d) == "torch"  # fp64 stays on the oracle path
    assert resolve_backend("torch", big, d) == resolve_backend("bptt", big, d) == "torch"
    assert resolve_backend("autograd", big, d) == "autograd"


class _NoKernelSurrogate(type(get_surrogate("atan"))):
    kernel_id = None


@needs_numba
def test_surrogate_without_kernel_falls_back_or_raises():
    d = LIF(surrogate=_NoKernelSurrogate(2.0)).dynamics
    x = torch.zeros(2, FUSED_CPU_MIN_NUMEL)
    assert resolve_backend("auto", x, d) == "torch"
    with pytest.raises(ValueError, match="no kernel for surrogate"):
        resolve_backend("cpu", x, d)


def test_without_numba_auto_uses_torch_and_cpu_raises(monkeypatch):
    monkeypatch.setattr(backends_mod, "_kernels", lambda: None)
    d = _dyn({}, "atan")
    x = torch.randn(2, FUSED_CPU_MIN_NUMEL)
    assert resolve_backend("auto", x, d) == "torch"
    assert torch.equal(LIF()(x), multistep_bptt(x, d)[0])
    with pytest.raises(ValueError, match="backend='cpu' needs numba"):
        LIF(backend="cpu")


def test_backend_argument_errors():
    with pytest.raises(ValueError, match="backend must be one of"):
        LIF(backend="gpu")
    from xorsnn.neurons.backends import triton_available

    if not triton_available():
        with pytest.raises(ValueError, match=r"backend='triton' needs triton: pip install triton"):
            LIF(backend="triton")
    n = LIF()
    with pytest.raises(ValueError, match="backend must be one of"):
        n.backend = "nope"
    assert n.backend == "auto"


@needs_numba
@pytest.mark.parametrize("backend", ["auto", "cpu", "torch", "autograd"])
def test_neuron_backends_agree_and_spec_sets_backend(backend):
    x = _inputs(4, (8, 16, 9)).requires_grad_()
    ref = LIF(backend="torch")
    n = make_neuron({"type": "lif", "backend": backend})
    assert n.backend == backend
    out, out_ref = n(x), ref(x)
    assert torch.equal(out, out_ref)
    (g,) = torch.autograd.grad(out.sum(), x)
    (g_ref,) = torch.autograd.grad(out_ref.sum(), x)
    torch.testing.assert_close(g, g_ref, **FP32)
    torch.testing.assert_close(multistep(x, ref.dynamics, backend=backend)[0], out_ref, rtol=0, atol=0)


@needs_numba
def test_stateful_neuron_on_fused_backend_matches_torch():
    x = _inputs(6, (4, 300))
    a, b = LIF(stateful=True, backend="cpu"), LIF(stateful=True, backend="torch")
    for chunk in x.split(2):
        assert torch.equal(a(chunk), b(chunk))
    torch.testing.assert_close(a._state, b._state, **FP32)


# -- neuron attributes take effect or raise ------------------------------------------------------


def test_changing_neuron_attributes_takes_effect():
    x = _inputs(4, (3, 50))
    n = LIF(tau=2.0, backend="torch")
    n.tau = 10.0
    assert n.dynamics == LIF(tau=10.0).dynamics
    assert torch.equal(n(x), LIF(tau=10.0, backend="torch")(x))
    n.v_threshold = 0.5
    n.surrogate = "sigmoid"
    n.reset = "soft"
    n.detach_reset = False
    assert n.dynamics == LIF(tau=10.0, v_threshold=0.5, surrogate="sigmoid", reset="soft",
                             detach_reset=False).dynamics
    n.tau = None
    n.decay = 0.25
    assert n.dynamics == LIF(tau=None, decay=0.25, v_threshold=0.5, surrogate="sigmoid", reset="soft",
                             detach_reset=False).dynamics
    n.stateful = True  # not part of the dynamics; still settable (online training flips it)
    assert n.stateful


def test_invalid_attribute_changes_raise_and_leave_the_neuron_unchanged():
    n = LIF(tau=2.0)
    before = n.dynamics
    for name, value, match in [
        ("tau", 0.5, "tau must be >= 1"),
        ("decay", 0.25, "either as tau or as decay"),
        ("v_threshold", -1.0, "v_threshold must be > 0"),
        ("reset", "sometimes", "reset must be"),
        ("surrogate", "nope", "unknown name"),
    ]:
        with pytest.raises(ValueError, match=match):
            setattr(n, name, value)
    assert n.dynamics == before and n.tau == 2.0
    with pytest.raises(AttributeError, match="dynamics is derived"):
        n.dynamics = before
    with pytest.raises(ValueError, match="IF has no leak"):
        IF().tau = 2.0
    with pytest.raises(ValueError, match="RealSpikeLIF always emits real-valued spikes"):
        RealSpikeLIF().real_valued = False


def test_triton_backend_refuses_a_cpu_tensor_outside_the_interpreter(monkeypatch):
    pytest.importorskip("triton")
    from xorsnn.neurons.backends import resolve_backend

    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(ValueError, match=r"needs a CUDA tensor \(or TRITON_INTERPRET=1 for CPU tensors\)"):
        resolve_backend("triton", torch.randn(2, 3), LIF().dynamics)


# -- the OR merge inside the kernel (OA / XOR identity blocks) -----------------------------------


def _or_grads(x, s, g, fn):
    x, s = x.detach().clone().requires_grad_(), s.detach().clone().requires_grad_()
    out = fn(x, s)
    return (out.detach(), *torch.autograd.grad((out * g).sum(), (x, s)))


_MERGE_EXPR = {"or": lambda s, o: s + o - s * o, "add": lambda s, o: o + s}


@needs_numba
@pytest.mark.parametrize("merge", ["or", "add"])
@pytest.mark.parametrize("surrogate", SURROGATE_SPECS, ids=lambda s: s["name"])
@pytest.mark.parametrize("options", OPTIONS, ids=_opt_id)
@pytest.mark.parametrize("T", [1, 2, 4, 8])
def test_fused_merge_equals_neuron_then_merge(T, options, surrogate, merge):
    """``shortcut=s``: the output and dL/ds bitwise equal to ``s + O - s*O`` (OR) / ``O + s`` (ADD) after the
    neuron, dL/dx bitwise equal to the unmerged kernel's BPTT of that expression and within 1e-6 of the torch
    path's."""
    d = _dyn(options, surrogate)
    expr = _MERGE_EXPR[merge]
    for i, (shape, binary) in enumerate(itertools.product(SHAPES, [True, False])):
        x = _inputs(T, shape, seed=i)
        s = torch.rand(x.shape, generator=torch.Generator().manual_seed(i))
        s = (s > 0.5).float() if binary else s
        g = torch.randn(x.shape)
        merged = _or_grads(x, s, g, lambda x, s: multistep_fused_cpu(x, d, None, s, merge)[0])
        two_kernels = _or_grads(x, s, g, lambda x, s: expr(s, multistep_fused_cpu(x, d)[0]))
        torch_path = _or_grads(x, s, g, lambda x, s: expr(s, multistep_bptt(x, d)[0]))
        for a, b in zip(merged, two_kernels, strict=True):
            assert torch.equal(a, b)
        assert torch.equal(merged[0], torch_path[0]) and torch.equal(merged[2], torch_path[2])
        torch.testing.assert_close(merged[1], torch_path[1], **FP32)


@needs_numba
def test_fused_merge_refuses_a_mismatched_operand():
    d = _dyn({}, "atan")
    x = _inputs(2, (3, 700))
    with pytest.raises(ValueError, match="shortcut must be a tensor of x's shape"):
        multistep_fused_cpu(x, d, None, torch.zeros(2, 3, 699))
    with pytest.raises(ValueError, match="shortcut must be a tensor of x's shape"):
        multistep_fused_cpu(x, d, None, torch.zeros(x.shape, dtype=torch.float64))
    with pytest.raises(ValueError, match="a shortcut needs float32 or float64"):
        multistep_fused_cpu(x.bfloat16(), d, None, torch.zeros(x.shape, dtype=torch.bfloat16))
    with pytest.raises(ValueError, match="merge must be one of"):
        multistep_fused_cpu(x, d, None, torch.zeros(x.shape), "xor")


@needs_numba
def test_fire_or_merges_in_the_kernel_unless_the_spikes_are_observed():
    """``SpikingNeuron.fire_or``: one fused call when nothing watches the neuron; with a forward hook the neuron
    runs on its own (the hook sees its spikes) and the same values come out."""
    neuron = LIF()
    x = _inputs(2, (4, 16, 8, 8))
    s = (torch.rand(x.shape) > 0.5).float()
    seen = []
    fused = neuron.fire_or(x, s)
    assert not seen
    handle = neuron.register_forward_hook(lambda m, i, o: seen.append(o))
    observed = neuron.fire_or(x, s)
    handle.remove()
    assert len(seen) == 1 and torch.equal(fused, observed)
    assert torch.equal(fused, s + seen[0] - s * seen[0])
    assert torch.equal(neuron.fire_or(x, s, "max"), torch.maximum(s, neuron(x)))
    assert torch.equal(neuron.fire_add(x, s), neuron(x) + s)
    assert neuron._merge_kernel(x, s) is multistep_fused_cpu
    assert LIF(stateful=True)._merge_kernel(x, s) is None and LIF(backend="torch")._merge_kernel(x, s) is None


@needs_numba
@pytest.mark.parametrize("name, kwargs", [
    ("oa_resnet14", {}),
    ("xoresnet14", {"xor_prev": "shortcut"}),
    ("xoresnet14", {"xor_mode": "inner"}),
    ("orrc_resnet14", {}),
    ("sew_resnet14", {"connect": "add"}),
    ("sew_resnet14", {"connect": "iand"}),
])
def test_blocks_merging_in_the_kernel_train_exactly_like_unmerged(name, kwargs, monkeypatch):
    """A training step of an OA / XOR / ORRC / SEW network: with every neuron observed by a hook (so each OR / ADD
    runs after its neuron, unmerged) the logits and every gradient are bitwise those of the merged-kernel run."""
    from xorsnn import create_model
    from xorsnn.neurons import lif

    merged = []
    fused = lif.multistep_fused_cpu
    monkeypatch.setattr(lif, "multistep_fused_cpu", lambda *a: (merged.append(1), fused(*a))[1])
    x = torch.rand(4, 1, 16, 16)
    results = []
    for observed in (False, True):
        torch.manual_seed(0)
        model = create_model(name, T=2, in_channels=1, zero_init_residual=False, **kwargs)
        if observed:
            for m in model.modules():
                if isinstance(m, SpikingNeuron):
                    m.register_forward_hook(lambda *_: None)
        out = model(x)
        out.square().sum().backward()
        results.append((out.detach(), [p.grad for p in model.parameters()], len(merged)))
    (o1, g1, n1), (o2, g2, n2) = results
    merges = n1 > 0 if kwargs.get("connect") != "iand" else n1 == 0  # SEW-IAND has no merge in the kernel
    assert merges and n2 == n1  # the first run merged in the kernel, the observed one did not
    assert torch.equal(o1, o2)
    assert all(torch.equal(p, q) for p, q in zip(g1, g2, strict=True))

import itertools

import pytest
import torch

from xorsnn.neurons import IF, LIF, RealSpikeLIF, make_neuron, multistep_autograd, multistep_bptt

LEAKS = [
    dict(tau=2.0),
    dict(tau=1.5, decay_input=False),
    dict(tau=None, decay=0.25, v_threshold=0.5),
    dict(tau=None),  # IF
]
RESETS = [dict(reset="hard"), dict(reset="hard", v_reset=-0.2), dict(reset="soft")]
SURR = ["atan", "sigmoid", {"name": "triangle", "gamma": 1.0}, {"name": "rectangle", "width": 1.0}]
CONFIGS = [
    {**leak, **reset, "surrogate": s, "detach_reset": det, "real_valued": real}
    for leak, reset, s, det, real in itertools.product(LEAKS, RESETS, SURR, [True, False], [False, True])
    if not (real and reset["reset"] == "soft")
]


def _ids(cfg):
    return ",".join(f"{k}={v}" for k, v in cfg.items() if k != "surrogate") + f",{cfg['surrogate']}"


@pytest.mark.parametrize("cfg", CONFIGS[::3] + CONFIGS[1::7], ids=_ids)
def test_multistep_equals_loop_of_single_steps(cfg):
    neuron = LIF(**cfg)
    x = (torch.randn(6, 3, 5, dtype=torch.float64) * 1.2 + 0.4).requires_grad_()
    g = torch.randn(6, 3, 5, dtype=torch.float64)
    out = neuron(x)
    (out * g).sum().backward()
    grad_multi = x.grad.clone()
    x.grad = None
    v, outs = None, []
    for t in range(6):
        o, v = neuron.step(x[t], v)
        outs.append(o)
    loop = torch.stack(outs)
    (loop * g).sum().backward()
    assert torch.equal(out, loop)
    torch.testing.assert_close(grad_multi, x.grad, rtol=1e-10, atol=1e-12)
    assert out.abs().sum() > 0, "test input should make the neuron fire"


@pytest.mark.parametrize("cfg", CONFIGS, ids=_ids)
def test_bptt_backend_matches_autograd_reference(cfg):
    ref = LIF(**cfg, backend="autograd")
    fast = LIF(**cfg, backend="bptt")
    x = (torch.randn(7, 4, 6, dtype=torch.float64) * 1.5 + 0.3).requires_grad_()
    g = torch.randn(7, 4, 6, dtype=torch.float64)
    y_ref = ref(x)
    (y_ref * g).sum().backward()
    g_ref, x.grad = x.grad.clone(), None
    y_fast = fast(x)
    (y_fast * g).sum().backward()
    assert torch.equal(y_ref, y_fast)
    torch.testing.assert_close(x.grad, g_ref, rtol=1e-10, atol=1e-12)


def test_bptt_gradient_flows_into_initial_state():
    d = LIF(reset="soft", detach_reset=False).dynamics
    x = torch.randn(5, 3, dtype=torch.float64) + 0.5
    v0 = torch.randn(3, dtype=torch.float64, requires_grad=True)
    multistep_autograd(x, d, v0)[0].sum().backward()
    g_ref, v0.grad = v0.grad.clone(), None
    multistep_bptt(x, d, v0)[0].sum().backward()
    torch.testing.assert_close(v0.grad, g_ref)


def test_lif_tau_trace_by_hand():
    # tau = 2, V_th = 1, hard reset to 0, constant input 1.5: H = V/2 + 0.75
    # t0: H = 0.75 (no spike); t1: 0.375 + 0.75 = 1.125 (spike, reset); t2: 0.75; t3: 1.125 (spike)
    out = LIF(tau=2.0)(torch.full((4, 1), 1.5))
    assert out.flatten().tolist() == [0.0, 1.0, 0.0, 1.0]


def test_ms_decay_trace_by_hand():
    # U = 0.25 * U * (1 - S) + X with X = 0.4, V_th = 0.5: 0.4, 0.5 (fire), 0.4, 0.5 (fire)
    out = LIF(tau=None, decay=0.25, v_threshold=0.5)(torch.full((4, 1), 0.4))
    assert out.flatten().tolist() == [0.0, 1.0, 0.0, 1.0]


def test_soft_reset_and_if_trace_by_hand():
    # IF, soft reset, V_th = 1, X = 0.7: 0.7, 1.4 -> fire (0.4), 1.1 -> fire (0.1), 0.8, 1.5 -> fire
    out = IF(reset="soft")(torch.full((5, 1), 0.7))
    assert out.flatten().tolist() == [0.0, 1.0, 1.0, 0.0, 1.0]


def test_real_valued_neuron_output_and_gradient():
    neuron = RealSpikeLIF(v_threshold=0.5, surrogate="atan")
    x = torch.tensor([[0.3], [0.9], [0.2]], dtype=torch.float64, requires_grad=True)
    out = neuron(x)
    # decay 0.25: U0 = 0.3 (< 0.5 -> 0); U1 = 0.075 + 0.9 = 0.975 (fires, outputs 0.975, reset); U2 = 0.2
    torch.testing.assert_close(out.flatten(), torch.tensor([0.0, 0.975, 0.0], dtype=torch.float64))
    # single step: dO/dU = 1[U >= V_th] + U * sigma'(U - V_th)
    u = torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64, requires_grad=True)
    o, _ = neuron.step(u)
    o.sum().backward()
    s = neuron.surrogate
    expected = (u >= 0.5).double() + u.detach() * s.derivative(u.detach() - 0.5)
    torch.testing.assert_close(u.grad, expected)
    # without the threshold term only the indicator remains
    u.grad = None
    RealSpikeLIF(v_threshold=0.5, threshold_grad=False).step(u)[0].sum().backward()
    torch.testing.assert_close(u.grad, (u >= 0.5).double())


def test_no_hidden_state_between_calls_unless_stateful():
    x = torch.rand(4, 2, 3) * 2
    n = LIF()
    assert torch.equal(n(x), n(x))
    s = LIF(stateful=True)
    full = LIF()(torch.cat([x, x]))
    first, second = s(x), s(x)
    assert torch.equal(torch.cat([first, second]), full)
    s.reset_state()
    assert torch.equal(s(x), first)


def test_firing_current_makes_neuron_fire_every_step():
    for kw in [dict(tau=2.0), dict(tau=None, decay=0.25, v_threshold=0.5), dict(tau=None), dict(tau=3.0, v_reset=-0.5)]:
        n = LIF(**kw)
        out = n(torch.full((6, 1), n.firing_current()))
        assert out.sum() == 6, kw
        below = n(torch.full((6, 1), n.firing_current() * 0.99 - 1e-3))
        assert below[0].sum() == 0, kw


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs_keep_dtype(dtype):
    x = (torch.rand(4, 2, 3) * 3).to(dtype).requires_grad_()
    y = LIF()(x)
    y.float().sum().backward()
    assert y.dtype == dtype and x.grad.dtype == dtype
    assert torch.equal(y.float(), LIF()(x.detach().float()))


def test_bad_inputs_and_arguments():
    with pytest.raises(ValueError, match="floating-point"):
        LIF()(torch.ones(3, 2, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"\[T, B, \.\.\.\]"):
        LIF()(torch.ones(3))
    with pytest.raises(ValueError, match="either as tau or as decay"):
        LIF(tau=2.0, decay=0.5)
    with pytest.raises(ValueError, match="v_threshold must be > 0"):
        LIF(v_threshold=0.0)
    with pytest.raises(ValueError, match="reset must be"):
        LIF(reset="none")
    with pytest.raises(ValueError, match="valid types"):
        make_neuron({"type": "izhikevich"})
    with pytest.raises(ValueError, match="unknown argument"):
        make_neuron({"type": "lif", "threshold": 1.0})
    with pytest.raises(ValueError, match="shape of x_t"):
        LIF().step(torch.ones(2, 3), torch.zeros(3))


def test_make_neuron_overrides_switch_leak_form():
    n = make_neuron({"type": "lif", "tau": 2.0}, decay=0.25)
    assert n.tau is None and n.decay == 0.25
    assert isinstance(make_neuron({"type": "if"}), IF)


def test_other_libraries_arguments_get_a_translation():
    """snnTorch / SpikingJelly habits: a one-line ValueError saying what the argument is called here."""
    import pytest

    from xorsnn.neurons import IF, LIF

    with pytest.raises(ValueError, match=r"LIF: unknown argument beta=0.9; xorsnn.s decay form LIF\(tau=None"):
        LIF(beta=0.9)
    with pytest.raises(ValueError, match="the threshold is v_threshold="):
        IF(threshold=1.0)
    with pytest.raises(ValueError, match="surrogate="):
        LIF(surrogate_function="atan")
    with pytest.raises(ValueError, match="did you mean tau"):
        LIF(tua=2.0)
    a, b = LIF(tau=None, decay=0.9), LIF(tau=None, decay=0.9)  # the translation computes what it says
    x = torch.rand(6, 3, 4)
    u, out = torch.zeros(3, 4), []
    for t in range(6):
        u = 0.9 * u + x[t]
        s = (u >= 1.0).float()
        out.append(s)
        u = u * (1 - s)
    assert torch.equal(a(x), torch.stack(out)) and torch.equal(a(x), b(x))

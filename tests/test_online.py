import copy

import pytest
import torch
from torch import nn

import xorsnn
from xorsnn.neurons import SpikingNeuron, single_step
from xorsnn.online import ActivationMemoryProbe, run_stepwise, sltt_step_losses, stepwise

CE = nn.functional.cross_entropy


def _active_net(family="spiking", T=4, **kw):
    """A tiny network whose neurons fire often (MS-style neuron: decay 0.25, V_th 0.5)."""
    model = xorsnn.SpikingResNet(family, [1, 1], widths=[6, 8], stem="cifar", num_classes=5, T=T, in_channels=1,
                                 neuron={"tau": None, "decay": 0.5, "v_threshold": 0.5,
                                         "surrogate": {"name": "triangle", "gamma": 0.5}}, **kw).double()
    torch.manual_seed(3)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                m.weight.uniform_(0.6, 1.4)
                m.bias.uniform_(0.0, 0.6)
                m.running_mean.normal_(0, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    return model.eval()  # eval BN: the same normalisation whole-sequence and step by step


def _grads(model):
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def _detached_state_reference(model):
    """BPTT on a copy whose neurons detach the carried membrane by construction (SLTT's gradient)."""
    ref = copy.deepcopy(model)

    def forward(self, x):
        v, outs = None, []
        for t in range(x.shape[0]):
            o, v = single_step(x[t], None if v is None else v.detach(), self.dynamics)
            outs.append(o)
        return torch.stack(outs)

    for m in ref.modules():
        if isinstance(m, SpikingNeuron):
            m.forward = forward.__get__(m)
    return ref


@pytest.mark.parametrize("family,spikes", [("spiking", "binary"), ("msc", "binary"), ("reverb", "real")])
def test_sltt_gradients_equal_bptt_with_the_temporal_path_cut(family, spikes):
    T = 4
    model = _active_net(family, T, spikes=spikes, weights="binary", binary_scale="alpha")
    x = torch.rand(3, 1, 8, 8, dtype=torch.float64) * 2
    y = torch.tensor([0, 3, 1])

    model.zero_grad()
    result = sltt_step_losses(model, x, y, CE)
    g_sltt = _grads(model)

    ref = _detached_state_reference(model)
    out = ref(x)
    sum(CE(out[t], y) for t in range(T)).div(T).backward()
    g_ref = _grads(ref)

    model.zero_grad()
    out_bptt = model(x)
    sum(CE(out_bptt[t], y) for t in range(T)).div(T).backward()
    g_bptt = _grads(model)

    assert g_sltt.keys() == g_ref.keys() and len(g_ref) > 10
    for name in g_ref:
        torch.testing.assert_close(g_sltt[name], g_ref[name], rtol=1e-10, atol=1e-14, msg=name)
    # the temporal path matters in this net: full BPTT differs, so a non-detached SLTT would fail above
    diff = sum(float((g_bptt[n] - g_ref[n]).norm()) for n in g_ref)
    assert diff > 1e-3 * sum(float(g.norm()) for g in g_ref.values())
    torch.testing.assert_close(result.prediction, out_bptt.detach().sum(0))
    torch.testing.assert_close(result.loss, sum(CE(out_bptt[t], y) for t in range(T)).detach() / T)
    assert result.grad_steps == list(range(T))


def test_stepwise_forward_equals_whole_sequence_and_restores_settings():
    model = _active_net("xor", T=5)
    x = torch.rand(2, 1, 8, 8, dtype=torch.float64) * 2
    with torch.no_grad():
        whole = model(x)
    assert whole.abs().sum() > 0
    torch.testing.assert_close(run_stepwise(model, x), whole, rtol=0, atol=0)
    seq = torch.rand(5, 2, 1, 8, 8, dtype=torch.float64) * 2  # a sequence input, one frame per step
    torch.testing.assert_close(run_stepwise(model, seq), model(seq).detach(), rtol=0, atol=0)
    assert model.T == 5 and not any(m.stateful for m in model.modules() if isinstance(m, SpikingNeuron))
    with stepwise(model):
        assert model.T == 1 and all(m.stateful for m in model.modules() if isinstance(m, SpikingNeuron))
        first = model(x)
        second = model(x)
        assert not torch.equal(first, second)  # the state is carried
    with pytest.raises(ValueError, match="T=5"):
        run_stepwise(model, torch.rand(3, 2, 1, 8, 8, dtype=torch.float64))


def test_sltt_k_backpropagates_only_k_steps_but_predicts_with_all():
    T, k = 6, 2
    model = _active_net("spiking", T)
    x = torch.rand(3, 1, 8, 8, dtype=torch.float64) * 2
    y = torch.tensor([0, 1, 2])
    gen = torch.Generator().manual_seed(7)
    model.zero_grad()
    result = sltt_step_losses(model, x, y, CE, k=k, generator=gen)
    assert len(result.grad_steps) == k and len(set(result.grad_steps)) == k
    g_k = _grads(model)
    # reference: the detached-state graph, loss only on the chosen steps (still divided by T)
    ref = _detached_state_reference(model)
    out = ref(x)
    sum(CE(out[t], y) for t in result.grad_steps).div(T).backward()
    for name, g in _grads(ref).items():
        torch.testing.assert_close(g_k[name], g, rtol=1e-10, atol=1e-14, msg=name)
    torch.testing.assert_close(result.prediction, out.detach().sum(0))
    with pytest.raises(ValueError, match="k must be"):
        sltt_step_losses(model, x, y, CE, k=T + 1)


def _peaks(model, x, y, T):
    model.T = T
    with ActivationMemoryProbe() as sltt:
        sltt_step_losses(model, x, y, CE)
    with ActivationMemoryProbe() as bptt:
        out = model(x)
        CE(out.mean(0), y).backward()
    assert sltt.live_bytes == 0 and bptt.live_bytes == 0  # every graph was freed
    return sltt.peak_bytes, bptt.peak_bytes


def test_sltt_activation_memory_is_flat_in_T_while_bptt_grows():
    torch.manual_seed(0)
    model = xorsnn.create_model("msc_resnet20", in_channels=1, weights="binary", binary_scale="magnitude").train()
    x, y = torch.rand(2, 1, 16, 16), torch.randint(0, 10, (2,))
    peaks = {T: _peaks(model, x, y, T) for T in (2, 4, 8)}
    sltt = [peaks[T][0] for T in (2, 4, 8)]
    bptt = [peaks[T][1] for T in (2, 4, 8)]
    assert max(sltt) <= 1.05 * min(sltt), f"SLTT peak saved bytes should not depend on T: {sltt}"
    # BPTT keeps every step: a constant part (the static-image stem runs once) plus one step's worth per step
    per_step = (bptt[1] - bptt[0]) / 2
    assert per_step > 0.5 * sltt[0], f"BPTT should grow by about one step's activations per step: {bptt}"
    assert 1.8 < (bptt[2] - bptt[1]) / (bptt[1] - bptt[0]) < 2.2, f"BPTT should grow linearly in T: {bptt}"
    assert bptt[2] > 2.5 * bptt[0] and bptt[2] > 3 * sltt[2]


def test_probe_counts_saved_activations():
    x = torch.randn(100, 10, requires_grad=True)
    with ActivationMemoryProbe() as probe:
        y = (x * 2).sin()  # saves the 100x10 float32 input of sin
        assert probe.live_bytes == 4000
        y.sum().backward()
    assert probe.live_bytes == 0 and probe.peak_bytes == 4000

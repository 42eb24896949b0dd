"""NIR export: write, read back with nir.read, simulate with the reference interpreter, compare spikes."""

import itertools

import numpy as np
import pytest
import torch
from torch import nn

nir = pytest.importorskip("nir")

from xorsnn.export import export_nir, to_nir  # noqa: E402
from xorsnn.export.nir_export import _Builder, _Sig, neuron_to_nir_params  # noqa: E402
from xorsnn.export.nir_sim import simulate  # noqa: E402
from xorsnn.layers import TimeAvgPool2d, TimeBatchNorm2d, TimeConv2d, TimeLinear, TimeMaxPool2d  # noqa: E402
from xorsnn.models import DeepSNNStack, SpikingResNet  # noqa: E402
from xorsnn.neurons import IF, LIF, SpikingNeuron  # noqa: E402


def _trained_like(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    for mod in model.modules():
        if isinstance(mod, nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                mod.weight.uniform_(0.5, 1.5, generator=g)
                mod.bias.uniform_(0.2, 1.2, generator=g)
                mod.running_mean.uniform_(-0.3, 0.3, generator=g)
                mod.running_var.uniform_(0.5, 2.0, generator=g)
    return model.double().eval()


def _roundtrip(model, x, tmp_path, T):
    """Spikes of every xorsnn neuron vs the same-named node of the read-back graph; logits."""
    spikes = {}
    hooks = [m.register_forward_hook(lambda m, a, o, n=n: spikes.__setitem__(n, o))
             for n, m in model.named_modules() if isinstance(m, SpikingNeuron)]
    with torch.no_grad():
        ref = model(x)
    for h in hooks:
        h.remove()
    path = tmp_path / "model.nir"
    export_nir(model, x, path)
    graph = nir.read(str(path))
    seq = x if x.dim() == 5 else x.unsqueeze(0).expand(T, *x.shape)
    out, rec = simulate(graph, seq, record=True)
    assert set(spikes) <= set(rec)
    total = 0.0
    for name, s in spikes.items():
        assert torch.equal(rec[name], s), name
        total += float(s.mean())
    assert 0.02 < total / len(spikes) < 0.95  # neurons do fire: the comparison has teeth
    assert (out - ref).abs().max() <= 1e-9
    return graph, ref


@pytest.mark.parametrize("family,kwargs", [
    ("spiking", {}),  # Spiking ResNet blocks: SN(F(x) + shortcut) -> multi-input edge into the neuron
    ("sew", {}),  # SEW-ADD: A + S -> multi-input edges into every consumer
    ("ms", {}),  # membrane shortcut, decay-form LIF
    ("reverb", {"weights": "binary"}),  # binary weights (sign), avg-down shortcut, decay-form LIF
])
def test_residual_networks_roundtrip(family, kwargs, tmp_path):
    torch.manual_seed(0)
    model = _trained_like(SpikingResNet(family, [2, 1], widths=[8, 16], stem="cifar", num_classes=5, T=3,
                                        in_channels=1, **kwargs))
    x = torch.randn(2, 1, 16, 16, dtype=torch.float64)
    graph, _ = _roundtrip(model, x, tmp_path, 3)
    assert not any(isinstance(n, nir.Threshold) for n in graph.nodes.values())  # no logic in these families


@pytest.mark.parametrize("family,kwargs", [
    ("oa", {}), ("oa", {"down_merge": "or"}), ("sew", {"connect": "and"}), ("sew", {"connect": "iand"}),
    ("xor", {"xor_mode": "input"}), ("xor", {"xor_mode": "output"}), ("xor", {"xor_mode": "inner"}),
    ("xor", {"xor_mode": "merge"}),
])
def test_logic_merges_are_lowered_exactly(family, kwargs, tmp_path):
    torch.manual_seed(1)
    model = _trained_like(SpikingResNet(family, [2, 1], widths=[8, 16], stem="cifar", num_classes=5, T=3,
                                        in_channels=1, **kwargs))
    x = torch.randn(2, 1, 16, 16, dtype=torch.float64)
    graph, _ = _roundtrip(model, x, tmp_path, 3)
    assert any(isinstance(n, nir.Threshold) for n in graph.nodes.values())


def test_plain_conv_snn_and_imagenet_stem_maxpool(tmp_path):
    torch.manual_seed(2)
    net = nn.Sequential(
        TimeConv2d(2, 6, 3, padding=1), TimeBatchNorm2d(6), LIF(tau=2.0),
        TimeMaxPool2d(2), TimeConv2d(6, 8, 3, stride=2, padding=1), TimeBatchNorm2d(8),
        LIF(tau=1.5, decay_input=False, v_reset=-0.1), TimeAvgPool2d(2), nn.Flatten(2),
        TimeLinear(8, 12), LIF(tau=None, decay=0.25, v_threshold=0.5), TimeLinear(12, 4), IF(v_threshold=0.7),
    )
    net = _trained_like(net)
    x = torch.rand(4, 3, 2, 8, 8, dtype=torch.float64) * 2  # [T, B, C, H, W]
    _roundtrip(net, x, tmp_path, 4)
    model = _trained_like(SpikingResNet("spiking", [1], widths=[8], stem="imagenet", num_classes=3, T=2,
                                        in_channels=1))
    graph, _ = _roundtrip(model, torch.randn(2, 1, 16, 16, dtype=torch.float64), tmp_path, 2)
    assert isinstance(graph.nodes["stem_pool.sum"], nir.SumPool2d)  # max-pool of spikes = OR over the window


def test_neuron_parameter_mapping():
    p = neuron_to_nir_params(LIF(tau=2.0, v_threshold=1.0), "n")
    assert p == {"kind": "LIF", "tau": 2.0, "r": 1.0, "v_leak": 0.0, "v_threshold": 1.0, "v_reset": 0.0}
    p = neuron_to_nir_params(LIF(tau=None, decay=0.25, v_threshold=0.5), "n")
    assert p["tau"] == pytest.approx(4 / 3) and p["r"] == p["tau"] and p["v_leak"] == 0.0
    assert neuron_to_nir_params(IF(), "n")["kind"] == "IF"
    with pytest.raises(ValueError, match="soft reset"):
        neuron_to_nir_params(LIF(reset="soft"), "stages.0.0.sn1")
    with pytest.raises(ValueError, match="real-valued"):
        neuron_to_nir_params(LIF(real_valued=True), "n")


@pytest.mark.parametrize("op,table", [
    ("or", [0, 1, 1, 1]), ("and", [0, 0, 0, 1]), ("xor", [0, 1, 1, 0]), ("iand", [0, 1, 0, 0]),
])
def test_logic_lowering_truth_tables(op, table):
    """``op(a, b)`` for (a, b) in 00, 01, 10, 11 through the lowered Threshold/Scale nodes."""
    b = _Builder(nn.Identity(), torch.zeros(1, 2))
    b.add("input", nir.Input(input_type={"input": np.array([2])}), [])
    b.add("a", nir.Affine(weight=np.array([[1.0, 0.0]]), bias=np.zeros(1)), ["input"])
    b.add("b", nir.Affine(weight=np.array([[0.0, 1.0]]), bias=np.zeros(1)), ["input"])
    out = b.logic("m", op, _Sig(["a"], (1,), True), _Sig(["b"], (1,), True))
    b.add("output", nir.Output(output_type={"output": np.array([1])}), out)
    pairs = torch.tensor(list(itertools.product([0.0, 1.0], repeat=2)), dtype=torch.float64)
    y, _ = simulate(b.graph(), pairs.unsqueeze(0))
    assert y.flatten().tolist() == table
    with pytest.raises(ValueError, match="non-binary"):
        b.logic("m2", op, _Sig(["a", "b"], (1,), False), _Sig(["b"], (1,), True))


def test_refusals_name_the_block():
    x = torch.randn(1, 1, 8, 8)
    msc = SpikingResNet("msc", [1], widths=[8], stem="cifar", num_classes=2, T=1, in_channels=1)
    with pytest.raises(ValueError, match=r"stages\.0\.0: NIR export does not support a BatchNorm on the residual"):
        to_nir(msc, x)
    real = SpikingResNet("spiking", [1], widths=[8], stem="cifar", num_classes=2, T=1, in_channels=1, spikes="real")
    with pytest.raises(ValueError, match="stem_sn: real-valued spikes"):
        to_nir(real, x)
    odd = SpikingResNet("reverb", [1, 1], widths=[8, 8], stem="cifar", num_classes=2, T=1, in_channels=1)
    with pytest.raises(ValueError, match=r"stages\.1\.0\.downsample\.0: average pool"):
        to_nir(odd, torch.randn(1, 1, 7, 7))  # 7x7 with ceil_mode avg-down: no NIR equivalent
    no_stats = SpikingResNet("spiking", [1], widths=[8], stem="cifar", num_classes=2, T=1, in_channels=1).eval()
    bn = no_stats.stem_bn  # as if built with track_running_stats=False
    bn.track_running_stats, bn.running_mean, bn.running_var = False, None, None
    with pytest.raises(ValueError, match=r"stem.*without running statistics cannot be folded"):
        to_nir(no_stats, x)


@pytest.mark.parametrize("family", ["spiking", "sew", "ms", "oa", "xor"])
def test_fully_connected_stack_roundtrip(family, tmp_path):
    torch.manual_seed(3)
    model = _trained_like(DeepSNNStack(24, 3, family, in_features=10, num_classes=4, T=3))
    _roundtrip(model, torch.randn(5, 10, dtype=torch.float64), tmp_path, 3)

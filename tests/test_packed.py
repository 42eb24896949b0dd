"""Bit-packed CPU engine: kernels against PyTorch convolutions, whole models bitwise equal to the float model."""

import pytest
import torch
from realdata import cifar10, data_dir, fashion_mnist
from torch import nn
from torch.nn import functional as F

pytest.importorskip("numba")

from xorsnn.export import PackedConv2d, PackedLinear, pack_model, packed_layers, reparameterize  # noqa: E402
from xorsnn.export.bench import calibrate_bn  # noqa: E402
from xorsnn.export.packed_fused import FusedBasicBlock, FusedBlockChain  # noqa: E402
from xorsnn.models import DeepSNNStack, SpikingResNet  # noqa: E402
from xorsnn.neurons import SpikingNeuron  # noqa: E402


def _pm1_conv(c_in, c_out, k, stride, padding, seed):
    g = torch.Generator().manual_seed(seed)
    conv = nn.Conv2d(c_in, c_out, k, stride=stride, padding=padding, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.where(torch.randn(conv.weight.shape, generator=g) >= 0, 1.0, -1.0))
    return conv


@pytest.mark.parametrize("c_in,c_out,k,stride,padding", [
    (3, 5, 3, 1, 1), (64, 16, 3, 2, 1), (70, 9, 1, 1, 0), (130, 24, 3, 1, 0), (128, 8, 1, 2, 0),
])
def test_popcount_conv_equals_torch_conv_on_binary_spikes(c_in, c_out, k, stride, padding):
    conv = _pm1_conv(c_in, c_out, k, stride, padding, seed=c_in)
    g = torch.Generator().manual_seed(1)
    x = (torch.rand(3, 2, c_in, 9, 11, generator=g) < 0.3).float()  # [T, B, C, H, W]
    packed = PackedConv2d(conv)
    got = packed(x)
    assert packed.last_path == "popcount"
    ref = F.conv2d(x.flatten(0, 1).double(), conv.weight.double(), stride=stride, padding=padding)
    assert torch.equal(got.flatten(0, 1).double(), ref)  # exact integers
    # a single flipped weight bit would change some outputs: the comparison has teeth
    conv.weight.data[0, 0, 0, 0] *= -1
    assert not torch.equal(PackedConv2d(conv)(x), got)


def test_signed_addition_path_for_real_valued_spikes():
    conv = _pm1_conv(20, 7, 3, 2, 1, seed=3)
    g = torch.Generator().manual_seed(2)
    x = torch.rand(4, 20, 8, 8, generator=g, dtype=torch.float64)
    x = x * (x > 0.7)  # sparse real-valued spikes
    packed = PackedConv2d(conv)
    got = packed(x)
    assert packed.last_path == "signed-add"
    ref = F.conv2d(x, conv.weight.double(), stride=2, padding=1)
    assert (got - ref).abs().max() < 1e-12


def test_packed_linear_equals_linear():
    lin = nn.Linear(100, 13, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.where(torch.randn(13, 100) >= 0, 1.0, -1.0))
    x = (torch.rand(3, 5, 100) < 0.4).float()
    assert torch.equal(PackedLinear(lin)(x), lin(x))


def _trained_like(model, images):
    calibrate_bn(model, images)
    g = torch.Generator().manual_seed(0)
    for mod in model.modules():
        if isinstance(mod, nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                mod.weight.uniform_(0.6, 1.4, generator=g)
                mod.bias.uniform_(0.0, 0.8, generator=g)
    return model.eval()


def _spike_rates(model, x):
    rates = []
    hooks = [m.register_forward_hook(lambda m, a, o: rates.append(float(o.mean())))
             for m in model.modules() if isinstance(m, SpikingNeuron)]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return rates


@pytest.mark.parametrize("family,kwargs", [
    ("spiking", {}), ("sew", {}), ("oa", {}), ("xor", {}), ("msc", {}),
])
def test_packed_model_logits_bitwise_equal_on_fashion_mnist(family, kwargs):
    x = fashion_mnist(data_dir("fashion_mnist") / "FashionMNIST/raw/t10k-images-idx3-ubyte.gz", 16, torch.float32)
    torch.manual_seed(0)
    model = SpikingResNet(family, [1, 1, 1], widths=[16, 32, 64], stem="cifar", num_classes=10, T=3, in_channels=1,
                          weights="binary", **kwargs)
    model = _trained_like(model, x)
    rates = _spike_rates(model, x)
    assert 0.02 < sum(rates) / len(rates) < 0.9  # neurons fire: the test exercises real spike patterns
    packed = pack_model(model)
    names = packed_layers(packed)
    assert len(names) >= 6 and "stem_conv" not in names and "fc" not in names
    layerwise = pack_model(model, fuse_blocks=False)
    with torch.no_grad():
        ref, got, got_layerwise = model(x), packed(x), layerwise(x)
        unfused = pack_model(model, fuse_neurons=False)(x)  # PyTorch neurons, convs pack their own input
    assert torch.equal(ref, got) and torch.equal(ref, got_layerwise) and torch.equal(ref, unfused)
    paths = {m.last_path for m in layerwise.modules() if isinstance(m, PackedConv2d)}
    # binary spikes everywhere; SEW-ADD sums (integers 0..2) take the signed-addition path, exact on integers
    assert paths == ({"popcount", "signed-add"} if family == "sew" else {"popcount"})
    fused = [m.last_path for m in packed.modules() if isinstance(m, FusedBasicBlock)]
    # Spiking / OA / XOR blocks run fused (the network body as one chain); SEW and msc layer by layer
    assert fused == (["fused"] * 3 if family in ("spiking", "oa", "xor") else [])


@pytest.mark.slow
def test_packed_resnet18_layout_bitwise_equal_on_cifar10():
    x = cifar10(data_dir("cifar10") / "cifar-10-batches-py/test_batch", 4, torch.float32)
    torch.manual_seed(1)
    model = _trained_like(SpikingResNet("spiking", [2, 2, 2, 2], widths=[16, 32, 64, 128], stem="cifar",
                                        num_classes=10, T=2, weights="binary"), x)
    packed = pack_model(model)
    layerwise = pack_model(model, fuse_blocks=False)
    with torch.no_grad():
        ref = model(x)
        assert torch.equal(ref, packed(x)) and torch.equal(ref, layerwise(x))
    assert all(m.last_path == "popcount" for m in layerwise.modules() if isinstance(m, PackedConv2d))
    assert [m.last_path for m in packed.modules() if isinstance(m, FusedBasicBlock)] == ["fused"] * 8
    assert sum(isinstance(m, FusedBlockChain) for m in packed.modules()) == 1


def test_scaled_binary_weights_via_reparameterize():
    torch.manual_seed(2)
    x = torch.randn(4, 1, 12, 12)
    model = _trained_like(SpikingResNet("msc", [1, 1], widths=[16, 32], stem="cifar", num_classes=5, T=2,
                                        in_channels=1, weights="binary", binary_scale="magnitude"), x)
    with pytest.raises(ValueError, match="reparameterize"):
        pack_model(model)  # a*sign(W) is not ±1
    inference = reparameterize(model)
    packed = pack_model(inference)
    with torch.no_grad():
        assert torch.equal(inference(x), packed(x))


def test_reverb_real_valued_spikes_addition_only_path():
    torch.manual_seed(3)
    x = torch.randn(3, 3, 16, 16, dtype=torch.float64)
    model = SpikingResNet("reverb", [1, 1], widths=[8, 16], stem="cifar3", num_classes=4, T=2, weights="binary",
                          spikes="real").double()
    model = _trained_like(model, x)
    packed = pack_model(model)
    with torch.no_grad():
        ref, got = model(x), packed(x)
    assert "signed-add" in {m.last_path for m in packed.modules() if isinstance(m, PackedConv2d)}
    assert (ref - got).abs().max() <= 1e-9 * ref.abs().max()


def test_deep_snn_stack_binary_linear_blocks():
    torch.manual_seed(4)
    model = DeepSNNStack(40, 2, "spiking", in_features=10, num_classes=3, T=2, weights="binary")
    x = torch.randn(6, 10)
    model = _trained_like(model, x)
    packed = pack_model(model)
    assert len(packed_layers(packed)) == 4
    with torch.no_grad():
        assert torch.equal(model(x), packed(x))


def test_float_model_is_refused():
    with pytest.raises(ValueError, match="±1"):
        pack_model(SpikingResNet("spiking", [1], widths=[8], stem="cifar", num_classes=2, T=1))


@pytest.mark.parametrize("spec", [
    {"tau": 2.0}, {"tau": 1.1, "decay_input": False, "reset": "soft"}, {"tau": None, "decay": 0.25, "v_threshold": 0.5},
    {"tau": 1.5, "v_reset": -0.3}, {"tau": None, "decay": 0.25, "v_threshold": 0.25, "real_valued": True},
    {"tau": None, "decay": None},
])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_neuron_bitwise_equal_to_training_form(spec, dtype):
    from xorsnn.export.packed import FusedNeuron
    from xorsnn.neurons import make_neuron

    neuron = make_neuron(spec)
    g = torch.Generator().manual_seed(5)
    x = (torch.randn(6, 4, 3, 5, 5, generator=g) * 1.2 + 0.4).to(dtype)
    x[0, 0, 0, 0, :3] = torch.tensor([neuron.v_threshold, 0.7, 0.1], dtype=dtype)  # values at / near thresholds
    ref = neuron(x)
    got = FusedNeuron(neuron)(x)
    assert torch.equal(ref, got) and 0.05 < float((ref != 0).float().mean()) < 0.95

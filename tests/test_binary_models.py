import pytest
import torch
from helpers import binary
from torch import nn

import xorsnn
from xorsnn.blocks import FAMILIES, MultiShortcutBasicBlock, SpikingBasicBlock
from xorsnn.layers import BinaryConv2d, TimeAvgPool2d, TimeConv2d
from xorsnn.models import DeepSNNStack, SpikingResNet
from xorsnn.neurons import SpikingNeuron, neuron_factory

ONE_PER_FAMILY = [
    "spiking_resnet20", "sew_resnet20", "ms_resnet20", "oa_resnet20", "xoresnet20", "reverb_resnet20", "msc_resnet20",
]


def _neurons(model):
    return [m for m in model.modules() if isinstance(m, SpikingNeuron)]


def _block_convs(model):
    convs = [m for m in model.stages.modules() if isinstance(m, nn.Conv2d)]
    if isinstance(model.stem_extra, nn.Sequential):
        convs += [m for m in model.stem_extra if isinstance(m, nn.Conv2d)]
    return convs


@pytest.mark.parametrize("name", ONE_PER_FAMILY)
def test_binary_weights_and_real_spikes_in_every_family(name):
    T, B = 2, 2
    base = xorsnn.create_model(name, T=T, in_channels=1, weights="float", spikes="binary")
    model = xorsnn.create_model(name, T=T, in_channels=1, weights="binary", binary_scale="alpha", spikes="real")
    assert model.weights == "binary" and model.spikes == "real"
    for conv in _block_convs(model):
        if isinstance(conv, BinaryConv2d):
            assert conv.scale == "alpha"
        else:  # only the multi-shortcut family's real-valued shortcut convs stay full precision
            assert name.startswith("msc") and conv.kernel_size == (1, 1)
    assert sum(isinstance(c, BinaryConv2d) for c in _block_convs(model)) >= 18
    assert type(model.stem_conv) is nn.Conv2d and type(model.fc) is nn.Linear  # first and last stay full precision
    assert not any(isinstance(c, BinaryConv2d) for c in _block_convs(base))
    # real-valued output, the family's other neuron constants kept (ReverB: V_th 0.25 and a.e. derivative)
    sn, sn0 = _neurons(model)[0], _neurons(base)[0]
    assert sn.real_valued and not sn0.real_valued
    assert (sn.tau, sn.decay, sn.reset, sn.surrogate) == (sn0.tau, sn0.decay, sn0.reset, sn0.surrogate)
    if name.startswith("reverb"):
        assert (sn.v_threshold, sn0.v_threshold, sn.threshold_grad) == (0.25, 0.5, False)
    else:
        assert sn.v_threshold == sn0.v_threshold
    out = model(torch.rand(B, 1, 28, 28))
    assert out.shape == (T, B, 10)
    out.mean(0).logsumexp(-1).sum().backward()
    alphas = [m.log_alpha for m in model.modules() if isinstance(m, BinaryConv2d)]
    assert all(a.grad is not None and torch.isfinite(a.grad).all() for a in alphas)
    assert sum(float(a.grad.abs().sum()) for a in alphas) > 0


def test_real_spikes_are_graded_and_binary_spikes_are_not():
    torch.manual_seed(0)
    seen = {}
    for spikes in ("binary", "real"):
        model = xorsnn.create_model("spiking_resnet20", T=2, spikes=spikes, weights="binary")
        model.stem_sn.register_forward_hook(lambda m, a, o, key=spikes: seen.__setitem__(key, o.detach()))
        model(torch.randn(2, 3, 32, 32) * 3)
    assert set(seen["binary"].unique().tolist()) <= {0.0, 1.0}
    graded = seen["real"][seen["real"] != 0]
    assert graded.numel() > 0 and bool((graded >= 1.0).all()) and graded.unique().numel() > 10


def test_option_errors_name_the_argument():
    with pytest.raises(ValueError, match="needs weights='binary'"):
        xorsnn.create_model("xoresnet20", binary_scale="alpha")
    with pytest.raises(ValueError, match="weights must be one of"):
        xorsnn.create_model("xoresnet20", weights="ternary")
    with pytest.raises(ValueError, match="spikes must be one of"):
        xorsnn.create_model("xoresnet20", spikes="graded")
    with pytest.raises(ValueError, match="binary_scale must be one of"):
        xorsnn.create_model("xoresnet20", weights="binary", binary_scale="xnor")
    with pytest.raises(ValueError, match="contradict spikes"):
        xorsnn.create_model("xoresnet20", neuron={"real_valued": True})
    with pytest.raises(ValueError, match="basic blocks only"):
        SpikingResNet("msc", [1, 1, 1, 1], block="bottleneck")


def test_reverb_resnet20_is_convention_b():
    model = xorsnn.create_model("reverb_resnet20", T=2)
    assert model.depth == 20 and model.weights == "binary" and model.spikes == "real"
    n_params = sum(p.numel() for p in model.parameters())
    assert 11.0e6 < n_params < 11.5e6  # ~11M (residual-families.md §4)
    # stem: 3 x [conv3x3(64) - BN - SN] at full resolution, then avg-pool 2; the first conv is full precision
    se = model.stem_extra
    stem = model.stem_conv
    assert (stem.kernel_size, stem.stride, stem.out_channels) == ((3, 3), (1, 1), 64)
    assert [type(m) for m in se] == [BinaryConv2d, type(se[1]), type(model.stem_sn), BinaryConv2d, type(se[1]),
                                     type(model.stem_sn)]
    assert isinstance(model.stem_pool, TimeAvgPool2d) and model.stem_pool.kernel_size == 2
    # 4 stages x 2 Spiking-ResNet basic blocks, widths 64..512, strides 1,2,2,2; avg-down; zero-init
    assert [len(s) for s in model.stages] == [2, 2, 2, 2]
    assert [s[0].conv1.out_channels for s in model.stages] == [64, 128, 256, 512]
    assert [s[0].conv1.stride[0] for s in model.stages] == [1, 2, 2, 2]
    for stage in model.stages:
        for blk in stage:
            assert isinstance(blk, SpikingBasicBlock)
            assert torch.all(blk.bn2.weight == 0)
    ds = model.stages[1][0].downsample
    assert isinstance(ds[0], TimeAvgPool2d) and ds[0].kernel_size == 2
    assert isinstance(ds[1], BinaryConv2d) and ds[1].kernel_size == (1, 1) and ds[1].stride == (1, 1)
    assert model.stages[0][0].downsample is None
    sn = _neurons(model)[0]
    assert (sn.decay, sn.v_threshold, sn.reset, sn.real_valued) == (0.25, 0.25, "hard", True)
    assert _neurons(xorsnn.create_model("reverb_resnet20", neuron={"v_threshold": 0.5}))[0].v_threshold == 0.5
    vanilla = xorsnn.create_model("reverb_resnet20", weights="float", spikes="binary")
    assert not any(isinstance(m, BinaryConv2d) for m in vanilla.modules())
    assert _neurons(vanilla)[0].v_threshold == 0.5 and not _neurons(vanilla)[0].real_valued
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 2, 10)


def test_reverb_resnet19_layout():
    model = xorsnn.create_model("reverb_resnet19", T=1)
    assert model.depth == 19 and [len(s) for s in model.stages] == [3, 3, 2]
    assert isinstance(model.stages[1][0].downsample[0], BinaryConv2d)  # Conv1x1(stride)-BN shortcut
    assert model.stages[1][0].downsample[0].stride == (2, 2)


def test_multishortcut_block_equations_and_real_valued_shortcut():
    torch.manual_seed(0)
    sn = neuron_factory(FAMILIES["msc"].neuron)
    kit = xorsnn.layers.binarize_kit(xorsnn.layers.CONV, "magnitude")
    blk = MultiShortcutBasicBlock(4, 6, stride=2, neuron=sn, layers=kit).eval()
    for m in blk.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                m.weight.uniform_(0.5, 2.0)
                m.bias.uniform_(-0.5, 1.5)
    ds = blk.downsample
    assert isinstance(ds[0], TimeAvgPool2d) and type(ds[1]) is TimeConv2d and ds[1].kernel_size == (1, 1)
    assert isinstance(blk.conv1, BinaryConv2d) and isinstance(blk.conv2, BinaryConv2d)
    x = torch.randn(3, 2, 4, 8, 8)  # the residual stream is real-valued
    spikes_in = []
    for conv in (blk.conv1, blk.conv2):
        conv.register_forward_hook(lambda m, a, o: spikes_in.append(a[0].detach()))
    out = blk(x)
    x1 = ds(x) + blk.conv1(blk.sn1(blk.bn1(x)))
    torch.testing.assert_close(out, x1 + blk.conv2(blk.sn2(blk.bn2(x1))))
    assert all(set(s.unique().tolist()) <= {0.0, 1.0} for s in spikes_in) and sum(s.sum() for s in spikes_in) > 0
    assert out.unique().numel() > 10  # real-valued output, no neuron after the sums
    same = MultiShortcutBasicBlock(6, 6, neuron=sn, layers=kit)
    assert same.downsample is None
    y = binary(2, 2, 6, 5, 5)
    torch.testing.assert_close(same(y), y + same.conv1(same.sn1(same.bn1(y))) + same.conv2(
        same.sn2(same.bn2(y + same.conv1(same.sn1(same.bn1(y)))))))


def test_msc_models_use_the_sltt_neuron_and_a_bn_sn_head():
    model = xorsnn.create_model("msc_resnet18_cifar", T=2)
    sn = _neurons(model)[0]
    assert (sn.tau, sn.decay_input, sn.reset, sn.v_threshold) == (1.1, False, "soft", 1.0)
    assert sn.surrogate.name == "triangle" and sn.surrogate.gamma == 1.0
    assert isinstance(model.head_bn, nn.modules.batchnorm._BatchNorm) and isinstance(model.head_sn, SpikingNeuron)
    assert isinstance(model.stem_sn, nn.Identity)
    assert all(isinstance(b, MultiShortcutBasicBlock) for s in model.stages for b in s)
    assert [len(s) for s in model.stages] == [2, 2, 2, 2] and model.depth == 18


@pytest.mark.parametrize("family", ["msc", "reverb", "sew"])
def test_deep_stack_accepts_binary_weights_and_real_spikes(family):
    spikes = "binary" if family == "sew" else "real"
    stack = DeepSNNStack(12, 3, family, in_features=5, num_classes=4, T=2, weights="binary",
                         binary_scale="alpha", spikes=spikes)
    assert sum(isinstance(m, xorsnn.layers.BinaryLinear) for m in stack.modules()) == 6
    out = stack(torch.rand(3, 5))
    assert out.shape == (2, 3, 4)
    out.sum().backward()

import pytest
import torch
from helpers import binary
from torch import nn

from xorsnn.blocks import (
    FAMILIES,
    MembraneShortcutBlock,
    MSBasicBlock,
    MSBottleneck,
    OABasicBlock,
    OABlock,
    OABottleneck,
    ResidualStage,
    SEWBasicBlock,
    SEWBlock,
    SEWBottleneck,
    SpikingBasicBlock,
    SpikingBlock,
    XORBasicBlock,
    XORBlock,
    XORBottleneck,
    sew_connect,
)
from xorsnn.neurons import SpikingNeuron, neuron_factory
from xorsnn.ops import spike_or

SN = neuron_factory(FAMILIES["xor"].neuron)
MS_SN = neuron_factory(FAMILIES["ms"].neuron)


def _randomise_bn(module, scale=2.0):
    """Give every BN a random affine so branches actually fire."""
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                m.weight.uniform_(0.5, scale)
                m.bias.uniform_(-0.2, 1.0)


def test_sew_iand_operand_order_regression():
    s = torch.tensor([1.0, 0.0, 1.0, 0.0])
    a = torch.tensor([0.0, 1.0, 1.0, 0.0])
    assert sew_connect(a, s, "iand").tolist() == [1.0, 0.0, 0.0, 0.0]


@pytest.mark.parametrize("cls,planes", [(SEWBasicBlock, 8), (SEWBottleneck, 2)])
@pytest.mark.parametrize("connect", ["add", "and", "iand"])
def test_sew_zero_init_is_identity(cls, planes, connect):
    blk = cls(8, planes, neuron=SN, connect=connect)
    blk.zero_init_residual()
    x = binary(4, 2, 8, 5, 5)
    assert torch.equal(blk(x), x), "zero-init SEW block must pass its input (AND: branch fires everywhere)"


def test_sew_add_can_emit_two_and_and_iand_stay_binary():
    x = torch.ones(3, 2, 4, 5, 5)
    outs = {}
    for connect in ("add", "and", "iand"):
        blk = SEWBasicBlock(4, 4, neuron=SN, connect=connect)
        _randomise_bn(blk, 4.0)
        with torch.no_grad():
            blk.bn2.bias.fill_(3.0)  # make the backbone fire
        outs[connect] = blk(x)
    assert outs["add"].max() == 2
    for c in ("and", "iand"):
        assert set(outs[c].unique().tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize("cls", [MSBasicBlock, MSBottleneck])
def test_ms_shortcut_has_no_neuron_and_no_neuron_after_sum(cls):
    planes = 4 if cls is MSBasicBlock else 2
    blk = cls(6, planes, stride=2, neuron=MS_SN)
    assert blk.downsample is not None
    assert not any(isinstance(m, SpikingNeuron) for m in blk.downsample.modules())
    _randomise_bn(blk)
    x = torch.randn(3, 2, 6, 8, 8)  # membrane stream: real-valued
    out = blk(x)
    # the output is exactly branch + shortcut: recompute both halves by hand
    branch = blk.bn1(blk.conv1(blk.sn1(x)))
    if cls is MSBasicBlock:
        branch = blk.bn2(blk.conv2(blk.sn2(branch)))
    else:
        branch = blk.bn3(blk.conv3(blk.sn3(blk.bn2(blk.conv2(blk.sn2(branch))))))
    torch.testing.assert_close(out, branch + blk.downsample(x))
    assert len(out.unique()) > 10, "MS output is a real-valued membrane sum, not spikes"


def test_ms_zero_init_is_identity_on_real_input():
    blk = MSBasicBlock(4, 4, neuron=MS_SN)
    blk.zero_init_residual()
    x = torch.randn(3, 2, 4, 5, 5)
    assert torch.equal(blk(x), x)


@pytest.mark.parametrize("cls,planes", [(OABasicBlock, 8), (OABottleneck, 2), (XORBasicBlock, 8), (XORBottleneck, 2)])
def test_oa_zero_init_identity(cls, planes):
    blk = cls(8, planes, neuron=SN)
    blk.zero_init_residual()
    x = binary(3, 2, 8, 5, 5)
    assert torch.equal(blk(x), x)


@pytest.mark.parametrize("cls,planes", [(OABasicBlock, 4), (OABottleneck, 1)])
@pytest.mark.parametrize("stride,in_planes", [(1, 4), (2, 4), (1, 6)])
def test_oa_outputs_binary(cls, planes, stride, in_planes):
    blk = cls(in_planes, planes, stride=stride, neuron=SN)
    _randomise_bn(blk, 4.0)
    out = blk(binary(4, 2, in_planes, 6, 6))
    assert set(out.unique().tolist()) <= {0.0, 1.0}
    assert 0 < out.mean() < 1


def test_oa_identity_is_or_and_downsample_adds_currents():
    blk = OABasicBlock(4, 4, neuron=SN)
    _randomise_bn(blk, 4.0)
    x = binary(3, 2, 4, 5, 5)
    assert torch.equal(blk(x), spike_or(x, blk.sn2(blk.residual(x))))
    down = OABasicBlock(4, 8, stride=2, neuron=SN)
    _randomise_bn(down)
    assert not any(isinstance(m, SpikingNeuron) for m in down.downsample.modules())
    assert torch.equal(down(x), down.sn2(down.residual(x) + down.downsample(x)))


@pytest.mark.parametrize("mode", ["input", "output", "inner", "merge", "none"])
@pytest.mark.parametrize("or_form", ["poly", "max", "clamp"])
def test_xor_blocks_emit_binary(mode, or_form):
    blk = XORBasicBlock(4, 4, neuron=SN, xor_mode=mode, or_form=or_form)
    _randomise_bn(blk, 4.0)
    x, prev = binary(3, 2, 4, 5, 5), binary(3, 2, 4, 5, 5)
    out = blk(x, prev)
    assert set(out.unique().tolist()) <= {0.0, 1.0}


def test_xor_output_mode_is_forward_identical_to_plain_or():
    blk = XORBasicBlock(4, 4, neuron=SN, xor_mode="output")
    _randomise_bn(blk, 4.0)
    x = binary(3, 2, 4, 5, 5)
    out = blk(x)
    blk.xor_mode = "none"
    assert torch.equal(out, blk(x))


def test_xor_output_mode_changes_gradients_only():
    torch.manual_seed(1)
    a_blk = XORBasicBlock(4, 4, neuron=SN, xor_mode="output")
    _randomise_bn(a_blk, 4.0)
    b_blk = XORBasicBlock(4, 4, neuron=SN, xor_mode="none")
    b_blk.load_state_dict(a_blk.state_dict())
    x = binary(3, 2, 4, 5, 5)
    a_blk(x).sum().backward()
    b_blk(x).sum().backward()
    ga = a_blk.conv1.weight.grad
    gb = b_blk.conv1.weight.grad
    assert not torch.allclose(ga, gb)


def test_or_forms_agree_forward():
    blk = OABasicBlock(4, 4, neuron=SN)
    _randomise_bn(blk, 4.0)
    x = binary(3, 2, 4, 5, 5)
    outs = []
    for form in ("poly", "max", "clamp"):
        blk.or_form = form
        outs.append(blk(x))
    assert torch.equal(outs[0], outs[1]) and torch.equal(outs[0], outs[2])


def test_xor_input_mode_sees_only_spikes_added_by_previous_block():
    b1 = XORBasicBlock(4, 4, neuron=SN, xor_mode="input")
    b2 = XORBasicBlock(4, 4, neuron=SN, xor_mode="input")
    _randomise_bn(b1, 4.0)
    stage = ResidualStage(b1, b2)
    seen = {}
    b2.register_forward_pre_hook(lambda m, args: seen.update(x=args[0], prev=args[1]))
    x0 = binary(3, 2, 4, 5, 5, p=0.3)
    stage(x0)
    a1 = b1.sn2(b1.residual(x0))  # the first block gets x0 itself (first block of the stage)
    assert torch.equal(seen["prev"], x0)
    novel = b2.meta_residual(seen["x"], seen["prev"])
    assert torch.equal(novel, a1 * (1 - x0))
    assert novel.sum() > 0


def test_xor_input_mode_falls_back_to_x_on_shape_change():
    blk = XORBasicBlock(4, 4, neuron=SN)
    x = binary(3, 2, 4, 5, 5)
    assert torch.equal(blk.meta_residual(x, None), x)
    assert torch.equal(blk.meta_residual(x, binary(3, 2, 2, 10, 10)), x)


def test_xor_bottleneck_rejects_inner_and_bad_options():
    with pytest.raises(ValueError, match="not defined for bottleneck"):
        XORBottleneck(8, 2, neuron=SN, xor_mode="inner")
    with pytest.raises(ValueError, match="xor_mode must be one of"):
        XORBasicBlock(4, 4, neuron=SN, xor_mode="both")
    with pytest.raises(ValueError, match="or_form must be one of"):
        OABasicBlock(4, 4, neuron=SN, or_form="min")
    with pytest.raises(ValueError, match="connect must be one of"):
        SEWBasicBlock(4, 4, neuron=SN, connect="or")


def test_spiking_block_passes_identity_through_a_neuron():
    blk = SpikingBasicBlock(4, 4, neuron=neuron_factory({"type": "if"}))
    blk.zero_init_residual()
    x = binary(3, 2, 4, 5, 5)
    assert torch.equal(blk(x), x)  # IF with V_th = 1 passes binary input when the branch is zero


@pytest.mark.parametrize("cls", [SpikingBlock, SEWBlock, MembraneShortcutBlock, OABlock, XORBlock])
def test_fully_connected_forms(cls):
    blk = cls(16)
    x = binary(4, 3, 16)
    out = blk(x)
    assert out.shape == (4, 3, 16)
    out.sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in blk.parameters())
    assert isinstance(blk.conv1, nn.Linear)

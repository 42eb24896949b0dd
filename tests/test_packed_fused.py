"""Fused bit-packed Spiking / OA / XOR blocks: bitwise equal to the original blocks, exhaustive BN check, fallbacks."""

import pytest
import torch
from torch import nn

pytest.importorskip("numba")

from xorsnn.blocks import OABasicBlock, ResidualStage, SEWBasicBlock, SpikingBasicBlock, XORBasicBlock  # noqa: E402
from xorsnn.export.packed import FusedNeuron  # noqa: E402
from xorsnn.export.packed_core import PackedSpikes, packed_form  # noqa: E402
from xorsnn.export.packed_fused import (  # noqa: E402
    FusedBasicBlock,
    FusedBlockChain,
    can_fuse_block,
    fuse_blocks,
)
from xorsnn.neurons import make_neuron, neuron_factory  # noqa: E402

NEURONS = [
    {"tau": 2.0},
    {"tau": 1.1, "decay_input": False, "reset": "soft"},
    {"tau": None, "decay": 0.25, "v_threshold": 0.5},
    {"tau": 1.5, "v_reset": -0.3},
    {"tau": None, "decay": None},  # IF
]


def _pm1_block(cls, c_in, c_out, stride, spec, seed, **kwargs):
    """A block with exactly ±1 conv weights and 'trained' BN statistics (eval mode)."""
    g = torch.Generator().manual_seed(seed)
    block = cls(c_in, c_out, stride, neuron=neuron_factory(spec), **kwargs)
    with torch.no_grad():
        for mod in block.modules():
            if isinstance(mod, nn.Conv2d):
                mod.weight.copy_(torch.where(torch.randn(mod.weight.shape, generator=g) >= 0, 1.0, -1.0))
            if isinstance(mod, nn.BatchNorm2d):
                fan = mod.num_features
                mod.running_mean.copy_(torch.randn(fan, generator=g) * 3)
                mod.running_var.copy_(torch.rand(fan, generator=g) * 60 + 5)
                mod.weight.copy_(torch.rand(fan, generator=g) * 1.2 + 0.4)
                mod.bias.copy_(torch.rand(fan, generator=g) * 0.8)
    return block.eval()


def _spikes(shape, rate, seed):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g) < rate).float()


@pytest.mark.parametrize("spec", NEURONS)
@pytest.mark.parametrize("c_in,c_out,stride,hw", [
    (16, 16, 1, 8),    # identity shortcut, one partial word
    (64, 64, 1, 6),    # identity shortcut, one full word
    (40, 80, 2, 7),    # projection shortcut, odd size, 80 channels = 1 full + 1 partial word
    (64, 130, 2, 8),   # projection shortcut, 3 words
])
def test_fused_block_bitwise_equal_to_block(spec, c_in, c_out, stride, hw):
    block = _pm1_block(SpikingBasicBlock, c_in, c_out, stride, spec, seed=c_out)
    fused = FusedBasicBlock(block)
    x = _spikes((3, 2, c_in, hw, hw), 0.3, seed=hw)
    with torch.no_grad():
        ref, got = block(x), fused(x)
    assert fused.last_path == "fused"
    assert torch.equal(ref, got)
    assert 0.02 < float(ref.mean()) < 0.98  # the neurons fire: a real spike pattern is compared


def test_chain_of_blocks_equals_sequence_and_reuses_packed_input():
    spec = {"tau": 2.0}
    blocks = [_pm1_block(SpikingBasicBlock, 16, 16, 1, spec, 1), _pm1_block(SpikingBasicBlock, 16, 32, 2, spec, 2),
              _pm1_block(SpikingBasicBlock, 32, 32, 1, spec, 3)]
    seq = nn.Sequential(nn.Sequential(*blocks[:1]), nn.Sequential(*blocks[1:]))
    fused = nn.Sequential(nn.Sequential(nn.Sequential(*blocks[:1]), nn.Sequential(*blocks[1:])))
    names = fuse_blocks(fused)
    assert len(names) == 3 and isinstance(fused[0], FusedBlockChain)
    # the outermost container of blocks became one chain of all three (one float write, at the end)
    chains = [m for m in fused.modules() if isinstance(m, FusedBlockChain)]
    assert len(chains) == 1 and len(chains[0].blocks) == 3
    stem = FusedNeuron(make_neuron(spec))  # produces binary spikes and registers their packed form
    current = (torch.randn(1, 2, 16, 9, 9) + 0.8).expand(4, 2, 16, 9, 9)  # a static image's stem current
    with torch.no_grad():
        s = stem(current)
        assert torch.equal(s, make_neuron(spec)(current.contiguous()))
        assert packed_form(s) is not None  # the chain starts from these packed spikes, no re-packing
        ref, got = seq(s), fused(s)
    assert torch.equal(ref, got)
    assert [b.last_path for b in chains[0].blocks] == ["fused"] * 3


def test_non_binary_input_and_float64_fall_back_to_the_block():
    block = _pm1_block(SpikingBasicBlock, 16, 32, 2, {"tau": 2.0}, seed=4)
    fused = FusedBasicBlock(block)
    x = _spikes((2, 2, 16, 8, 8), 0.3, seed=0)
    x[0, 0, 0, 0, 0] = 2.0  # a SEW-ADD-like sum: not a binary spike
    with torch.no_grad():
        assert torch.equal(fused(x), block(x))
    assert fused.last_path == "unfused"
    block64 = _pm1_block(SpikingBasicBlock, 16, 32, 2, {"tau": 2.0}, seed=4).double()
    fused64 = FusedBasicBlock(block64)
    x64 = _spikes((2, 2, 16, 8, 8), 0.3, seed=0).double()
    with torch.no_grad():
        assert torch.equal(fused64(x64), block64(x64))
    assert fused64.last_path == "unfused"


def test_bn_check_is_exhaustive_and_can_fail():
    block = _pm1_block(SpikingBasicBlock, 16, 16, 1, {"tau": 2.0}, seed=5)
    fused = FusedBasicBlock(block)
    assert fused.l1.exact_for(8, 8)
    # one ulp off in one channel's scale: the epilogue no longer reproduces PyTorch's BN for some y
    fused.l1.alpha[3] = float(torch.nextafter(torch.tensor(fused.l1.alpha[3], dtype=torch.float32),
                                              torch.tensor(10.0)))
    fused.l1._exact.clear()
    assert not fused.l1.exact_for(8, 8)
    x = _spikes((2, 2, 16, 8, 8), 0.3, seed=1)
    with torch.no_grad():
        assert torch.equal(fused(x), block(x))  # refused the fused path, so still exact
    assert fused.last_path == "unfused"


def test_can_fuse_block_accepts_only_what_the_kernels_compute():
    spec = {"tau": 2.0}
    assert can_fuse_block(_pm1_block(SpikingBasicBlock, 16, 16, 1, spec, 0))
    assert not can_fuse_block(_pm1_block(SEWBasicBlock, 16, 16, 1, spec, 0))  # another merge
    float_block = SpikingBasicBlock(16, 16, 1, neuron=neuron_factory(spec)).eval()
    assert not can_fuse_block(float_block)  # weights not ±1
    real = _pm1_block(SpikingBasicBlock, 16, 16, 1, {"tau": None, "decay": 0.25, "real_valued": True}, 0)
    assert not can_fuse_block(real)  # real-valued spikes
    with pytest.raises(ValueError, match="can_fuse_block"):
        FusedBasicBlock(float_block)
    fused = FusedBasicBlock(_pm1_block(SpikingBasicBlock, 16, 16, 1, spec, 0))
    with pytest.raises(ValueError, match=r"\[T, B, C=16, H, W\]"):
        fused(torch.zeros(2, 2, 8, 4, 4))


@pytest.mark.parametrize("cls,kwargs", [
    (OABasicBlock, {}), (OABasicBlock, {"or_form": "max"}), (XORBasicBlock, {"xor_mode": "input"}),
    (XORBasicBlock, {"xor_mode": "output"}), (XORBasicBlock, {"xor_mode": "merge", "xor_form": "abs"}),
    (XORBasicBlock, {"xor_mode": "none"}),
])
@pytest.mark.parametrize("c_in,c_out,stride", [(80, 80, 1), (24, 80, 2)])
def test_fused_oa_and_xor_blocks_bitwise_equal(cls, kwargs, c_in, c_out, stride):
    block = _pm1_block(cls, c_in, c_out, stride, {"tau": 2.0}, seed=7, **kwargs)
    fused = FusedBasicBlock(block)
    x = _spikes((3, 2, c_in, 8, 8), 0.3, seed=1)
    x_prev = _spikes((3, 2, c_in, 8, 8), 0.3, seed=2)
    with torch.no_grad():
        if fused.uses_previous_input:
            assert torch.equal(fused(x, x_prev), block(x, x_prev))  # XOR(x, x_prev) feeds the backbone
        assert torch.equal(fused(x), block(x))
    assert fused.last_path == "fused"


def test_xoresnet_stages_chain_hands_on_previous_input_within_a_stage():
    spec = {"tau": 2.0}
    mk = lambda ci, co, st, seed: _pm1_block(XORBasicBlock, ci, co, st, spec, seed)  # noqa: E731
    stages = nn.Sequential(ResidualStage(mk(16, 16, 1, 1), mk(16, 16, 1, 2), mk(16, 16, 1, 3)),
                           ResidualStage(mk(16, 32, 2, 4), mk(32, 32, 1, 5), mk(32, 32, 1, 6)))
    holder = nn.Sequential(stages)
    import copy

    fused = copy.deepcopy(holder)
    fuse_blocks(fused)
    chain = fused[0]
    assert isinstance(chain, FusedBlockChain) and chain.stage_first == [True, False, False, True, False, False]
    x = _spikes((2, 2, 16, 8, 8), 0.25, seed=3)
    with torch.no_grad():
        ref, got = holder(x), fused(x)
        # the XOR inputs matter: the same blocks without x_prev give another output
        no_prev = x
        for blk in [b for st in stages for b in st]:
            no_prev = blk(no_prev)
    assert torch.equal(ref, got) and not torch.equal(ref, no_prev)
    assert [b.last_path for b in chain.blocks] == ["fused"] * 6


def test_packed_spikes_travel_as_values():
    """The packed words ride on the spike tensor itself: derived tensors and in-place changes drop them."""
    neuron = FusedNeuron(make_neuron({"tau": 2.0}))
    x = torch.randn(2, 2, 8, 4, 4) + 1.0
    a = neuron(x)
    assert isinstance(a, PackedSpikes) and packed_form(a) is not None
    assert packed_form(a.flatten(0, 1)) is None and packed_form(a * 1) is None and packed_form(a.clone()) is None
    assert type(a + 0) is torch.Tensor  # nothing computed from it claims to be packed
    b = neuron(x)
    b.add_(0)  # an in-place change invalidates the packed copy
    assert packed_form(b) is None
    c = neuron(x)
    c[0] = 1.0
    assert packed_form(c) is None
    assert packed_form(torch.zeros(2, 2, 8, 4, 4)) is None
    from xorsnn.export import packed as packed_mod

    assert not any(isinstance(v, dict) for k, v in vars(packed_mod).items() if k.isupper() or k.startswith("_P"))

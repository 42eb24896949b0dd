"""Block descriptions (xorsnn.blocks.spec): the interpreter equals every family's forward exactly."""

import pytest
import torch
from helpers import binary
from torch import nn

from xorsnn import create_model
from xorsnn.blocks import (
    MSBasicBlock,
    MSBottleneck,
    MultiShortcutBasicBlock,
    OABasicBlock,
    OABottleneck,
    SEWBasicBlock,
    SEWBottleneck,
    SpikingBasicBlock,
    SpikingBottleneck,
    XORBasicBlock,
    XORBottleneck,
)
from xorsnn.blocks.fc import MembraneShortcutBlock, OABlock, SEWBlock, SpikingBlock, XORBlock
from xorsnn.blocks.spec import BlockSpec, Op, Segment, block_spec, require_spec, run_spec
from xorsnn.layers import LINEAR
from xorsnn.neurons import neuron_factory

LIF = neuron_factory({"type": "lif", "tau": 2.0, "v_threshold": 1.0, "surrogate": "atan"})
MS = neuron_factory({"type": "lif", "tau": None, "decay": 0.25, "v_threshold": 0.5})

# (class, extra kwargs, neuron) -- every family and option that changes what a block computes
CASES = [
    (SpikingBasicBlock, {}, LIF),
    (SpikingBasicBlock, {"avg_down": True}, MS),
    (SpikingBottleneck, {}, LIF),
    *[(SEWBasicBlock, {"connect": c}, LIF) for c in ("add", "and", "iand")],
    *[(SEWBottleneck, {"connect": c}, LIF) for c in ("add", "iand")],
    (MSBasicBlock, {}, MS),
    (MSBottleneck, {}, MS),
    (MultiShortcutBasicBlock, {}, LIF),
    *[(OABasicBlock, {"or_form": f, "down_merge": d}, LIF) for f in ("poly", "max", "clamp") for d in ("add", "or")],
    (OABottleneck, {"down_merge": "or"}, LIF),
    (OABottleneck, {}, LIF),
    *[(XORBasicBlock, {"xor_mode": m}, LIF) for m in ("input", "output", "inner", "merge", "none")],
    *[(XORBasicBlock, {"xor_mode": "input", "xor_prev": "shortcut", "down_merge": d}, LIF) for d in ("add", "or")],
    (XORBasicBlock, {"xor_mode": "merge", "xor_form": "abs", "or_form": "max"}, LIF),
    *[(XORBottleneck, {"xor_mode": m}, LIF) for m in ("input", "output", "merge")],
    (XORBottleneck, {"xor_prev": "shortcut"}, LIF),
]


def _randomise(block: nn.Module, seed: int) -> None:
    """BN scales/shifts/statistics that make every neuron fire sometimes (the default init is too quiet)."""
    g = torch.Generator().manual_seed(seed)
    for m in block.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                m.weight.copy_(0.5 + 2 * torch.rand(m.weight.shape, generator=g))
                m.bias.copy_(0.5 + torch.randn(m.bias.shape, generator=g))
                m.running_var.copy_(0.05 + 0.2 * torch.rand(m.running_var.shape, generator=g))


def _call(block, x, x_prev, **kw):
    if getattr(block, "uses_previous_input", False):
        return block(x, x_prev, **kw)
    return block(x) if not kw else block(x, **kw)


def _cases_with_shapes():
    for cls, kw, neuron in CASES:
        expansion = cls.expansion
        for stride, planes in ((1, 8 // expansion if expansion > 1 else 8), (2, 4)):
            yield pytest.param(cls, kw, neuron, stride, planes, id=f"{cls.__name__}-{kw}-s{stride}-p{planes}")


@pytest.mark.parametrize("cls,kw,neuron,stride,planes", list(_cases_with_shapes()))
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_interpreter_equals_forward(cls, kw, neuron, stride, planes, mode):
    torch.manual_seed(0)
    block = cls(8, planes, stride, neuron=neuron, **kw)
    _randomise(block, 1)
    block.train(mode == "train")
    spec = block.spec()
    assert isinstance(spec, BlockSpec) and block_spec(block) is not None
    x = binary(3, 2, 8, 6, 6, p=0.4).requires_grad_(True)
    x_prev = binary(3, 2, 8, 6, 6, p=0.4)
    ref = _call(block, x, x_prev)
    ref_grads = torch.autograd.grad(ref.sum(), [x, *block.parameters()], allow_unused=True)
    out = run_spec(block, x, x_prev)
    grads = torch.autograd.grad(out.sum(), [x, *block.parameters()], allow_unused=True)
    assert torch.equal(out, ref)
    assert 0 < float(ref.detach().abs().sum()), "the case must exercise the neurons"
    for g, r in zip(grads, ref_grads, strict=True):
        assert (g is None and r is None) or torch.equal(g, r)
    if getattr(block, "hands_off_shortcut", False) or isinstance(block, (XORBasicBlock, XORBottleneck)):
        ref_out, ref_handoff = block(x, x_prev, return_handoff=True)
        out2, handoff = run_spec(block, x, x_prev, return_handoff=True)
        assert torch.equal(out2, ref_out) and torch.equal(handoff, ref_handoff)


@pytest.mark.parametrize(
    "block",
    [SpikingBlock(6), SEWBlock(6, connect="iand"), MembraneShortcutBlock(6), OABlock(6), XORBlock(6, xor_mode="input")],
    ids=lambda b: type(b).__name__,
)
def test_interpreter_equals_forward_fc(block):
    _randomise(block, 2)
    x, x_prev = binary(4, 3, 6), binary(4, 3, 6)
    assert torch.equal(run_spec(block, x, x_prev), _call(block, x, x_prev))


def test_the_interpreter_sees_a_wrong_description():
    """The test above can fail: a description that names the wrong merge computes something else."""
    block = OABasicBlock(8, 8, neuron=LIF)
    _randomise(block, 3)
    right = OABasicBlock.spec(block)
    wrong = BlockSpec("oa", (Segment(right.segments[0].branch, "identity", "xor", "sn2"),), "spikes")
    block.spec = lambda: wrong
    x = binary(2, 2, 8, 5, 5)
    assert not torch.equal(run_spec(block, x), block(x))


def test_spec_facts():
    xor = XORBasicBlock(8, 8, neuron=LIF, xor_mode="input")
    assert xor.spec().uses_previous_input and xor.spec().segments[0].meta
    down = XORBasicBlock(8, 16, 2, neuron=LIF, xor_mode="input", xor_prev="shortcut")
    s = down.spec()
    assert not s.uses_previous_input and s.handoff == "shortcut" and s.handoff_neuron == "sn_handoff"
    assert s.segments[0].merge == "current_add" and s.projects
    assert SEWBasicBlock(8, 8, neuron=LIF).spec().output_kind == "graded"
    assert SEWBasicBlock(8, 8, neuron=LIF, connect="and").spec().output_kind == "spikes"
    assert SpikingBottleneck(16, 4, neuron=LIF).spec().n_convs == 3
    assert MultiShortcutBasicBlock(8, 8, neuron=LIF).spec().n_convs == 2
    assert len(MultiShortcutBasicBlock(8, 8, neuron=LIF).spec().segments) == 2
    assert block_spec(nn.Conv2d(1, 1, 1)) is None


def test_spec_validation_messages():
    with pytest.raises(ValueError, match="Op.kind must be one of"):
        Op("pool", "p")
    with pytest.raises(ValueError, match="Segment.merge must be one of"):
        Segment((), "identity", "sum", "sn2")
    with pytest.raises(ValueError, match="membrane_add' takes no neuron"):
        Segment((), "identity", "membrane_add", "sn2")
    with pytest.raises(ValueError, match="'or' needs neuron"):
        Segment((), "identity", "or", None)


def test_require_spec_is_the_one_refusal():
    msc = MultiShortcutBasicBlock(8, 8, neuron=LIF)
    with pytest.raises(ValueError, match=r"b0: NIR does not support 2 residual segments per block \(the msc family\)"):
        require_spec(msc, "b0", "NIR")
    assert require_spec(msc, "b0", "x", segments=2, stream_norm=True).family == "msc"
    down = XORBasicBlock(8, 16, 2, neuron=LIF, xor_prev="shortcut")
    with pytest.raises(ValueError, match="does not support xor_prev='shortcut'"):
        require_spec(down, "b1", "NIR")
    with pytest.raises(ValueError, match="does not support the or merge"):
        require_spec(OABasicBlock(8, 8, neuron=LIF), "b2", "engine", merges=("current_add",))
    with pytest.raises(ValueError, match="has no block description"):
        require_spec(nn.Conv2d(1, 1, 1), "b3", "engine")


@pytest.mark.parametrize("name", ["xoresnet20", "sew_resnet18", "ms_resnet34", "spiking_resnet50", "msc_resnet18",
                                  "oa_resnet20"])
def test_depth_from_description(name):
    m = create_model(name, num_classes=10, T=1)
    convs = sum(m_.spec().n_convs for m_ in m.modules() if block_spec(m_) is not None)
    stem = 3 if m.stem_type == "cifar3" else 1
    assert m.depth == stem + convs + (2 if isinstance(m.hidden, nn.Sequential) else 1)
    digits = "".join(ch for ch in name.split("_")[-1] if ch.isdigit()) or "".join(c for c in name if c.isdigit())
    assert m.depth == int(digits)


def test_linear_kit_blocks_have_the_same_description():
    conv = OABasicBlock(6, 6, neuron=LIF).spec()
    fc = OABasicBlock(6, 6, neuron=LIF, layers=LINEAR).spec()
    assert conv == fc

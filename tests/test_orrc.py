"""ORRC (OR-Spiking ResNet, Shan et al.): the family added through the block description alone.

Every backend below reads ORRC's ``spec()``; none of them was edited for it.
"""

import pytest
import torch
from helpers import binary
from test_block_spec import LIF, _randomise
from test_reparam import assert_exact, small, trained_looking
from torch import nn

import xorsnn
from xorsnn.analysis import RedundancyMonitor, block_anatomy
from xorsnn.blocks import ORRCBasicBlock, ORRCBottleneck
from xorsnn.blocks.spec import run_spec


@pytest.mark.parametrize("cls,planes", [(ORRCBasicBlock, 8), (ORRCBottleneck, 2)])
@pytest.mark.parametrize("stride", [1, 2])
def test_description_equals_forward(cls, planes, stride):
    block = cls(8, planes if stride == 1 else 4, stride, neuron=LIF)
    _randomise(block, 0)
    x = binary(3, 2, 8, 6, 6, p=0.4).requires_grad_(True)
    ref = block(x)
    out = run_spec(block, x)
    assert torch.equal(out, ref) and 0 < float(ref.detach().sum()) < ref.numel()
    g_ref, g = (torch.autograd.grad(t.sum(), x)[0] for t in (ref, out))
    assert torch.equal(g, g_ref)


def _paper_orrc(block, x):
    """Shan et al.'s ORRC written out: ``S = x`` or ``SN(BN(conv1x1(x)))``, ``A = SN(BN(conv(...)))``,
    ``out = S + A - S A`` (the paper's OR)."""
    s = x if block.downsample is None else block.downsample(x)
    a = x
    for k in range(1, block.n_units + 1):
        a = getattr(block, f"sn{k}")(getattr(block, f"bn{k}")(getattr(block, f"conv{k}")(a)))
    return s + a - s * a


@pytest.mark.parametrize("cls,planes", [(ORRCBasicBlock, 8), (ORRCBottleneck, 2)])
@pytest.mark.parametrize("stride", [1, 2])
def test_equals_the_paper_formula(cls, planes, stride):
    """The block (built as OA with ``down_merge="or"``) is the paper's ``a + b - ab``, forward and backward,
    and its spiking shortcut is ``Conv1x1 - BN - SN``."""
    planes = planes if stride == 1 else 4
    block = cls(8, planes, stride, neuron=LIF)
    _randomise(block, 1)
    if stride > 1:
        assert [type(m).__name__ for m in block.downsample] == ["TimeConv2d", "TimeBatchNorm2d", "LIF"]
    x = binary(2, 2, 8, 6, 6).requires_grad_(True)
    a, b = block(x), _paper_orrc(block, x)
    assert torch.equal(a, b) and 0 < float(a.detach().sum()) < a.numel()
    assert torch.equal(*(torch.autograd.grad(t.sum(), x)[0] for t in (a, b)))
    assert block.spec().family == "orrc" and "down_merge" not in repr(block)


def test_registered_at_every_standard_depth():
    names = xorsnn.list_models("orrc_resnet*")
    assert len(names) == 15 and "orrc_resnet20" in names and "orrc_resnet18_cifar" in names
    m = xorsnn.create_model("orrc_resnet20", T=1)
    assert m.family == "orrc" and m.depth == 20 and not any(
        float(bn.weight.detach().abs().sum()) == 0 for bn in m.modules() if isinstance(bn, nn.BatchNorm2d)
    ), "ORRC's default is no zero-init"
    assert "OR-Spiking ResNet" in xorsnn.model_info("orrc_resnet56").description
    big = xorsnn.create_model("orrc_resnet50", T=1)
    assert isinstance(big.stages[0][0], ORRCBottleneck)


def test_redundancy_monitor_reads_it():
    m = xorsnn.create_model("orrc_resnet8", T=2, in_channels=1, num_classes=3).eval()
    assert block_anatomy(m.stages[1][0]).merge == "or" and block_anatomy(m.stages[1][0]).shortcut is not None
    with RedundancyMonitor(m) as mon, torch.no_grad():
        m(torch.rand(2, 1, 12, 12))
    rows = mon.results()
    assert len(rows) == 3 and all(r.merge == "or" and r.nonbinary_output == 0 for r in rows)


def test_nir_round_trip(tmp_path):
    pytest.importorskip("nir")
    from test_nir import _roundtrip, _trained_like

    model = _trained_like(xorsnn.SpikingResNet("orrc", [1, 1], widths=[4, 8], stem="cifar", num_classes=3, T=3,
                                               in_channels=1))
    x = torch.rand(2, 1, 8, 8, dtype=torch.float64)
    graph, _ = _roundtrip(model, x, tmp_path, 3)
    assert any(".merge.or" in n for n in graph.nodes)


def test_reparameterises_exactly():
    torch.manual_seed(0)
    x = torch.rand(3, 1, 10, 10, dtype=torch.float64)
    for kw in (dict(binary_scale="alpha"), dict(binary_scale="magnitude", block="bottleneck")):
        assert_exact(trained_looking(small("orrc", **kw), x, seed=2), x)


def test_packed_engine_is_bitwise_equal():
    pytest.importorskip("numba")
    from xorsnn.export import pack_model

    torch.manual_seed(0)
    x = torch.rand(2, 1, 10, 10)
    model = trained_looking(small("orrc", binary_scale="none").float(), x, seed=3)
    packed = pack_model(model)
    with torch.no_grad():
        assert torch.equal(packed(x), model(x))


def test_trains(tmp_path):
    """Learns the real 8x8 digits (sklearn) like the other families: measured 0.947 final-epoch test accuracy
    after 8 epochs (T=2, 2-core CPU, ~14 s)."""
    pytest.importorskip("sklearn")
    from test_training import small_cfg

    from xorsnn.training import train

    res = train(small_cfg(tmp_path, model="orrc_resnet8", epochs=8, T=2, model_kwargs={}))
    assert res.final_test_acc > 0.85, res.metrics

"""``xor_prev="shortcut"``: every identity XOR block after a downsampling block gets an active meta-residual."""

import pytest
import torch
from helpers import binary

import xorsnn
from xorsnn.analysis.redundancy import RedundancyMonitor, meta_residual_counts
from xorsnn.blocks import FAMILIES, ResidualStage, XORBasicBlock, XORBottleneck
from xorsnn.neurons import neuron_factory
from xorsnn.ops import spike_xor

SN = neuron_factory(FAMILIES["xor"].neuron)


def _randomise_bn(module: torch.nn.Module, scale: float) -> None:
    """Give every BN a random affine so the branches fire."""
    for m in module.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                m.weight.uniform_(0.5, scale)
                m.bias.uniform_(-0.2, 1.0)


@pytest.mark.parametrize("down_merge", ["add", "or"])
def test_block_after_downsample_reads_xor_with_shortcut_spikes(down_merge):
    torch.manual_seed(0)
    down = XORBasicBlock(4, 8, 2, neuron=SN, xor_prev="shortcut", down_merge=down_merge)
    nxt = XORBasicBlock(8, 8, neuron=SN, xor_prev="shortcut")
    _randomise_bn(down, 3.0)
    _randomise_bn(nxt, 3.0)
    with torch.no_grad():  # a shortcut that fires at about half of the positions
        down.downsample[1].weight.fill_(4.0)
        down.downsample[1].bias.fill_(1.5)
    stage = ResidualStage(down, nxt).eval()
    x0 = binary(3, 2, 4, 8, 8, p=0.4)
    with torch.no_grad():
        out = stage(x0)
        s = down.downsample(x0)
        shortcut_spikes = SN()(s) if down_merge == "add" else s  # SN' of the projected current / spiking shortcut
        x1 = down(x0)
        expected = nxt(x1, shortcut_spikes)
        manual = nxt.merge(x1, nxt.residual(spike_xor(x1, shortcut_spikes)))
    assert torch.equal(out, expected) and torch.equal(out, manual)
    assert 0.1 < shortcut_spikes.mean() < 0.9
    assert not torch.equal(spike_xor(x1, shortcut_spikes), x1)  # a real selection, not x1 again
    # the "input" reading feeds x1 itself to the branch after a shape change: a different branch current
    legacy = XORBasicBlock(8, 8, neuron=SN).eval()
    assert torch.equal(legacy.meta_residual(x1, x0), x1)
    with torch.no_grad():
        assert not torch.allclose(nxt.residual(x1), nxt.residual(spike_xor(x1, shortcut_spikes)))


def test_handoff_neuron_has_no_parameters_and_checkpoints_are_interchangeable():
    a = xorsnn.create_model("xoresnet14", in_channels=1, xor_prev="input")
    b = xorsnn.create_model("xoresnet14", in_channels=1, xor_prev="shortcut")
    assert a.state_dict().keys() == b.state_dict().keys()
    b.load_state_dict(a.state_dict())
    assert sum(1 for m in b.modules() if getattr(m, "hands_off_shortcut", False)) == 2


@pytest.mark.parametrize(("name", "prev", "expected"), [
    ("xoresnet14", "input", (1, 4)), ("xoresnet14", "shortcut", (3, 4)),
    ("xoresnet20", "input", (4, 7)), ("xoresnet20", "shortcut", (6, 7)),
    ("xoresnet18_cifar", "input", (1, 5)), ("xoresnet18_cifar", "shortcut", (4, 5)),
])
def test_active_meta_residual_counts(name, prev, expected):
    """Counted by the analysis monitor (what ``xorsnn analyze`` prints), even where a layer is silent."""
    torch.manual_seed(0)
    model = xorsnn.create_model(name, in_channels=1, T=1, xor_prev=prev, zero_init_residual=False)
    with torch.no_grad(), RedundancyMonitor(model) as mon:
        model(torch.rand(1, 1, 16, 16))
    assert meta_residual_counts(mon.results()) == expected


def test_shortcut_reading_trains_and_differs_in_gradients():
    torch.manual_seed(0)
    model = xorsnn.create_model("xoresnet14", in_channels=1, T=2, xor_prev="shortcut", zero_init_residual=False)
    model(torch.rand(4, 1, 28, 28)).sum().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_bad_xor_prev_options_are_refused():
    with pytest.raises(ValueError, match="xor_prev must be one of"):
        XORBasicBlock(4, 4, neuron=SN, xor_prev="stage")
    with pytest.raises(ValueError, match="has no effect with xor_mode='output'"):
        XORBasicBlock(4, 4, neuron=SN, xor_mode="output", xor_prev="shortcut")
    with pytest.raises(ValueError, match="xor_prev"):
        XORBottleneck(8, 2, neuron=SN, xor_mode="merge", xor_prev="shortcut")


def test_exporters_without_the_handoff_refuse_it():
    from xorsnn.export import reparameterize, to_nir

    model = xorsnn.create_model("xoresnet14", in_channels=1, T=2, xor_prev="shortcut")
    with pytest.raises(ValueError, match="NIR export does not support xor_prev='shortcut'"):
        to_nir(model, torch.rand(1, 1, 28, 28))
    binary_model = xorsnn.create_model("xoresnet14", in_channels=1, T=2, xor_prev="shortcut", weights="binary")
    with pytest.raises(ValueError, match="reparameterize does not support xor_prev='shortcut'"):
        reparameterize(binary_model)


def test_packed_engine_runs_the_shortcut_reading_exactly():
    pytest.importorskip("numba")
    from xorsnn.export import pack_model

    torch.manual_seed(0)
    model = xorsnn.create_model("xoresnet14", in_channels=1, T=2, xor_prev="shortcut", weights="binary",
                                zero_init_residual=False)
    with torch.no_grad():
        for _ in range(3):  # BN running statistics of real forward passes
            model(torch.rand(8, 1, 28, 28))
    model.eval()
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        ref = model(x)
        packed = pack_model(model)(x)
    assert torch.equal(ref, packed)

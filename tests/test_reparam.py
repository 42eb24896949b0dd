"""Exactness of the re-parameterised (addition-only) inference form, on real images."""

import copy

import pytest
import torch
from realdata import CIFAR_TEST, FMNIST_IMAGES, cifar10, fashion_mnist, find_or_prepare
from torch import nn

import xorsnn
from xorsnn.analysis import FiringMonitor
from xorsnn.export import ChannelAffine, FoldedNeuron, op_report, reparameterize
from xorsnn.layers import BinaryConv2d, is_binary_layer
from xorsnn.models import DeepSNNStack, SpikingResNet

_BN = nn.modules.batchnorm._BatchNorm


@pytest.fixture(scope="module")
def fmnist(tmp_path_factory):
    path, reason = find_or_prepare(FMNIST_IMAGES, "fashion-mnist", tmp_path_factory.mktemp("data"))
    if path is None:
        pytest.skip(reason)
    return fashion_mnist(path, 4)


def trained_looking(model, x, seed=0, negative_gamma=False):
    """Random BN affine (positive scales unless ``negative_gamma``), random alpha, exact zeros in the
    latent weights, BN running statistics calibrated on ``x``; returns the model in eval mode."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, _BN):
            with torch.no_grad():
                m.weight.copy_(torch.rand(m.weight.shape, generator=g, dtype=torch.float64) + 0.5)
                m.bias.copy_(torch.rand(m.bias.shape, generator=g, dtype=torch.float64) * 1.7 - 0.2)
                if negative_gamma:  # only valid where every BN follows a conv (post-activation families)
                    m.weight[::2] *= -1
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration pass
        if is_binary_layer(m):
            with torch.no_grad():
                m.weight[torch.rand(m.weight.shape, generator=g) < 0.05] = 0.0  # sign(0) = +1 must survive
                if m.log_alpha is not None:
                    m.log_alpha.copy_(torch.randn(m.log_alpha.shape, generator=g, dtype=torch.float64) * 0.3)
    model.train()
    with torch.no_grad():
        model(x)
    return model.eval()


def check_exported(model, exported):
    """Every conv/linear weight except the declared full-precision ones is exactly ±1, without bias."""
    fp = exported.full_precision_layers
    n_pm1 = 0
    for name, mod in exported.named_modules():
        assert not isinstance(mod, (_BN, BinaryConv2d)), f"{name} survived the export"
        if isinstance(mod, (nn.Conv2d, nn.Linear)):
            if name in fp:
                continue
            assert mod.bias is None and bool(((mod.weight == 1) | (mod.weight == -1)).all()), name
            n_pm1 += 1
    assert "stem_conv" in fp and "fc" in fp
    assert all(n in ("stem_conv", "fc", "hidden.0") or ".downsample." in n for n in fp), fp
    assert n_pm1 >= sum(is_binary_layer(m) for m in model.modules()) > 0
    assert any(is_binary_layer(m) for m in model.modules()), "the original model must be left untouched"


def assert_exact(model, x, tol=1e-9):
    with torch.no_grad():
        ref = model(x)
        exported = reparameterize(model)
        out = exported(x)
    assert ref.std() > 1e-3, "degenerate test: the network's output does not depend on the input"
    err = float((out - ref).abs().max())
    assert err < tol, f"max abs error {err:.3g}"
    check_exported(model, exported)
    return exported


def small(family, *, stem="cifar", block="basic", **kw):
    widths = [4, 8] if block == "bottleneck" else [8, 16]
    return SpikingResNet(family, [2, 1], block=block, widths=widths, stem=stem, num_classes=10, T=2, in_channels=1,
                         weights="binary", **kw).double()


CONFIGS = [
    ("spiking", dict(binary_scale="none")),
    ("spiking", dict(binary_scale="alpha", spikes="real")),
    ("spiking", dict(binary_scale="magnitude", block="bottleneck")),
    ("spiking", dict(binary_scale="alpha", spikes="real", block="bottleneck", stem="imagenet")),
    ("reverb", dict(binary_scale="alpha", spikes="real", stem="cifar3")),
    ("reverb", dict(binary_scale="magnitude", spikes="binary", stem="cifar3", head_hidden=12)),
    ("msc", dict(binary_scale="none")),
    ("msc", dict(binary_scale="alpha", spikes="real")),
    ("msc", dict(binary_scale="magnitude", spikes="real", fp_shortcut=False)),
    ("ms", dict(binary_scale="alpha", spikes="real")),
    ("ms", dict(binary_scale="magnitude", block="bottleneck")),
    ("sew", dict(binary_scale="alpha", connect="add")),
    ("sew", dict(binary_scale="none", connect="and")),
    ("sew", dict(binary_scale="magnitude", connect="iand", block="bottleneck")),
    ("oa", dict(binary_scale="alpha", down_merge="add")),
    ("oa", dict(binary_scale="magnitude", down_merge="or", block="bottleneck")),
    ("xor", dict(binary_scale="alpha", xor_mode="input")),
    ("xor", dict(binary_scale="none", xor_mode="inner")),
    ("xor", dict(binary_scale="magnitude", xor_mode="output", or_form="max")),
    ("xor", dict(binary_scale="alpha", xor_mode="merge")),
]


@pytest.mark.parametrize("family,kw", CONFIGS, ids=[f"{f}-{'-'.join(map(str, k.values()))}" for f, k in CONFIGS])
def test_reparameterised_model_equals_training_form_fp64(fmnist, family, kw):
    torch.manual_seed(0)
    model = trained_looking(small(family, **kw), fmnist, seed=1)
    exported = assert_exact(model, fmnist)
    if family == "msc" and kw["binary_scale"] != "magnitude":  # addition-only: no gains left in the streams
        assert not any(isinstance(m, ChannelAffine) for m in exported.modules())


def test_registered_msc_resnet20_reparameterises_exactly(fmnist):
    torch.manual_seed(0)
    model = xorsnn.create_model("msc_resnet20", T=2, in_channels=1, weights="binary", binary_scale="magnitude",
                                spikes="real").double()
    x = fmnist[:2]
    assert_exact(trained_looking(model, x, seed=2), x)


def test_registered_reverb_resnet20_reparameterises_exactly(tmp_path_factory, fmnist):
    """On CIFAR-10 where it can be prepared (its dataset), else on Fashion-MNIST."""
    path, _ = find_or_prepare(CIFAR_TEST, "cifar10", tmp_path_factory.mktemp("cifar"))
    x = cifar10(path, 2) if path is not None else fmnist[:1]
    model = xorsnn.create_model("reverb_resnet20", T=2, in_channels=x.shape[1], binary_scale="alpha").double()
    assert_exact(trained_looking(model, x, seed=3), x)


def test_fp32_relative_error(fmnist):
    torch.manual_seed(0)
    model64 = trained_looking(xorsnn.create_model("msc_resnet20", T=2, in_channels=1, weights="binary",
                                                  binary_scale="alpha", spikes="real").double(), fmnist, seed=4)
    model32 = copy.deepcopy(model64).float()
    x = fmnist.float()
    with torch.no_grad():
        exact, ref, out = model64(fmnist), model32(x), reparameterize(model32)(x)
    assert out.dtype == torch.float32
    assert float((out - ref).norm() / ref.norm()) < 1e-4
    assert float((out.double() - exact).norm() / exact.norm()) < 1e-4  # and close to the float64 function


def test_negative_bn_scales_after_binary_convs_are_absorbed_with_minus_sign(fmnist):
    torch.manual_seed(0)
    model = trained_looking(small("spiking", binary_scale="alpha", spikes="real"), fmnist, seed=5, negative_gamma=True)
    assert sum(int((m.weight < 0).sum()) for m in model.modules() if isinstance(m, _BN)) > 10
    exported = assert_exact(model, fmnist)
    # a flipped filter is -sign(W): -1 where the latent weight is exactly 0 (sign(-0) would stay +1)
    conv = model.stages[0][0].conv2
    flip = model.stages[0][0].bn2.weight.detach() < 0
    assert flip.any() and (conv.weight[flip] == 0).any()
    exported_w = exported.stages[0][0].conv2
    exported_w = (exported_w[1] if isinstance(exported_w, nn.Sequential) else exported_w).weight
    assert torch.equal(exported_w[flip], -conv.sign_weight()[flip])
    assert bool((exported_w[flip][conv.weight[flip] == 0] == -1).all())


def test_scales_that_cannot_cross_a_neuron_raise_naming_the_layer(fmnist):
    model = trained_looking(small("msc", binary_scale="alpha"), fmnist, seed=6)
    with torch.no_grad():
        model.stages[0][1].bn2.weight[3] = -0.5  # pre-activation BN on the shared residual stream
    with pytest.raises(ValueError, match=r"stages\.0\.1\.sn2.*from stages\.0\.1\.bn2.*channel\(s\) \[3\]"):
        reparameterize(model)
    spiking = trained_looking(small("spiking", binary_scale="alpha"), fmnist, seed=6)
    with torch.no_grad():
        spiking.stages[1][0].bn2.weight[5] = 0.0  # a zero scale cannot become a threshold
    with pytest.raises(ValueError, match=r"stages\.1\.0\.sn2.*> 0"):
        reparameterize(spiking)
    fresh = small("spiking", binary_scale="none", zero_init_residual=True).eval()  # zero-init gamma = 0
    with pytest.raises(ValueError, match=r"stages\.0\.0\.bn2.*> 0"):
        reparameterize(fresh)


@pytest.mark.parametrize("family,kw", [("xor", {}), ("oa", {"down_merge": "or"}), ("sew", {"connect": "add"})])
def test_logic_merges_with_real_spikes_are_refused(family, kw):
    model = small(family, binary_scale="alpha", spikes="real", **kw).eval()
    with pytest.raises(ValueError, match=r"stages\.0\.0: .*binary spikes"):
        reparameterize(model)


def test_unsupported_models_are_refused():
    with pytest.raises(ValueError, match="full precision"):
        reparameterize(xorsnn.create_model("spiking_resnet20", T=1))
    with pytest.raises(ValueError, match="positively homogeneous"):
        reparameterize(small("spiking", neuron={"v_reset": -0.2}).eval())
    with pytest.raises(ValueError, match="SpikingResNet"):
        reparameterize(DeepSNNStack(8, 2, "ms", num_classes=3, weights="binary"))
    with pytest.raises(ValueError, match="already"):
        reparameterize(reparameterize(small("ms").eval()))


def test_op_report_counts(fmnist):
    torch.manual_seed(0)
    # event counting of a ±1 conv, checked against an explicit count over receptive fields
    conv = xorsnn.layers.TimeConv2d(3, 4, 3, stride=2, padding=1, bias=False).double()
    with torch.no_grad():
        conv.weight.copy_(torch.where(torch.randn(4, 3, 3, 3) > 0, 1.0, -1.0))
    x = (torch.rand(2, 5, 3, 9, 9) < 0.3).double() * torch.rand(2, 5, 3, 9, 9)
    row = op_report(nn.Sequential(conv), x).rows[0]
    patches = nn.functional.unfold(x.flatten(0, 1), 3, padding=1, stride=2)  # [N, C*9, L]
    assert row.kind == "±1 weights" and row.multiplications == 0
    assert row.additions == pytest.approx(float((patches != 0).sum()) * 4 / 5)  # per sample (batch 5)

    model = trained_looking(small("reverb", binary_scale="alpha", spikes="real", stem="cifar3"), fmnist, seed=7)
    exported = reparameterize(model)
    rep = op_report(exported, fmnist)
    assert rep.full_precision == ["stem_conv", "fc"]
    rows = {r.name: r for r in rep.rows}
    stem, fc = rows["stem_conv"], rows["fc"]
    assert stem.kind == "full precision, MAC" and stem.multiplications == 1 * 8 * 28 * 28 * 9  # dense, once
    assert fc.multiplications == 2 * 16 * 10  # T = 2 steps of a 16 -> 10 classifier
    assert all(r.multiplications == 0 for r in rep.rows if r.kind == "±1 weights")
    # real-valued spikes: one multiplication per emitted spike of a neuron with an output gain
    spikes = []
    hooks = [m.register_forward_hook(lambda mod, a, o: spikes.append(float(torch.count_nonzero(o))))
             for m in exported.modules() if isinstance(m, FoldedNeuron) and m.gain is not None]
    with torch.no_grad():
        exported(fmnist)
    for h in hooks:
        h.remove()
    gains = sum(r.multiplications for r in rep.rows if r.kind == "neuron (folded)")
    assert gains == pytest.approx(sum(spikes) / fmnist.shape[0]) and gains > 0
    assert rep.additions > 10 * rep.multiplications
    assert "| **total** |" in rep.to_markdown()
    # the input kinds are analysis's (one vocabulary): pixels are real, ReverB's real-valued spikes too
    assert stem.input_kind == "real" and {r.input_kind for r in rep.rows} <= set(xorsnn.analysis.KINDS)
    with FiringMonitor(exported) as mon:
        with torch.no_grad():
            exported(fmnist)
    table = mon.op_table()
    kinds = {r.name: r.kind for r in table.rows}
    assert len(set(kinds) & set(rows)) >= 5
    assert all(rows[n].input_kind == k for n, k in kinds.items() if n in rows), (kinds, rows)
    # and its MACs (one counting rule): a dense row's multiplications are analyze's steps x A
    for name in ("stem_conv", "fc"):
        assert rows[name].multiplications == pytest.approx(table[name].steps * table[name].macs)

    # binary spikes, no alpha: nothing but the first/last layers (and pooling) multiplies
    plain = reparameterize(trained_looking(small("msc", binary_scale="none"), fmnist, seed=8))
    rep = op_report(plain, fmnist)
    mult_kinds = {r.kind for r in rep.rows if r.multiplications > 0}
    assert mult_kinds <= {"full precision, MAC", "average pool", "global average pool"}, mult_kinds


def test_an_ann_teacher_is_refused_by_name():
    from xorsnn.export import to_nir

    ann = xorsnn.create_model("ann_cifar_resnet8", weights="binary")
    with pytest.raises(ValueError, match=r"ANNResNet has no spiking neurons \(an ANN teacher\?\)"):
        reparameterize(ann)
    with pytest.raises(ValueError, match="to_nir: ANNResNet has no spiking neurons"):
        to_nir(xorsnn.create_model("ann_cifar_resnet8"), torch.rand(1, 3, 8, 8))

"""Tests of xorsnn.analysis: op counts, energy, kinds, redundancy, gradients, report, plots.

Hand-computed values come from the inputs (pixel values, hand-made spike tensors) by
arithmetic written out in the tests, never from running the analysed code path twice.
"""

import json
import math

import pytest
import torch
from helpers import binary
from torch import nn

from xorsnn.analysis import (
    FiringMonitor,
    OpRecord,
    RedundancyMonitor,
    accumulate_gradients,
    analyze,
    axnor_ops,
    block_anatomy,
    block_gradient_stats,
    capture_raster,
    count_ops,
    energy_from_counts,
    estimate_energy,
    register_op_counter,
    ssa_ops,
)
from xorsnn.blocks import (
    MembraneShortcutBlock,
    OABasicBlock,
    OABlock,
    ResidualStage,
    SEWBlock,
    SpikingBlock,
    XORBlock,
)
from xorsnn.layers import TimeConv2d, TimeLinear
from xorsnn.models import DeepSNNStack, SpikingResNet
from xorsnn.neurons import IF, RealSpikeLIF

E_MAC_A, E_AC_A = 4.6e-12, 0.9e-12
E_FLOP_B, E_SOP_B = 12.5e-12, 77e-15


# -- a tiny SNN whose every count follows from the pixel values ----------------------------------
class ToySSA(nn.Module):
    """Spikformer-style ``Q (K^T V)`` on ``[T, B, N, d]`` spikes; reports its matmuls via ``extra_ops``."""

    def forward(self, q, k, v):
        return q @ (k.transpose(-2, -1) @ v)

    def extra_ops(self, inputs, output):
        q, k, v = inputs
        return ssa_ops(q, k, v, step_samples=q.shape[0] * q.shape[1], order="kv_first")


class ToyNet(nn.Module):
    """Static image ``[B, 1, 4, 4]`` -> logits ``[T=2, B, 3]``.

    stem (3x3, centre taps 1.0 / 0.4, run ONCE and repeated over T) -> IF -> s0 (binary)
    conv 1x1 (both outputs = 1.5 * s0[ch0]) -> IF -> s1 = s0[ch0] on both channels
    fc on g = s0 + s1 (graded: values 0, 1, 2), plus a toy SSA on (s0, s1, s0).
    """

    T = 2

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 2, 3, padding=1, bias=False)
        self.sn0 = IF(v_threshold=1.0)
        self.conv = TimeConv2d(2, 2, 1, bias=False)
        self.sn1 = IF(v_threshold=1.0)
        self.attn = ToySSA()
        self.fc = TimeLinear(32, 3, bias=False)
        with torch.no_grad():
            self.stem.weight.zero_()
            self.stem.weight[0, 0, 1, 1] = 1.0
            self.stem.weight[1, 0, 1, 1] = 0.4
            self.conv.weight.zero_()
            self.conv.weight[:, 0, 0, 0] = 1.5
            self.fc.weight.fill_(0.1)

    def forward(self, x):
        y = self.stem(x)
        y = y.unsqueeze(0).expand(self.T, *y.shape)
        s0 = self.sn0(y)
        s1 = self.sn1(self.conv(s0))
        tokens = lambda s: s.flatten(3).transpose(-2, -1)  # noqa: E731  [T, B, 16, 2]
        a = self.attn(tokens(s0), tokens(s1), tokens(s0))
        return self.fc((s0 + s1).flatten(2)) + a.sum((-2, -1)).unsqueeze(-1)


def _toy_input():
    g = torch.Generator().manual_seed(3)
    idx = torch.randint(0, 3, (2, 1, 4, 4), generator=g)
    return torch.tensor([0.0, 0.6, 2.0])[idx]


def _toy_expected(x):
    """Per-sample counts by hand. IF, V_th = 1, constant input c over T = 2 steps:
    c = 2.0 fires at t = 0 and 1; c = 0.6 fires at t = 1 (0.6, 1.2); c = 0.8 (0.4 * 2.0) fires at t = 1;
    c = 0.24 (0.4 * 0.6) and c = 0 never fire."""
    B, T = x.shape[0], 2
    n2, n06 = int((x == 2.0).sum()), int((x == 0.6).sum())
    nnz_ch0 = 2 * n2 + n06  # spikes of s0 channel 0 (all steps, all samples)
    nnz_ch1 = n2  # s0 channel 1: x = 2.0 at t = 1 only
    nnz_s0, nnz_s1 = nnz_ch0 + nnz_ch1, 2 * nnz_ch0  # s1 = s0[ch0] copied to both channels
    entries = T * B * 2 * 16
    # g = s0 + s1: ch0 = 2 * s0[ch0]; ch1 = s0[ch1] + s0[ch0] (ch1 fires only where ch0 fires)
    nnz_g = nnz_ch0 + nnz_ch0
    nonunit_g = nnz_ch0 + nnz_ch1  # all of ch0 (value 2) + ch1 where both fire (value 2)
    return {
        "stem_A": 2 * 1 * 9 * 16,  # C_out * C_in * k*k * H*W
        "conv_A": 2 * 2 * 16,
        "fc_A": 32 * 3,
        "conv_rate": nnz_s0 / entries,
        "fc_rate": nnz_g / entries,
        "conv_sops": nnz_s0 * 2 / B,  # each input spike reaches 2 outputs (1x1 conv, 2 channels)
        "fc_sops": nnz_g * 3 / B,  # each non-zero input reaches 3 outputs
        "fc_nonunit": nonunit_g / nnz_g,
        # SSA, kv_first: k^T v has d*N*d MACs per (t, b); events = K spikes; q (k^T v): N*d*d, events = Q
        "ktv_sops": nnz_s1 * 2 / B,  # each k spike adds one row of v (d = 2 entries)
        "qkv_sops": nnz_s0 * 2 / B,
        "attn_A": 16 * 2 * 2,
        "sn0_rate": nnz_s0 / entries,
    }


def test_toy_network_counts_match_hand_computation_exactly():
    x, model = _toy_input(), ToyNet()
    exp = _toy_expected(x)
    with FiringMonitor(model) as mon:
        model(x)
    table = mon.op_table()
    assert [r.name for r in table] == ["stem", "conv", "attn:k^T@v", "attn:q@(k^T v)", "fc"]

    stem = table["stem"]
    assert (stem.macs, stem.steps, stem.dense, stem.kind) == (exp["stem_A"], 1.0, True, "real")
    assert stem.dense_macs == exp["stem_A"] and stem.sops == 0  # computed once, not x T

    conv = table["conv"]
    assert (conv.macs, conv.steps, conv.kind, conv.dense) == (exp["conv_A"], 2.0, "binary", False)
    assert conv.rate == exp["conv_rate"]
    assert conv.sops == exp["conv_sops"]

    fc = table["fc"]
    assert (fc.macs, fc.steps, fc.kind) == (exp["fc_A"], 2.0, "graded")
    assert fc.rate == exp["fc_rate"] and fc.sops == exp["fc_sops"] and fc.flagged
    assert fc.nonbinary_fraction == exp["fc_nonunit"] and fc.max_abs == 2.0

    ktv, qkv = table["attn:k^T@v"], table["attn:q@(k^T v)"]
    assert (ktv.macs, ktv.steps, ktv.kind) == (exp["attn_A"], 2.0, "binary")
    assert ktv.sops == exp["ktv_sops"] and qkv.sops == exp["qkv_sops"]

    binary_sops = exp["conv_sops"] + exp["ktv_sops"] + exp["qkv_sops"]
    assert table.dense_macs == exp["stem_A"]
    assert table.sops_binary == binary_sops
    assert table.sops_graded == exp["fc_sops"] and table.sops_real == 0
    assert table.ann_macs == exp["stem_A"] + exp["conv_A"] + exp["fc_A"] + 2 * exp["attn_A"]

    # energy, both conventions, both ways of pricing the graded fc input
    for conv_key, e_mac, e_sop in (("45nm", E_MAC_A, E_AC_A), ("77fJ", E_FLOP_B, E_SOP_B)):
        for graded_cost, e_graded in (("mac", e_mac), ("ac", e_sop)):
            e = estimate_energy(table, conv_key, graded_cost=graded_cost)
            assert e.dense_j == pytest.approx(e_mac * exp["stem_A"], rel=1e-12)
            assert e.binary_j == pytest.approx(e_sop * binary_sops, rel=1e-12)
            assert e.graded_j == pytest.approx(e_graded * exp["fc_sops"], rel=1e-12)
            assert e.total_j == pytest.approx(
                e_mac * exp["stem_A"] + e_sop * binary_sops + e_graded * exp["fc_sops"], rel=1e-12
            )
            assert e.ann_j == pytest.approx(e_mac * table.ann_macs, rel=1e-12)

    rates = {n.name: n for n in mon.neuron_stats()}
    assert rates["sn0"].rate == exp["sn0_rate"]
    n2, n06 = int((x == 2.0).sum()), int((x == 0.6).sum())
    assert rates["sn0"].rate_per_step == [n2 / 64, (2 * n2 + n06) / 64]  # per step: B * 2 * 16 = 64 entries


def test_counts_accumulate_over_batches_and_are_per_sample():
    x, model = _toy_input(), ToyNet()
    exp = _toy_expected(x)
    with FiringMonitor(model) as mon:
        model(x)
        model(x[:1])
        model(x[1:])
    table = mon.op_table()
    assert mon.samples == 4
    assert table["conv"].sops == pytest.approx(exp["conv_sops"], rel=1e-12)  # same data twice -> same per-sample
    assert table["stem"].steps == 1.0 and table["conv"].steps == 2.0


def test_stem_counted_once_for_static_images_and_T_times_for_sequences():
    model = SpikingResNet("oa", [1], widths=[4], stem="cifar", num_classes=3, T=3, zero_init_residual=False)
    stem_A = 3 * 4 * 9 * 8 * 8
    static = count_ops(model, torch.rand(2, 3, 8, 8))
    seq = count_ops(model, torch.rand(3, 2, 3, 8, 8))
    for table, steps in ((static, 1.0), (seq, 3.0)):
        assert table["stem_conv"].dense and table["stem_conv"].steps == steps
        assert table.dense_macs == steps * stem_A
        assert table["stages.0.0.conv1"].macs == 4 * 4 * 9 * 64 and table["stages.0.0.conv1"].steps == 3.0
        assert table["fc"].macs == 4 * 3
    assert static.ann_macs == stem_A + 2 * 4 * 4 * 9 * 64 + 12


def test_with_rate_and_steps_what_if():
    x, model = _toy_input(), ToyNet()
    table = count_ops(model, x)
    what_if = table.with_steps(4, dense=False).with_rate(0.25)
    assert what_if.dense_macs == table.dense_macs
    assert what_if.sops == 0.25 * 4 * what_if.sparse_macs
    assert what_if.mean_rate() == pytest.approx(0.25)


# -- graded / real inputs are flagged ------------------------------------------------------------
def _force_bn(module, beta):
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                m.weight.zero_()
                m.bias.fill_(beta)


def test_sew_add_stream_is_flagged_graded():
    model = DeepSNNStack(8, 2, "sew", num_classes=3, zero_init_residual=False).eval()
    _force_bn(model.blocks, 5.0)  # every backbone neuron fires at every step: A = 1
    with torch.no_grad():
        model.encoder[1].bias.fill_(5.0)
        model.encoder[1].weight.zero_()
    x = torch.rand(4, 8)
    table = count_ops(model, x)
    first = table["blocks.0.conv1"]  # encoder spikes: binary
    second = table["blocks.1.conv1"]  # block 0 output A + S = 2 everywhere
    assert first.kind == "binary" and not first.flagged
    assert second.kind == "graded" and second.flagged and second.max_abs == 2.0 and second.nonbinary_fraction == 1.0
    assert table["blocks.1.conv2"].kind == "binary"  # after a neuron
    assert table["fc"].kind == "graded"  # block 1 output: 3 everywhere
    assert table.sops_graded == second.sops + table["fc"].sops
    e_mac, e_ac = estimate_energy(table, "a", graded_cost="mac"), estimate_energy(table, "a", graded_cost="ac")
    assert e_mac.graded_j == pytest.approx(E_MAC_A * table.sops_graded)
    assert e_ac.graded_j == pytest.approx(E_AC_A * table.sops_graded)
    assert e_mac.binary_j == e_ac.binary_j == pytest.approx(E_AC_A * table.sops_binary)


def test_real_valued_inputs_flagged_and_first_layer_dense():
    model = nn.Sequential(TimeLinear(4, 6, bias=False), RealSpikeLIF(v_threshold=0.1), TimeLinear(6, 2, bias=False))
    with torch.no_grad():
        model[0].weight.fill_(0.35)
    x = torch.full((3, 2, 4), 0.5)  # [T, B, F]; current 4 * 0.35 * 0.5 = 0.7 -> real spikes
    table = count_ops(model, x)
    assert table["0"].dense and table["0"].kind == "real" and table["0"].dense_macs == 3 * 24
    assert table["2"].kind == "real" and table["2"].flagged and not table["2"].dense
    assert table.sops_real == table["2"].sops > 0 and table.sops_binary == 0


def test_membrane_stream_into_downsample_is_real():
    model = SpikingResNet("ms", [1, 1], widths=[4, 8], stem="cifar", num_classes=3, T=2, zero_init_residual=False)
    table = count_ops(model, torch.randn(2, 3, 8, 8), eval_mode=False)
    assert table["stages.1.0.downsample.0"].kind == "real" and table["stages.1.0.downsample.0"].flagged
    assert table["stages.1.0.conv1"].kind == "binary"  # MS: an LIF precedes every branch conv


def test_dense_layers_override_and_bad_names():
    x, model = _toy_input(), ToyNet()
    with FiringMonitor(model, dense_layers=["stem", "fc"]) as mon:
        model(x)
    t = mon.op_table()
    assert t["fc"].dense and t["fc"].sops == 0 and t.dense_macs == t["stem"].macs + 2 * t["fc"].macs
    with pytest.raises(ValueError, match="dense_layers"):
        FiringMonitor(model, dense_layers=["nope"])


# -- the extra-ops protocol ----------------------------------------------------------------------
def test_register_op_counter_for_a_class_without_extra_ops():
    class Masked(nn.Module):
        def forward(self, q, k):
            return q * k

    def counter(module, inputs, output):
        q, _ = inputs
        return [{"name": "mask", "macs": q.numel(), "rate": float((q != 0).float().mean()),
                 "step_samples": q.shape[0] * q.shape[1]}]

    register_op_counter(Masked, counter)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.m = Masked()

        def forward(self, q, k):
            return self.m(q, k)

    q = torch.tensor([[[1.0, 0, 0, 1]], [[0, 0, 0, 1]]])  # [T=2, B=1, 4], 3 spikes of 8
    with FiringMonitor(Net()) as mon:
        mon.model(q, torch.ones_like(q))
    row = mon.op_table()["m:mask"]
    assert (row.macs, row.steps, row.rate, row.sops) == (4.0, 2.0, 3 / 8, 3.0)
    with pytest.raises(ValueError, match="rate"):
        OpRecord("x", 1.0, 1.5, 1)


def test_axnor_expanded_form_is_exact_and_counted_sparsely():
    q, k, v = binary(2, 3, 8, 4, p=0.2), binary(2, 3, 8, 4, p=0.3), binary(2, 3, 8, 5, p=0.4)
    a, d = 0.25, q.shape[-1]
    direct = (q @ k.transpose(-2, -1) + a * (1 - q) @ (1 - k).transpose(-2, -1)) @ v
    ktv = k.transpose(-2, -1) @ v
    expanded = (
        (1 + a) * q @ ktv
        + a * (d - q.sum(-1, keepdim=True)) * v.sum(-2, keepdim=True)
        - a * (k.sum(-1, keepdim=True).transpose(-2, -1) @ v)
    )
    assert torch.allclose(direct, expanded, atol=1e-5)
    recs = {r.name: r for r in axnor_ops(q, k, v, step_samples=6)}
    n, dv = 8, 5
    assert recs["k^T@v"].macs == 6 * d * n * dv and recs["k^T@v"].rate == int(k.sum()) / k.numel()
    assert recs["q@(k^T v)"].rate * recs["q@(k^T v)"].macs == pytest.approx(int(q.sum()) * dv)
    assert recs["1^T@v"].rate * recs["1^T@v"].macs == pytest.approx(int(v.sum()))
    assert recs["axnor:combine"].dense and recs["axnor:combine"].macs == 3 * 6 * n * dv
    # no record prices the dense complements (1 - Q), (1 - K) as events
    assert all(r.rate <= max(int(t.sum()) / t.numel() for t in (q, k, v)) for r in recs.values() if not r.dense)


# -- spike redundancy through real blocks --------------------------------------------------------
def _fix_backbone(block, fire_features):
    """Make the branch's last neuron fire at every step on ``fire_features`` and never elsewhere."""
    block.eval()
    last_bn = block.bn2
    with torch.no_grad():
        last_bn.weight.zero_()
        last_bn.bias.fill_(-5.0)
        last_bn.bias[fire_features] = 5.0  # LIF tau 2: H = 2.5 >= 1 every step; -2.5 never


def test_oa_block_overlap_equals_hand_count():
    T, B, F = 3, 4, 6
    block = OABlock(F)
    _fix_backbone(block, [0, 1, 2])
    x = binary(T, B, F, p=0.5)
    with RedundancyMonitor(ResidualStage(block)) as mon:
        out = mon.model(x)
    (r,) = mon.results()
    positions = T * B * F
    both = int(x[..., :3].sum())  # A = 1 on features 0-2
    assert torch.equal(out, torch.maximum(x, torch.tensor([1.0, 1, 1, 0, 0, 0])))
    assert r.merge == "or" and r.backbone_rate == 0.5 and r.shortcut_rate == int(x.sum()) / positions
    assert r.overlap == both / positions
    assert r.overlap_of_backbone == both / (T * B * 3)
    assert r.output_rate == (T * B * 3 + int(x[..., 3:].sum())) / positions
    assert r.nonbinary_output == 0.0 and r.novel_fraction is None


def test_sew_add_nonbinary_output_is_the_overlap():
    T, B, F = 2, 5, 6
    block = SEWBlock(F, connect="add")
    _fix_backbone(block, [1, 4])
    x = binary(T, B, F, p=0.5)
    with RedundancyMonitor(ResidualStage(block)) as mon:
        mon.model(x)
    (r,) = mon.results()
    both = int(x[..., [1, 4]].sum())
    assert r.merge == "add" and r.overlap == both / (T * B * F)
    assert r.nonbinary_output == r.overlap  # ADD emits a 2 exactly where both fire


def test_xor_input_mode_novel_fraction():
    T, B, F = 2, 4, 6
    b1, b2 = XORBlock(F, xor_mode="input"), XORBlock(F, xor_mode="input")
    _fix_backbone(b1, [0, 1, 2])
    _fix_backbone(b2, [5])
    x = binary(T, B, F, p=0.4)
    with RedundancyMonitor(ResidualStage(b1, b2)) as mon:
        mon.model(x)
    r1, r2 = mon.results()
    x2 = torch.maximum(x, torch.tensor([1.0, 1, 1, 0, 0, 0]))  # block 1 output = block 2 input
    new = int((1 - x[..., :3]).sum())  # XOR(x2, x) = A1 * (1 - x): positions of features 0-2 where x = 0
    assert r1.novel_fraction is None and "inactive" in r1.note
    assert r2.novel_fraction == new / int(x2.sum())
    assert r2.backbone_input_rate == new / x.numel()


def test_blocks_without_spike_merge_report_none_with_a_note():
    x = binary(2, 3, 4)
    for block, merge in ((SpikingBlock(4), "current"), (MembraneShortcutBlock(4), "membrane")):
        with RedundancyMonitor(ResidualStage(block.eval())) as mon:
            mon.model(x)
        (r,) = mon.results()
        assert r.merge == merge and r.overlap is None and r.note
    down = OABasicBlock(4, 8, 2, neuron=lambda: IF(), down_merge="or")
    anat = block_anatomy(down)
    assert anat.merge == "or" and anat.shortcut is down.downsample[2] and anat.backbone is down.sn2
    assert block_anatomy(OABasicBlock(4, 8, 2, neuron=lambda: IF())).backbone is None


# -- gradients -----------------------------------------------------------------------------------
def test_gradient_cosine_and_norm_on_hand_set_gradients():
    model = DeepSNNStack(4, 3, "oa", num_classes=2)
    blocks = list(model.blocks)
    for blk, sign in zip(blocks, (1.0, -1.0, 0.0), strict=True):
        blk.conv1.weight.grad = torch.full_like(blk.conv1.weight, sign)
        blk.conv2.weight.grad = torch.full_like(blk.conv2.weight, 2.0 * sign)
    blocks[2].conv1.weight.grad = torch.eye(4)
    blocks[2].conv2.weight.grad = -torch.eye(4)
    stats = block_gradient_stats(model)
    assert [s.name for s in stats] == ["blocks.0", "blocks.1", "blocks.2"]
    assert stats[0].grad_norm == pytest.approx(math.sqrt(16 * 1 + 16 * 4))
    assert stats[1].cos_prev == pytest.approx(-1.0)
    # <(-1, -2) pattern, (I, -I)> = -1*4 + (-2)*(-4) = 4; norms sqrt(80) and sqrt(8)
    assert stats[2].cos_prev == pytest.approx(4 / math.sqrt(80 * 8))
    assert stats[1].compared == ["conv1.weight", "conv2.weight"]


def test_gradient_stats_from_backward_match_direct_computation():
    model = DeepSNNStack(6, 3, "ms", num_classes=3, zero_init_residual=False)
    x, y = torch.randn(5, 6), torch.randint(0, 3, (5,))
    before = {n: b.clone() for n, b in model.named_buffers()}
    stats = accumulate_gradients(model, [(x, y)])
    assert all(p.grad is None for p in model.parameters())  # restored
    assert all(torch.equal(before[n], b) for n, b in model.named_buffers())
    nn.functional.cross_entropy(model(x).mean(0), y).backward()
    g = [torch.cat([b.conv1.weight.grad.flatten(), b.conv2.weight.grad.flatten()]) for b in model.blocks]
    for i, s in enumerate(stats):
        assert s.grad_norm == pytest.approx(float(g[i].norm()), rel=1e-5)
        if i:
            assert s.cos_prev == pytest.approx(float(nn.functional.cosine_similarity(g[i - 1], g[i], dim=0)), abs=1e-5)


def test_gradient_cosine_across_shapes_uses_shared_parameters():
    model = SpikingResNet("xor", [1, 2], widths=[4, 8], stem="cifar", num_classes=3, T=2, zero_init_residual=False)
    x, y = torch.rand(2, 3, 8, 8), torch.tensor([0, 1])
    stats = accumulate_gradients(model, [(x, y)])
    assert [s.name for s in stats] == ["stages.0.0", "stages.1.0", "stages.1.1"]
    assert stats[1].cos_prev is None and "no parameter" in stats[1].note  # 4 -> 8 channels: nothing shared
    assert stats[2].compared == ["conv2.weight"] and stats[2].cos_prev is not None  # downsample block vs next


# -- the entry point, report, raster and plots ---------------------------------------------------
@pytest.fixture(scope="module")
def report():
    torch.manual_seed(1)
    model = SpikingResNet("sew", [1, 1], widths=[4, 8], stem="cifar", num_classes=3, T=2, zero_init_residual=False)
    batches = [(torch.rand(3, 3, 8, 8), torch.tensor([0, 1, 2])) for _ in range(2)]
    return analyze(model, batches, eval_mode=False, raster_layer="stages.0.0.sn1", raster_max_neurons=50)


def test_analyze_report_contents(report):
    assert report.T == 2 and report.samples == 6 and report.batches == 2
    assert report.ops["stem_conv"].dense and report.ops["stem_conv"].steps == 1.0
    assert any("once" in n for n in report.notes)
    assert len(report.blocks) == 2 and len(report.gradients) == 2
    assert report.raster.shape == (2, 50)
    e = report.headline
    assert (e.convention, e.graded_cost) == ("45nm", "mac")
    md = report.to_markdown()
    assert "(a) 45 nm CMOS" in md and "(b) 12.5 pJ/FLOP + 77 fJ/SOP" in md and "first-layer (dense) MACs" in md
    data = json.loads(report.to_json())
    assert data["totals"]["sops"] == pytest.approx(report.ops.sops)
    assert len(data["energy"]) == 4
    csv_text = report.to_csv("layers")
    assert csv_text.splitlines()[0].startswith("name,op,macs,steps,rate,kind")
    assert len(csv_text.splitlines()) == len(report.ops) + 1


def test_analyze_restores_model_state_and_checks_T():
    model = SpikingResNet("oa", [1], widths=[4], stem="cifar", num_classes=3, T=2)
    model.train()
    before = {n: b.clone() for n, b in model.named_buffers()}
    r = analyze(model, [torch.rand(2, 3, 8, 8)], T=3)
    assert r.T == 3 and model.T == 2 and model.training and r.gradients is None
    assert all(torch.equal(before[n], b) for n, b in model.named_buffers())
    with pytest.raises(ValueError, match="labelled"):
        analyze(model, [torch.rand(2, 3, 8, 8)], gradients=True)
    with pytest.raises(ValueError, match="empty"):
        analyze(model, [])


def test_capture_raster_matches_neuron_output():
    model = SpikingResNet("oa", [1], widths=[4], stem="cifar", num_classes=3, T=3).eval()
    x = torch.rand(2, 3, 8, 8)
    seen = {}
    h = model.stem_sn.register_forward_hook(lambda m, i, o: seen.setdefault("o", o))
    r = capture_raster(model, x, "stem_sn", sample=1)
    h.remove()
    assert torch.equal(r, seen["o"][:, 1].flatten(1))
    with pytest.raises(ValueError, match="not a module"):
        capture_raster(model, x, "stem_snn")


def test_plots_write_png(report, tmp_path):
    pytest.importorskip("matplotlib")
    from xorsnn.analysis.plots import save_plots

    paths = save_plots(report, tmp_path)
    assert {p.name for p in paths} == {"firing_rates.png", "raster.png", "grad_norms.png"}
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_save_writes_all_files(report, tmp_path):
    names = {p.name for p in report.save(tmp_path)}
    assert {"report.md", "report.json", "layers.csv", "energy.csv", "blocks.csv", "gradients.csv"} <= names


def test_energy_from_counts_validates():
    with pytest.raises(ValueError, match="convention"):
        energy_from_counts(dense_macs=1, sops=1, convention="c")
    with pytest.raises(ValueError, match="graded_cost"):
        energy_from_counts(dense_macs=1, sops=1, graded_cost="x")


# -- rasters a researcher can read: a chosen / picked layer and channel, named in the title ---------------
def test_raster_channel_auto_picks_the_samples_most_active_channel():
    from xorsnn.analysis import RasterRecorder

    spikes = torch.zeros(2, 3, 4, 5, 5)  # [T, B, C, H, W]
    spikes[:, 1, 2, :3] = 1.0  # sample 1: channel 2 fires most
    spikes[0, 1, 0, 0, 0] = 1.0
    spikes[:, 0, 3] = 1.0  # another sample's activity must not count
    layer = nn.Identity()
    model = nn.Sequential(layer)
    with RasterRecorder(model, "0", sample=1, channel="auto") as rec:
        model(spikes)
    assert rec.info["channel"] == 2 and rec.info["channels"] == 4 and rec.info["shape"] == [4, 5, 5]
    assert torch.equal(rec.raster, spikes[:, 1, 2].flatten(1))
    title = plot_title(rec)
    assert "sample 1" in title and "channel 2 of 4 (5x5 positions)" in title and "T=2" in title
    with pytest.raises(ValueError, match="channel=7 but '0' has 4 channels"), RasterRecorder(model, "0", channel=7):
        model(spikes)
    with pytest.raises(ValueError, match="channel must be None, 'auto' or an int"):
        RasterRecorder(model, "0", channel="most")


def plot_title(rec):
    from xorsnn.analysis.plots import raster_title

    return raster_title(rec.info, rec.layer)


def test_analyze_auto_raster_takes_the_layer_with_most_spikes():
    torch.manual_seed(0)
    model = SpikingResNet("xor", [1, 1], widths=[4, 8], stem="cifar", num_classes=3, T=2, zero_init_residual=False)
    rep = analyze(model, [torch.rand(2, 3, 8, 8)], raster_layer="auto", raster_channel="auto")
    spikes = {n.name: n.rate * n.neurons for n in rep.neurons if 0 < n.rate < 1}
    assert rep.raster_layer == max(spikes, key=spikes.get)
    assert rep.raster_info["channel"] is not None and rep.raster.shape[0] == 2
    assert json.loads(rep.to_json())["raster"]["layer"] == rep.raster_layer


def test_synaptic_events_is_the_exact_count_and_meets_the_sop_estimate_where_reach_is_uniform():
    """One counting rule for analyze and export: exact events against an explicit receptive-field count,
    and equal to ``rate x A x executions`` (the SOP estimate) where every input reaches as many outputs."""
    from xorsnn.analysis import synaptic_events, synaptic_macs

    torch.manual_seed(0)
    x = (torch.rand(2, 3, 4, 9, 9) < 0.3).float() * torch.rand(2, 3, 4, 9, 9)
    conv = nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2)
    patches = nn.functional.unfold(x.flatten(0, 1), 3, padding=1, stride=2)  # [N, C*9, L]
    expected = float((patches != 0).sum()) * 3  # a non-zero in a window feeds its group's 3 outputs
    assert synaptic_events(conv, x) == expected
    rate = float((x != 0).double().mean())
    flat = x.flatten(0, 1)  # [N, C, H, W]
    for layer, inp in ((nn.Conv2d(4, 5, 1), flat), (nn.Linear(9, 7), x)):
        macs, executions = synaptic_macs(layer, inp, layer(inp))
        assert synaptic_events(layer, inp) == pytest.approx(rate * macs * executions, rel=1e-9)
    # borders reach fewer outputs: the estimate over-counts a padded 3x3 conv
    macs, executions = synaptic_macs(conv, flat, conv(flat))
    assert synaptic_events(conv, x) < rate * macs * executions
    with pytest.raises(ValueError, match="synaptic_events: unsupported module type ReLU"):
        synaptic_events(nn.ReLU(), x)

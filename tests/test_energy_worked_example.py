"""Keeps docs/energy.md honest: its worked numbers recomputed through the xorsnn.analysis API.

The ResNet-34 MAC counts below are written out from the architecture table (torchvision layout:
7x7/2 stem to 112x112, max-pool to 56x56, stages [3, 4, 6, 3] at 56/28/14/7 with widths
64/128/256/512), independently of the counter.
"""

import pytest
import torch

from xorsnn import create_model
from xorsnn.analysis import count_ops, energy_from_counts, estimate_energy
from xorsnn.layers import TimeConv2d


def _conv(cin, cout, k, hw):
    return cin * cout * k * k * hw * hw


RESNET34_STEM = _conv(3, 64, 7, 112)
RESNET34_REST = (
    6 * _conv(64, 64, 3, 56)  # stage 1: 3 blocks x 2 convs
    + _conv(64, 128, 3, 28) + _conv(64, 128, 1, 28) + 7 * _conv(128, 128, 3, 28)
    + _conv(128, 256, 3, 14) + _conv(128, 256, 1, 14) + 11 * _conv(256, 256, 3, 14)
    + _conv(256, 512, 3, 7) + _conv(256, 512, 1, 7) + 5 * _conv(512, 512, 3, 7)
    + 512 * 1000  # fc
)


@pytest.fixture(scope="module")
def sew34():
    torch.manual_seed(0)
    return count_ops(create_model("sew_resnet34", T=1), torch.rand(1, 3, 224, 224))


@pytest.mark.slow
def test_sew34_mac_counts(sew34):
    assert RESNET34_STEM == 118_013_952 and RESNET34_REST == 3_545_747_456
    assert sew34.dense_macs == RESNET34_STEM  # the stem runs once per image
    assert sew34.sparse_macs == RESNET34_REST
    assert sew34.ann_macs == RESNET34_STEM + RESNET34_REST
    assert len(sew34) == 1 + 32 + 3 + 1  # stem, 16 blocks x 2 convs, 3 downsample convs, fc


@pytest.mark.slow
def test_sew34_published_energies_at_the_implied_rate(sew34):
    T, printed_sops = 4, 3.88e9
    rate = printed_sops / (T * sew34.sparse_macs)
    assert rate == pytest.approx(0.27357, abs=1e-5)
    table = sew34.with_steps(T, dense=False).with_rate(rate)
    assert table.sops == pytest.approx(printed_sops, rel=1e-12)
    b = estimate_energy(table, "b", graded_cost="ac")
    assert round(b.sop_j * 1e3, 3) == 0.299  # Spikformer Table 2 / SEW: SOPs x 77 fJ
    assert b.dense_j == pytest.approx(12.5e-12 * 118_013_952)  # 1.475 mJ the printed figure leaves out
    a = estimate_energy(table, "a", graded_cost="ac")
    assert a.total_j == pytest.approx(0.9e-12 * 3.88e9 + 4.6e-12 * 118_013_952, rel=1e-12)
    # Spikingformer's 4.04 mJ = E_AC x SOPs + E_MAC x stem MACs (once), within the rounding of "3.88 G"
    lo, hi = (
        energy_from_counts(dense_macs=sew34.dense_macs, sops=s, convention="a").total_j
        for s in (3.875e9, 3.885e9)
    )
    assert lo < 4.045e-3 and hi >= 4.035e-3  # some SOP count printed as "3.88 G" gives "4.04 mJ"


@pytest.mark.slow
@pytest.mark.parametrize("sops,printed_mj", [(4.83e9, 4.89), (9.30e9, 8.91), (13.72e9, 12.89)])
def test_spikingformer_recomputation_of_deeper_sew(sew34, sops, printed_mj):
    """SEW-50/101/152 share SEW-34's 7x7 stem: E_AC x printed SOPs + E_MAC x stem reproduces every figure."""
    e = energy_from_counts(dense_macs=sew34.dense_macs, sops=sops, convention="a")
    assert round(e.total_j * 1e3, 2) == printed_mj


def test_reverb_table5_rows():
    first_flops = 3.54e6
    rows = {"vanilla": (0.1642, 71.20e6, 49.73, 80.36), "reverb": (0.1718, 74.50e6, 49.99, 83.33)}
    totals = {}
    for name, (fr, sops, b_uj, a_uj) in rows.items():
        implied_A = sops / (fr * 2)
        assert round(implied_A / 1e6, 1) == 216.8
        assert fr * 2 * 216.8e6 == pytest.approx(sops, rel=5e-5 / fr)  # fr printed to 0.01 %
        b = energy_from_counts(dense_macs=first_flops, sops=sops, convention="b")
        a = energy_from_counts(dense_macs=first_flops, sops=sops, convention="a")
        assert round(b.total_j * 1e6, 2) == b_uj and round(a.total_j * 1e6, 2) == a_uj
        totals[name] = (round(b.total_j * 1e6, 2), round(a.total_j * 1e6, 2))  # the printed µJ
    assert round(b.dense_j * 1e6, 2) == 44.25 and round(a.dense_j * 1e6, 2) == 16.28
    assert round(100 * (totals["reverb"][0] / totals["vanilla"][0] - 1), 2) == 0.52  # from rounded totals
    assert round(100 * (totals["reverb"][1] / totals["vanilla"][1] - 1), 2) == 3.70
    assert b.dense_j / b.total_j > 0.88 and a.dense_j / a.total_j < 0.21
    ann = 1_769_472 + 216.8e6
    assert round(energy_from_counts(dense_macs=0, sops=0, ann_macs=ann, convention="b").ann_j * 1e3, 2) == 2.73
    # 1.0054 mJ; the notes' "1.006" rounds the MACs to 218.6M first
    assert round(energy_from_counts(dense_macs=0, sops=0, ann_macs=ann, convention="a").ann_j * 1e3, 4) == 1.0054


def test_illustrative_layer():
    conv = TimeConv2d(64, 64, 3, padding=1, bias=False)
    spikes = (torch.rand(4, 1, 64, 32, 32) < 0.15).float()
    table = count_ops(conv, spikes).with_rate(0.15)
    (row,) = table
    assert row.macs == 37_748_736 and row.steps == 4 and not row.dense
    assert round(table.sops / 1e6, 2) == 22.65
    a, b = estimate_energy(table, "a"), estimate_energy(table, "b")
    assert round(a.total_j * 1e6, 1) == 20.4 and round(a.ann_j * 1e6, 1) == 173.6
    assert round(b.total_j * 1e6, 2) == 1.74 and round(b.ann_j * 1e6, 1) == 471.9


def _sew_graded(name):
    """Layers fed by a SEW-ADD block output: every conv1 but the first block's, every downsample conv."""
    return (name.endswith("conv1") and not name.startswith("stages.0.0.")) or name.endswith("downsample.0")


def test_sew_add_graded_layers_measured():
    from xorsnn.models import SpikingResNet

    model = SpikingResNet("sew", [2, 2], widths=[8, 16], stem="cifar", num_classes=3, T=4, zero_init_residual=False)
    table = count_ops(model, torch.rand(4, 3, 16, 16), eval_mode=False)
    for row in table:
        expected = "real" if row.name in ("stem_conv", "fc") else "graded" if _sew_graded(row.name) else "binary"
        assert row.kind == expected, row.name


@pytest.mark.slow
def test_sew34_graded_share_and_mac_priced_energy(sew34):
    from dataclasses import replace

    from xorsnn.analysis import OpTable

    typed = OpTable(
        replace(r, kind="real" if r.name == "fc" else "graded" if _sew_graded(r.name) else r.kind) for r in sew34
    )
    flagged = sum(r.macs for r in typed if r.flagged)
    assert flagged == 1_580_453_888 and round(flagged / typed.sparse_macs, 3) == 0.446
    table = typed.with_steps(4, dense=False).with_rate(3.88e9 / (4 * sew34.sparse_macs))
    assert round(estimate_energy(table, "a", graded_cost="mac").total_j * 1e3, 2) == 10.43
    assert round(estimate_energy(table, "a", graded_cost="ac").total_j * 1e3, 3) == 4.035
    assert round(estimate_energy(table, "a").ann_j * 1e3, 2) == 16.85
    assert round(estimate_energy(table, "b").ann_j * 1e3, 2) == 45.80

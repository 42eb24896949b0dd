"""The XOResNet ablation and depth-study scripts (tiny runs of their core functions, so they do not
rot) and the gradient property behind the ablation's ``xor_mode="output"`` row."""

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

import xorsnn
from xorsnn.analysis import find_blocks

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("or_form", ["poly", "max"])
@pytest.mark.parametrize("xor_form", ["poly", "abs"])
def test_output_mode_identity_blocks_get_exactly_zero_gradient_under_zero_init(or_form, xor_form):
    """``out = OR(x, A * XOR(x, A))``: d out / dA = (1 - x)(x + 2A - 4xA) = 0 at A = 0 for binary x, and
    the zero-initialised last BN makes A = 0. So in ``output`` mode the identity blocks never start
    learning; ``input`` and ``none`` (OA) modes do get gradients there."""
    torch.manual_seed(0)
    x, y = torch.rand(4, 3, 16, 16), torch.tensor([0, 1, 2, 3])
    grads = {}
    for mode in ("output", "input", "none"):
        torch.manual_seed(1)
        m = xorsnn.create_model("xoresnet20", num_classes=10, T=2, xor_mode=mode, or_form=or_form, xor_form=xor_form,
                                zero_init_residual=True)
        torch.nn.functional.cross_entropy(m(x).mean(0), y).backward()
        grads[mode] = {n: sum(float(p.grad.abs().sum()) for p in b.parameters() if p.grad is not None)
                       for n, b in find_blocks(m) if b.downsample is None}
    assert len(grads["output"]) == 7 and all(g == 0.0 for g in grads["output"].values())
    assert all(g > 0 for g in grads["none"].values())
    assert sum(g > 0 for g in grads["input"].values()) >= 4


# -- the study scripts -------------------------------------------------------------------------
def test_input_mode_xor_blocks_start_with_only_a_bn_shift_gradient():
    """At zero-init every identity backbone is silent, so ``m = XOR(x_l, x_{l-1})`` -- the spikes the
    previous block added -- is exactly 0: conv1 sees zeros, BN2's normalised input is 0, and the only
    parameter of an active XOR block with a gradient is ``bn2.bias``. OA blocks (``none``) see ``x``, so
    their ``bn2.weight`` gets a gradient too."""
    torch.manual_seed(0)
    x, y = torch.rand(4, 3, 16, 16), torch.tensor([0, 1, 2, 3])
    active = {"stages.0.1", "stages.0.2", "stages.1.2", "stages.2.2"}  # same-shape predecessor, n = 3
    for mode, expected in (("input", {"bn2.bias"}), ("none", {"bn2.weight", "bn2.bias"})):
        torch.manual_seed(1)
        m = xorsnn.create_model("xoresnet20", num_classes=10, T=2, xor_mode=mode, zero_init_residual=True)
        torch.nn.functional.cross_entropy(m(x).mean(0), y).backward()
        for name, block in find_blocks(m):
            if name in active:
                nonzero = {n for n, p in block.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
                assert nonzero == expected, (mode, name, nonzero)


def _load(script):
    path = REPO / "benchmarks" / f"{script}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{script}", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def digits():
    pytest.importorskip("sklearn")
    from xorsnn.data import load_dataset

    return load_dataset("digits")


def test_ablation_core_runs_and_renders(digits, tmp_path):
    abl = _load("ablation_xoresnet")
    recipe = abl.Recipe(train_subset=64, test_subset=32, batch_size=32, analyze_batches=1, analyze_batch_size=16)
    row = abl.run_variant("xor_input", "digits", 20, 0, recipe, digits)
    assert row["model"] == "xoresnet20" and row["model_kwargs"] == {"xor_mode": "input"}
    assert 0 <= row["test_acc"] <= 100 and row["sops"] >= 0 and row["energy_45nm_uJ"] > 0
    assert row["energy_77fJ_uJ"] > 0 and row["nonbinary_out"] == 0.0  # OR keeps block outputs binary
    path = tmp_path / "abl.json"
    abl.merge_rows(path, {abl.row_key(row): row})
    other = {**row, "seed": 1, "test_acc": row["test_acc"] + 2.0}
    rows = abl.merge_rows(path, {abl.row_key(other): other})
    assert set(rows) == {"digits/20/xor_input/seed0", "digits/20/xor_input/seed1"}
    md = abl.render(rows)
    assert "## digits, depth 20 (seed 0)" in md and "| xor_input | `xoresnet20` (xor_mode=input) |" in md
    assert "Seed spread" in md and "| 1.41 |" in md  # stdev of (a, a + 2)
    with pytest.raises(ValueError, match="unknown variant"):
        abl.model_name("xor_sideways", 20)


def _random_images(n_train=64, n_test=40, size=16):
    """A DataBundle of random RGB images (the setting of the depth study's known init ratios)."""
    from xorsnn.data import DataBundle, DatasetInfo, ImageArrays

    g = torch.Generator().manual_seed(0)

    def split(n):
        return ImageArrays(torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g),
                           torch.randint(0, 10, (n,), generator=g))

    info = DatasetInfo("random", 10, 3, (size, size), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    return DataBundle(info, split(n_train), split(n_test))


def test_depth_study_core_runs_and_renders():
    ds = _load("depth_study")
    budget = ds.Budget(steps=2, batch_size=8, grad_batch=8, train_subset=64, test_subset=40)
    row = ds.run_depth("ms_resnet", 20, 0, budget, _random_images())
    assert row["steps"] == 2 and row["test_count"] == 40 and 0 <= row["test_acc"] <= 100
    assert row["grad_ratio_init"] > 0 and torch.isfinite(torch.tensor(row["loss_last"]))
    md = ds.render({"ms_resnet/20/seed0": row})
    assert "| ms_resnet | 20 |" in md
    with pytest.raises(ValueError, match="unknown family"):
        ds.run_depth("resnet", 20, 0, budget, _random_images())

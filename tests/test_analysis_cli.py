"""``xorsnn analyze`` end to end, and the attention ops of the spiking transformers in the op report."""

import json

import pytest
import torch

from xorsnn.analysis import FiringMonitor, analyze, count_ops, extra_op_records
from xorsnn.cli import main
from xorsnn.models import SpikeDrivenTransformer, Spikformer
from xorsnn.training import TrainConfig, build_model_from_checkpoint, train


# -- attention ops ------------------------------------------------------------------------------
def _tiny(cls, **kw):
    # embed 32, 4 heads (d = 8), 16x16 input -> 16 tokens; low threshold and BN on batch statistics
    # (train mode) so that Q/K/V spike
    return cls(embed_dim=32, depth=1, num_heads=4, T=2, num_classes=5, neuron={"v_threshold": 0.3}, **kw).train()


def _spikes(model, x):
    """Q, K, V spikes ``[T, B, N, C]`` of the (only) attention layer for input ``x``."""
    attn, seen = model.blocks[0].attn, {}
    hooks = [getattr(attn, n).sn.register_forward_hook(lambda m, i, o, n=n: seen.__setitem__(n, o))
             for n in ("q", "k", "v")]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return seen["q"], seen["k"], seen["v"]


CASES = {
    "ssa-dot-kv": (Spikformer, {"attn_order": "kv_first"}),
    "ssa-dot-qk": (Spikformer, {"attn_order": "qk_first"}),
    "ssa-axnor-kv": (Spikformer, {"attn_order": "kv_first", "similarity": "axnor", "a": 0.25, "a_learnable": False}),
    "ssa-axnor-qk": (Spikformer, {"attn_order": "qk_first", "similarity": "axnor", "a": 0.25, "a_learnable": False}),
    "sdsa-dot": (SpikeDrivenTransformer, {}),
    "sdsa-axnor": (SpikeDrivenTransformer, {"similarity": "axnor", "a": 0.25, "a_learnable": False}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_attention_matmuls_are_in_the_op_report_with_hand_counted_sops(case):
    cls, kw = CASES[case]
    torch.manual_seed(0)
    model = _tiny(cls, **kw)
    x = torch.rand(3, 3, 16, 16) * 2
    q, k, v = _spikes(model, x)
    B, T, N, h, d = 3, 2, 16, 4, 8
    nq, nk, nv = (int((s != 0).sum()) for s in (q, k, v))
    assert min(nq, nk, nv) > 0, "the test needs Q, K and V spikes"
    table = count_ops(model, x, eval_mode=False)
    rows = {r.name.split(":", 1)[1]: r for r in table if r.name.startswith("blocks.0.attn:")}
    sops = {n: r.sops * B for n, r in rows.items()}  # per batch, to compare with spike counts
    macs = {n: r.macs for n, r in rows.items()}  # per sample and time step
    assert all(r.steps == T for r in rows.values())
    if cls is Spikformer and kw["attn_order"] == "kv_first":
        # K^T V: every K spike adds a row of V (d accumulates); Q (K^T V): every Q spike adds d entries
        expected = {"k^T@v": nk * d, "q@(k^T v)": nq * d}
        assert macs["k^T@v"] == macs["q@(k^T v)"] == h * N * d * d == 4096
        if kw.get("similarity") == "axnor":
            expected.update({"|q|": nq, "|k|": nk, "1^T@v": nv, "|k|^T@v": nv})
            assert rows["axnor:combine"].dense and rows["axnor:combine"].dense_macs == T * 3 * h * N * d
    elif cls is Spikformer:
        # Q K^T: every Q spike adds a row of K^T (N entries); (Q K^T) V: every V spike adds a column (N)
        expected = {"q@k^T": nq * N, "(q k^T)@v": nv * N}
        assert macs["q@k^T"] == macs["(q k^T)@v"] == h * N * N * d == 8192
        if kw.get("similarity") == "axnor":
            expected.update({"|q|": nq, "|k|": nk})
            assert rows["axnor:correction"].dense_macs == T * 2 * h * N * N
    else:
        expected = {"k*v": nk, "sum_N(k*v)": int(((k != 0) & (v != 0)).sum()), "q*kv": nq}
        assert macs["k*v"] == N * 32 == 512
        if kw.get("similarity") == "axnor":
            expected.update({"axnor:sum_N(k)": nk, "axnor:sum_N(v)": nv})
            assert rows["axnor:correction"].dense_macs == T * 3 * 32
    assert {n: s for n, s in sops.items() if not rows[n].dense} == pytest.approx(expected)
    # the analysis leaves nothing behind, and counting needs the analysis to ask for the operands
    attn = model.blocks[0].attn
    assert attn.capture_op_operands is False and attn._op_operands is None
    with pytest.raises(ValueError, match="capture_op_operands"):
        extra_op_records(attn, (torch.zeros(2, 3, N, 32),), None)


def test_attention_ops_enter_the_energy_totals():
    torch.manual_seed(0)
    model = _tiny(Spikformer, similarity="axnor", a=0.25, a_learnable=False)
    x = torch.rand(2, 3, 16, 16) * 2
    report = analyze(model, [x], T=2, gradients=False, eval_mode=False)
    attn_sops = sum(r.sops for r in report.ops if ":" in r.name)
    layer_sops = sum(r.sops for r in report.ops if ":" not in r.name)
    assert attn_sops > 0 and report.ops.sops == pytest.approx(attn_sops + layer_sops)
    with FiringMonitor(model):
        assert model.blocks[0].attn.capture_op_operands is True
    assert model.blocks[0].attn.capture_op_operands is False


# -- xorsnn analyze ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    pytest.importorskip("sklearn")
    out = tmp_path_factory.mktemp("analyze_run")
    cfg = TrainConfig(model="xoresnet20", dataset="digits", epochs=1, batch_size=32, train_subset=96, test_subset=64,
                      T=2, optimizer="adamw", lr=5e-3, out_dir=str(out), progress=False, device="cpu",
                      model_kwargs={"neuron": {"v_threshold": 0.5}, "zero_init_residual": False})
    train(cfg)
    return out


def test_analyze_cli_end_to_end(digits_run, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "analysis"
    rc = main(["-q", "analyze", str(digits_run), "--batches", "2", "--batch-size", "16", "--out", str(out),
               "--raster-layer", "stages.0.1.sn1", "--convention", "77fJ"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "## Raw counts" in text and "SOPs, binary-spike inputs" in text
    assert "(a) 45 nm" in text and "(b) 12.5 pJ/FLOP" in text  # both conventions, whatever the headline
    assert "under convention (b)" in text
    for name in ("report.md", "report.json", "layers.csv", "neurons.csv", "blocks.csv", "gradients.csv",
                 "energy.csv", "firing_rates.png", "raster.png", "grad_norms.png", "run.json"):
        assert (out / name).is_file(), name
    assert (out / "raster.png").read_bytes()[:4] == b"\x89PNG"
    data = json.loads((out / "report.json").read_text())
    assert data["samples"] == 32 and data["raster"]["layer"] == "stages.0.1.sn1"
    # the command's numbers are those of analyze() on the same model and batches
    from xorsnn.analysis.cli import checkpoint_batches

    model, meta = build_model_from_checkpoint(digits_run)
    _, batches = checkpoint_batches(meta, dataset=None, data_dir=None, batches=2, batch_size=16, T=2)
    ref = analyze(model, batches, T=2)
    assert data["totals"] == pytest.approx(json.loads(json.dumps(ref.to_dict()))["totals"])
    assert ref.ops.sops > 0
    assert len(data["layers"]) == len(ref.ops.rows) and data["grad_norm_ratio"] == pytest.approx(ref.grad_norm_ratio)


def test_analyze_cli_rejects_bad_arguments(digits_run, tmp_path, capsys):
    assert main(["analyze", str(digits_run), "--convention", "7nm", "--out", str(tmp_path)]) == 2
    assert "convention must be one of" in capsys.readouterr().err
    assert main(["analyze", str(digits_run), "--raster-layer", "nope", "--out", str(tmp_path)]) == 2
    assert "not a module of the model" in capsys.readouterr().err
    assert main(["analyze", str(tmp_path / "missing"), "--out", str(tmp_path)]) == 2

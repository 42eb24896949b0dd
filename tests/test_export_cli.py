"""``xorsnn export`` (NIR and re-parameterised model) and ``xorsnn bench-infer`` through the CLI."""

import json

import pytest
import torch
from torch import nn

from xorsnn.cli import build_parser, main
from xorsnn.models import create_model
from xorsnn.training import save_checkpoint

KWARGS = {"widths": [8, 16, 32], "num_classes": 10, "T": 2, "in_channels": 1, "weights": "binary"}


def _checkpoint(tmp_path, name="spiking_resnet20", **extra):
    torch.manual_seed(0)
    kwargs = {**KWARGS, **extra}
    model = create_model(name, **kwargs)
    g = torch.Generator().manual_seed(0)
    for mod in model.modules():
        if isinstance(mod, nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                mod.weight.uniform_(0.5, 1.5, generator=g)
                mod.bias.uniform_(0.2, 1.0, generator=g)
    run = tmp_path / "run"
    meta = {"model": name, "model_kwargs": kwargs, "xorsnn_config": {"dataset": "fashion_mnist"}}
    save_checkpoint(run, model, {}, meta, epoch=1, is_best=True)
    return run, model.eval()


def test_parser_has_export_and_bench_infer():
    subparsers = next(a for a in build_parser()._actions if a.dest == "command").choices
    assert {"export", "bench-infer"} <= set(subparsers)


def test_export_nir_roundtrip(tmp_path, capsys):
    nir = pytest.importorskip("nir")
    from xorsnn.export.nir_sim import simulate

    run, model = _checkpoint(tmp_path)
    out = tmp_path / "model.nir"
    assert main(["-q", "export", "--format", "nir", str(run), str(out)]) == 0
    assert "NIR nodes" in capsys.readouterr().out
    graph = nir.read(str(out))
    x = torch.randn(3, 1, 28, 28)  # Fashion-MNIST size, from the checkpoint's dataset
    with torch.no_grad():
        ref = model.double()(x.double())
    got, _ = simulate(graph, x.double().unsqueeze(0).expand(2, *x.shape))
    assert (got - ref).abs().max() < 1e-9


def test_export_for_norse_warns_in_one_line_and_reads_back(tmp_path, capsys):
    """A residual network exported for Norse: the CLI prints xorsnn's warning as one ``xorsnn export:
    warning:`` line naming the loader (not Python's file:line form), and the file passes ``nir.read``'s
    type check (the batched Flatten counts its dims from the end)."""
    nir = pytest.importorskip("nir")
    import subprocess
    import sys
    import warnings

    run, _ = _checkpoint(tmp_path)
    out = tmp_path / "model.nir"
    proc = subprocess.run([sys.executable, "-m", "xorsnn", "-q", "export", "--format", "nir", "--consumer", "norse",
                           str(run), str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "xorsnn export: warning: consumer='norse' on a residual network" in proc.stderr
    assert "norse_from_nir" in proc.stderr and "UserWarning" not in proc.stderr and ".py:" not in proc.stderr
    assert nir.read(str(out)).metadata["consumer"] == "norse"
    with warnings.catch_warnings():  # in process: the CLI restores Python's formatter when it returns
        warnings.simplefilter("ignore")
        assert main(["-q", "export", "--format", "nir", "--consumer", "norse", str(run), str(out)]) == 0
    assert warnings.formatwarning.__module__ == "warnings"


def test_export_nir_refuses_or_blocks_that_cannot_be_lowered(tmp_path, capsys):
    pytest.importorskip("nir")
    run, _ = _checkpoint(tmp_path, "xoresnet20", spikes="real")
    assert main(["-q", "export", "--format", "nir", str(run), str(tmp_path / "x.nir")]) == 2
    assert "real-valued spikes" in capsys.readouterr().err


def test_export_reparam(tmp_path, capsys):
    from safetensors.torch import load_file

    from xorsnn.export import reparameterize

    run, model = _checkpoint(tmp_path)
    out = tmp_path / "reparam"
    assert main(["-q", "export", "--reparam", str(run), str(out)]) == 0
    printed = capsys.readouterr().out
    assert "±1 weights" in printed and "full-precision layers: stem_conv" in printed
    sidecar = json.loads((out / "model.json").read_text())
    assert sidecar["model"] == "spiking_resnet20" and "fc" in sidecar["full_precision_layers"]
    assert sidecar["op_report"]["multiplications"] > 0 and sidecar["max_abs_logit_diff_vs_source"] < 1e-3
    tensors = load_file(str(out / "model.safetensors"))
    expected = reparameterize(model).state_dict()
    assert set(tensors) == set(expected)
    for k, v in expected.items():
        assert torch.equal(tensors[k], v), k
    w = tensors["stages.0.0.conv2.weight"]
    assert bool(((w == 1) | (w == -1)).all())
    # the same through --format reparam
    assert main(["-q", "export", "--format", "reparam", str(run), str(tmp_path / "r2")]) == 0


def test_export_needs_a_format(tmp_path, capsys):
    run, _ = _checkpoint(tmp_path)
    assert main(["-q", "export", str(run), str(tmp_path / "o")]) == 2
    assert "--format nir or --format reparam" in capsys.readouterr().err


def test_bench_infer_quick(capsys):
    pytest.importorskip("numba")
    assert main(["-q", "bench-infer", "--arch", "resnet20", "--batch", "2", "--T", "1", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "| resnet20 | 2 | 1 |" in out and "| True |" in out


@pytest.mark.parametrize("extra", [{}, {"binary_scale": "alpha"}])
def test_bench_infer_times_a_trained_run(tmp_path, capsys, extra):
    """``bench-infer RUN`` packs the checkpoint (re-parameterising scaled binary weights), checks the packed
    logits equal torch's on the run's own test images, times both and says what it did on stderr."""
    pytest.importorskip("numba")
    from realdata import data_dir

    run, _ = _checkpoint(tmp_path, "xoresnet20", **extra)
    args = ["bench-infer", str(run), "--dataset", "fashion_mnist", "--data-dir", str(data_dir("fashion_mnist")),
            "--batch", "1", "4", "--repeats", "1"]
    assert main(args) == 0
    captured = capsys.readouterr()
    rows = [line for line in captured.out.splitlines() if line.startswith("| xoresnet20 |")]
    assert [r.split("|")[2].strip() for r in rows] == ["1", "4"]
    assert all("| True |" in r for r in rows), rows  # packed == torch on real images, bitwise
    assert "first 4 fashion_mnist test images" in captured.out and "epoch 1" in captured.out
    assert "packing" in captured.err and "batch 4" in captured.err
    assert main(["-q", *args]) == 0 and capsys.readouterr().err == ""


def test_bench_infer_refuses_a_float_run(tmp_path, capsys):
    run, _ = _checkpoint(tmp_path, weights="float")
    assert main(["-q", "bench-infer", str(run), "--batch", "1", "--repeats", "1"]) == 2
    assert "needs a binary-weight model" in capsys.readouterr().err


@pytest.mark.parametrize("name,extra", [("spiking_resnet20", {}), ("xoresnet20", {}),
                                        ("xoresnet20", {"binary_scale": "alpha"})])
def test_eval_packed_engine_matches_torch_on_fashion_mnist(tmp_path, capsys, name, extra):
    pytest.importorskip("numba")
    from realdata import data_dir

    root = data_dir("fashion_mnist")
    run, _ = _checkpoint(tmp_path, name, **extra)
    common = ["-q", "eval", str(run), "--data-dir", str(root), "--test-subset", "96", "--batch-size", "32",
              "--device", "cpu", "--json"]
    assert main(common) == 0
    ref = json.loads(capsys.readouterr().out)
    assert main([*common, "--engine", "packed"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["engine"] == "packed" and got["packed_layers"] >= 6
    assert got["reparameterized"] == ("binary_scale" in extra)
    assert got["fused_blocks"] == (0 if extra else 9)  # re-parameterised blocks run layer by layer
    assert got["count"] == ref["count"] == 96
    if extra:  # alpha folded into thresholds: equal up to rounding
        assert got["acc"] == pytest.approx(ref["acc"], abs=2 / 96)
        assert got["loss"] == pytest.approx(ref["loss"], rel=1e-3)
    else:  # bitwise-equal logits
        assert got["acc"] == ref["acc"] and got["loss"] == ref["loss"]


def test_eval_packed_engine_refuses_float_models_and_gpus(tmp_path, capsys):
    pytest.importorskip("numba")
    run, _ = _checkpoint(tmp_path, weights="float")
    assert main(["-q", "eval", str(run), "--engine", "packed", "--device", "cpu", "--test-subset", "8"]) == 2
    assert "binary-weight" in capsys.readouterr().err


def test_reparam_export_loads_everywhere(tmp_path, capsys):
    """A re-parameterised export evaluates, analyses and exports to NIR like a checkpoint; a tampered export
    is refused by name."""
    from safetensors.torch import load_file, save_file

    from xorsnn.export import reparameterize
    from xorsnn.training import build_model_from_checkpoint

    run, model = _checkpoint(tmp_path)
    out = tmp_path / "reparam"
    assert main(["-q", "export", "--reparam", str(run), str(out)]) == 0
    capsys.readouterr()
    inference, meta = build_model_from_checkpoint(out)
    assert meta["reparameterized"] and getattr(inference, "reparameterized", False)
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(inference(x), reparameterize(model)(x))
    assert main(["-q", "export", "--format", "nir", str(out), str(tmp_path / "r.nir")]) == 0
    assert "training-form weights" in capsys.readouterr().out
    tensors = load_file(str(out / "model.safetensors"))
    tensors["stages.0.0.conv2.weight"][0, 0, 0, 0] *= -1  # a flipped ±1 weight
    from safetensors import safe_open

    with safe_open(str(out / "model.safetensors"), framework="pt") as f:
        header = f.metadata()
    header.pop("tensors_sha256")
    save_file(tensors, str(out / "model.safetensors"), metadata=header)
    with pytest.raises(ValueError, match="does not equal the re-parameterisation of its source"):
        build_model_from_checkpoint(out)


@pytest.mark.slow
def test_reparam_export_evaluates_and_analyses_on_real_data(tmp_path, capsys):
    pytest.importorskip("sklearn")
    run = tmp_path / "bin"
    assert main(["-q", "train", "--model", "xoresnet8", "--dataset", "digits", "--T", "2", "--epochs", "1",
                 "--batch-size", "64", "--optimizer", "adamw", "--lr", "0.005", "--no-augment", "--device", "cpu",
                 "--no-progress", "--model-arg", "weights=binary", "--out-dir", str(run)]) == 0
    assert main(["-q", "export", "--reparam", str(run), str(tmp_path / "x")]) == 0
    capsys.readouterr()
    assert main(["eval", str(run), "--dataset", "digits"]) == 0
    source = capsys.readouterr().out
    assert main(["eval", str(tmp_path / "x"), "--dataset", "digits"]) == 0
    export = capsys.readouterr().out
    acc = [line.split("test accuracy ")[1].split(",")[0] for line in (source, export)]
    assert acc[0] == acc[1]
    assert main(["-q", "analyze", str(tmp_path / "x"), "--dataset", "digits", "--batches", "1", "--no-plots",
                 "--out", str(tmp_path / "an")]) == 0
    assert main(["-q", "export", "--reparam", str(run), str(tmp_path / "y"), "--dataset", "digits", "--batch",
                 "32"]) == 0  # op report on real images
    note = json.loads((tmp_path / "y" / "model.json").read_text())["op_report"]["note"]
    assert "the first 32 digits test images" in note


def test_eval_runs_a_nir_graph_like_its_checkpoint(tmp_path, capsys):
    """``xorsnn eval GRAPH.nir --dataset D --T T`` runs the graph in xorsnn's NIR simulator: an exported
    checkpoint gives the checkpoint's own accuracy and loss on real test images."""
    pytest.importorskip("nir")
    from realdata import data_dir

    root = str(data_dir("fashion_mnist"))
    run, _ = _checkpoint(tmp_path, "sew_resnet20", weights="float")
    graph = tmp_path / "model.nir"
    assert main(["-q", "export", "--format", "nir", str(run), str(graph)]) == 0
    capsys.readouterr()
    common = ["--data-dir", root, "--test-subset", "64", "--batch-size", "32", "--json"]
    assert main(["-q", "eval", str(run), "--device", "cpu", *common]) == 0
    ref = json.loads(capsys.readouterr().out)
    assert main(["-q", "eval", str(graph), "--dataset", "fashion_mnist", "--T", "2", *common]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["count"] == ref["count"] == 64 and got["acc"] == ref["acc"]
    assert got["loss"] == pytest.approx(ref["loss"], abs=1e-5)
    assert main(["-q", "eval", str(graph), "--dataset", "fashion_mnist", *common]) == 2
    assert "give --dataset and --T" in capsys.readouterr().err
    assert main(["-q", "eval", str(run), "--dt", "1e-4", *common]) == 2
    assert "--dt applies to NIR graphs" in capsys.readouterr().err

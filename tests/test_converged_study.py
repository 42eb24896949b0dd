"""The converged-study runner: skip finished runs, park and restore an unfinished one across
sessions, resume it exactly where it stopped, and render the table from the JSON alone."""

import dataclasses
import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _load():
    spec = importlib.util.spec_from_file_location("converged_study", REPO / "benchmarks" / "converged_study.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture()
def cs(tmp_path, monkeypatch):
    mod = _load()
    monkeypatch.setattr(mod, "RUNS", tmp_path / "runs")
    monkeypatch.setattr(mod, "INFLIGHT", tmp_path / "inflight")
    monkeypatch.setattr(mod, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(mod, "LOCK", tmp_path / "cpu.lock")
    return mod


def _study(cs, epochs):
    recipe = ("--dataset", "digits", "--T", "2", "--epochs", str(epochs), "--batch-size", "64", "--optimizer",
              "adamw", "--lr", "0.005", "--no-augment", "--device", "cpu", "--no-progress")
    runs = (cs.RunSpec("oa", "oa_resnet8", "OA-8", {"zero_init_residual": False}),
            cs.RunSpec("xor", "xoresnet8", "XOR-8", {"zero_init_residual": False, "xor_prev": "shortcut"}))
    return cs.Study("tiny", "digits", recipe, epochs, runs, order=(("oa", 0), ("xor", 0)), note="tiny test study")


def test_wall_time_sums_process_segments():
    cs = _load()
    rows = [{"wall_time_s": w} for w in (10.0, 20.0, 4.0, 9.0, 3.0)]  # resumed twice
    assert cs.wall_time_s(rows) == 20.0 + 9.0 + 3.0


def test_train_command_is_a_plain_cli_call(cs):
    study = _study(cs, 1)
    cmd = cs.train_command(study, "xor", 3)
    assert cmd[:4] == ["xorsnn", "train", "--model", "xoresnet8"]
    assert "--model-arg" in cmd and "zero_init_residual=false" in cmd and "xor_prev=shortcut" in cmd
    assert cmd[-4:-2] == ["--seed", "3"] and cmd[-1].endswith("tiny/xor_s3")
    with pytest.raises(ValueError, match="no run tag 'sew'"):
        study.spec("sew")


@pytest.mark.slow
def test_run_skip_park_restore_resume_render(cs, monkeypatch, capsys):
    study1 = _study(cs, 1)
    monkeypatch.setitem(cs.STUDIES, "tiny", study1)
    args = ["run", "--study", "tiny", "--threads", "1"]
    assert cs.main(args + ["--max-runs", "1"]) == 0
    rows = cs.load_results(study1)
    assert list(rows) == ["oa_s0"] and rows["oa_s0"]["finished"] and rows["oa_s0"]["epochs_done"] == 1
    assert cs.pending(study1, None, None) == [("xor", 0)]  # the finished run is skipped

    # the same study extended to 2 epochs: the run is unfinished; park it, lose runs/ (a new session)
    study2 = dataclasses.replace(study1, epochs=2, recipe=tuple("2" if a == "1" else a for a in study1.recipe))
    monkeypatch.setitem(cs.STUDIES, "tiny", study2)
    assert cs.pending(study2, ["oa"], None) == [("oa", 0)]
    assert cs.main(["park", "--study", "tiny"]) == 0
    parked = cs.INFLIGHT / "tiny" / "oa_s0"
    assert (parked / "checkpoints" / "LAST").read_text().strip() == "epoch_0001"
    first_epoch = json.loads(json.dumps(cs.load_results(study2)["oa_s0"]["curve"][0]))
    # what park writes is what the repository keeps: the same files under benchmarks/inflight pass .gitignore
    files = [p.relative_to(cs.INFLIGHT) for p in parked.rglob("*") if p.is_file()]
    assert any(f.name == "model.safetensors" for f in files) and any(f.name == "state.pt" for f in files)
    if (REPO / ".git").exists():
        assert cs.git_ignored([REPO / "benchmarks" / "inflight" / f for f in files]) == []
        assert cs.git_ignored([REPO / "runs" / "x" / "model.safetensors"]) != []  # the check can fail
    shutil.rmtree(cs.RUNS)

    assert cs.main(args + ["--only", "oa"]) == 0  # restored from inflight and resumed
    row = cs.load_results(study2)["oa_s0"]
    assert row["finished"] and row["epochs_done"] == 2
    assert row["curve"][0] == first_epoch  # epoch 1 kept from the parked run, not retrained
    assert row["final_test_acc"] == row["curve"][-1]["test_acc"]
    assert cs.main(["park", "--study", "tiny"]) == 0
    assert not parked.exists()  # finished runs leave inflight
    # ... and keep their final-epoch weights, committed: evaluating them reproduces the final accuracy
    kept = cs.weights_dir(study2, "oa", 0)
    assert sorted(p.name for p in kept.iterdir()) == ["model.safetensors"]
    if (REPO / ".git").exists():
        committed = REPO / "benchmarks" / "results" / "weights" / "tiny" / "oa_s0" / "model.safetensors"
        assert cs.git_ignored([committed]) == []
    from xorsnn.cli import main as xorsnn_main
    capsys.readouterr()
    assert xorsnn_main(["eval", str(kept), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["epoch"] == 2 and res["acc"] == pytest.approx(row["final_test_acc"], abs=1e-9)

    cs.render(study2)
    md = (cs.RESULTS / "converged_tiny.md").read_text()
    assert "| OA-8 | 1 |" in md and "xorsnn train --model oa_resnet8" in md and "best-epoch" in md
    assert "Final-epoch weights kept for oa_s0" in md
    assert (cs.RESULTS / "converged_tiny_curves.png").stat().st_size > 1000


@pytest.mark.parametrize(("study_name", "preset_name", "tag"), [
    ("FASHION_MNIST", "fashion_mnist_oa14", "oa"), ("FASHION_MNIST", "fashion_mnist_ms14", "ms"),
    ("CIFAR10", "cifar10_xoresnet14", "xor"), ("CIFAR10", "cifar10_ms14", "ms")])
def test_the_study_presets_are_the_study_recipe(study_name, preset_name, tag):
    """``xorsnn train --config fashion_mnist_oa14`` / ``_ms14`` / ``cifar10_xoresnet14`` / ``_ms14`` train exactly the
    study's row (their headers quote it)."""
    from xorsnn.cli import _config_from_args, build_parser
    from xorsnn.training import TrainConfig, load_config

    mod = _load()
    argv = mod.train_command(getattr(mod, study_name), tag, 0)[1:]
    study = _config_from_args(build_parser().parse_args(argv)).to_dict()
    preset = TrainConfig.from_dict({**load_config(preset_name), "seed": 0}).to_dict()
    ignore = {"out_dir", "progress", "device"}
    assert {k: v for k, v in study.items() if k not in ignore} == {k: v for k, v in preset.items() if k not in ignore}


def test_an_incomplete_parked_run_is_refused_by_name(cs, tmp_path):
    """A parked run without its weights (what a commit that dropped ``*.safetensors`` left) stops the study
    with a message naming it, instead of a failed ``--resume`` inside the child."""
    from xorsnn.models import create_model
    from xorsnn.training.checkpoint import save_checkpoint

    study = _study(cs, 2)
    parked = cs.INFLIGHT / "tiny" / "oa_s0"
    model = create_model("oa_resnet8", num_classes=10, in_channels=1)
    ckpt = save_checkpoint(parked, model, {}, {"model": "oa_resnet8"}, epoch=1)
    cs.check_parked(parked)  # intact: accepted
    (ckpt.directory / "model.safetensors").unlink()
    with pytest.raises(SystemExit, match="parked run .*oa_s0 is not resumable: .*delete it to restart"):
        cs.restore_inflight(study, "oa", 0)
    assert not cs.run_dir(study, "oa", 0).exists()

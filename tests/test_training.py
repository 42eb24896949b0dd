import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import synthetic_digits
from torch import nn

from xorsnn.training import (
    CheckpointError,
    NonFiniteLossError,
    TrainConfig,
    build_model_from_checkpoint,
    kd_loss,
    list_presets,
    load_config,
    load_state,
    make_optimizer,
    make_scheduler,
    mean_ce_loss,
    param_groups,
    resolve_checkpoint,
    save_checkpoint,
    tet_loss,
    train,
)

REPO = Path(__file__).resolve().parent.parent


def tiny_digits(n_train=256, n_test=128, seed=0):
    """Synthetic 8x8 'digits' (class = bright row); see helpers.synthetic_digits."""
    return synthetic_digits(n_train, n_test, seed)


def small_cfg(tmp_path, **kw):
    base = dict(model="xoresnet20", dataset="digits", epochs=2, batch_size=32, T=2, optimizer="adamw", lr=0.005,
                weight_decay=0.01, out_dir=str(tmp_path / "run"), progress=False, model_kwargs={"widths": [8, 16, 16]})
    base.update(kw)
    return TrainConfig.from_dict(base)


# -- losses ------------------------------------------------------------------------------------------
def test_mean_ce_and_tet_match_their_definitions():
    torch.manual_seed(0)
    logits, y = torch.randn(4, 6, 5), torch.randint(0, 5, (6,))
    assert torch.allclose(mean_ce_loss(logits, y), nn.functional.cross_entropy(logits.mean(0), y))
    per_step = torch.stack([nn.functional.cross_entropy(logits[t], y) for t in range(4)]).mean()
    assert torch.allclose(tet_loss(logits, y), per_step)
    mse = ((logits - 1.0) ** 2).mean()
    assert torch.allclose(tet_loss(logits, y, lam=0.05), 0.95 * per_step + 0.05 * mse)
    with pytest.raises(ValueError, match=r"\[T, B, K\]"):
        mean_ce_loss(logits.mean(0), y)


def test_kd_loss_matches_kl_definition():
    torch.manual_seed(0)
    s, t = torch.randn(3, 4, 5), torch.randn(4, 5)
    tau = 2.0
    expected = 0
    for step in range(3):
        expected += nn.functional.kl_div(nn.functional.log_softmax(s[step] / tau, -1),
                                         nn.functional.softmax(t / tau, -1), reduction="batchmean")
    assert torch.allclose(kd_loss(s, t, tau), tau * tau * expected / 3, atol=1e-6)
    assert kd_loss(t.expand(3, 4, 5), t) < 1e-6


# -- optimiser and schedule --------------------------------------------------------------------------
def test_weight_decay_excludes_bn_and_biases():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Linear(4, 2))
    groups = param_groups(model, 5e-4)
    decayed = {id(p) for p in groups[0]["params"]}
    assert decayed == {id(model[0].weight), id(model[2].weight)}
    assert groups[1]["weight_decay"] == 0 and len(groups[1]["params"]) == 4


def test_warmup_cosine_schedule():
    opt = make_optimizer(nn.Linear(2, 2), "sgd", 0.1, 0.0)
    sched = make_scheduler(opt, "cosine", total_steps=10, warmup_steps=2)
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.05) and lrs[1] == pytest.approx(0.1)
    assert lrs[2] == pytest.approx(0.1) and lrs[-1] < 0.01
    assert all(a >= b for a, b in zip(lrs[1:], lrs[2:], strict=False))


# -- config ------------------------------------------------------------------------------------------
def test_config_validation_and_presets():
    with pytest.raises(ValueError, match="unknown config key.*'epoch'"):
        TrainConfig.from_dict({"epoch": 3})
    with pytest.raises(ValueError, match="loss must be one of"):
        TrainConfig.from_dict({"loss": "mse"})
    with pytest.raises(ValueError, match="epochs must be a positive integer"):
        TrainConfig.from_dict({"epochs": 0})
    assert "cifar10_resnet19_tet" in list_presets()
    for name in list_presets():
        TrainConfig.from_dict(load_config(name))
    assert load_config("presets/cifar10_resnet19_tet.yaml")["loss"] == "tet"
    with pytest.raises(ValueError, match="neither a file nor a shipped preset"):
        load_config("no_such_preset")


# -- checkpoints -------------------------------------------------------------------------------------
def test_checkpoints_are_atomic_self_describing_and_pruned(tmp_path):
    import xorsnn

    model = xorsnn.create_model("xoresnet20", num_classes=3, T=2)
    meta = {"model": "xoresnet20", "model_kwargs": {"num_classes": 3, "T": 2}}
    for epoch in range(1, 5):
        save_checkpoint(tmp_path, model, {"x": epoch, "global_step": epoch}, meta, epoch, is_best=epoch == 2,
                        keep_last=2)
    kept = sorted(p.name for p in (tmp_path / "checkpoints").iterdir() if p.is_dir())
    assert kept == ["epoch_0002", "epoch_0003", "epoch_0004"]  # BEST is kept
    assert resolve_checkpoint(tmp_path).directory.name == "epoch_0004"
    assert resolve_checkpoint(tmp_path, "BEST").directory.name == "epoch_0002"
    rebuilt, info = build_model_from_checkpoint(tmp_path, which="LAST")
    for (k, a), (_, b) in zip(model.state_dict().items(), rebuilt.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    assert info["epoch"] == 4
    # a save interrupted before its rename leaves a temp folder that is ignored and cleaned up
    (tmp_path / "checkpoints" / ".tmp_epoch_0005_dead").mkdir()
    assert resolve_checkpoint(tmp_path).directory.name == "epoch_0004"
    save_checkpoint(tmp_path, model, {"global_step": 5}, meta, 5)
    assert not list((tmp_path / "checkpoints").glob(".tmp_*"))
    # weights and state from different saves are detected
    ck = resolve_checkpoint(tmp_path)
    other = resolve_checkpoint(tmp_path / "checkpoints" / "epoch_0004")
    (ck.directory / "state.pt").write_bytes(other.state.read_bytes())
    with pytest.raises(CheckpointError, match="different saves"):
        load_state(ck)
    with pytest.raises(CheckpointError, match="no checkpoint found"):
        resolve_checkpoint(tmp_path / "nothing_here")


# -- the training loop -------------------------------------------------------------------------------
def test_training_on_real_digits_learns_and_writes_metrics(tmp_path):
    pytest.importorskip("sklearn")
    res = train(small_cfg(tmp_path, model="ms_resnet20", epochs=3, T=4, model_kwargs={}))
    assert res.best_test_acc > 0.85, res.metrics  # measured 0.93 after 3 epochs (2 CPU cores)
    lines = (tmp_path / "run" / "metrics.csv").read_text().strip().splitlines()
    assert lines[0].startswith("epoch,train_loss,train_acc,test_loss,test_acc") and len(lines) == 4
    assert (tmp_path / "run" / "config.yaml").exists() and (tmp_path / "run" / "result.json").exists()


def test_tet_loss_and_sgd_path_run(tmp_path):
    res = train(small_cfg(tmp_path, epochs=1, loss="tet", tet_lambda=0.05, optimizer="sgd", lr=0.05,
                          label_smoothing=0.1, grad_clip=1.0, warmup_epochs=0.5), tiny_digits())
    assert math.isfinite(res.metrics[-1]["train_loss"])


def test_non_finite_loss_stops_with_step(tmp_path, monkeypatch):
    import xorsnn.training.trainer as trainer_mod

    real_loss, calls = trainer_mod._loss, {"n": 0}

    def poisoned(cfg, out, y):
        calls["n"] += 1
        loss = real_loss(cfg, out, y)
        return loss * float("nan") if calls["n"] == 3 else loss

    monkeypatch.setattr(trainer_mod, "_loss", poisoned)
    with pytest.raises(NonFiniteLossError, match=r"epoch 1, step 3 of 8 \(global step 3\)"):
        train(small_cfg(tmp_path, epochs=1), tiny_digits())


def _weights(run_dir):
    from safetensors.torch import load_file

    return load_file(str(resolve_checkpoint(run_dir, "LAST").weights))


def _train_cmd(out_dir, epochs, extra=()):
    return [sys.executable, "-m", "xorsnn", "-q", "train", "--model", "xoresnet20", "--dataset", "digits",
            "--epochs", str(epochs), "--batch-size", "16", "--T", "2", "--optimizer", "adamw", "--lr", "0.005",
            "--model-arg", "widths=[8, 16, 16]", "--out-dir", str(out_dir), "--no-progress", *extra]


@pytest.mark.slow
def test_kill_and_resume_reproduces_uninterrupted_run(tmp_path):
    pytest.importorskip("sklearn")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    full, killed = tmp_path / "full", tmp_path / "killed"
    subprocess.run(_train_cmd(full, 3), check=True, env=env, timeout=600)
    proc = subprocess.Popen(_train_cmd(killed, 3), env=env)
    last = killed / "checkpoints" / "LAST"
    deadline = time.time() + 600
    while not (last.exists() and last.read_text().strip() == "epoch_0001"):
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.time() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)  # killed during epoch 2
    proc.wait()
    assert resolve_checkpoint(killed).directory.name == "epoch_0001"
    subprocess.run(_train_cmd(killed, 3, ["--resume"]), check=True, env=env, timeout=600)
    a, b = _weights(full), _weights(killed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after kill-and-resume"
    rows_full = (full / "metrics.csv").read_text().splitlines()
    rows_resumed = (killed / "metrics.csv").read_text().splitlines()
    for rf, rr in zip(rows_full, rows_resumed, strict=True):
        assert rf.split(",")[:6] == rr.split(",")[:6]  # same losses, accuracies and lr per epoch


def _ddp_worker(rank, world, port, out_dir, result_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    res = train(small_cfg(Path(out_dir), epochs=1, device="cpu", out_dir=str(out_dir)), tiny_digits(n_train=192))
    torch.save({k: v.clone() for k, v in res.model.state_dict().items()}, Path(result_dir) / f"rank{rank}.pt")


@pytest.mark.slow
def test_ddp_two_gloo_processes_end_with_identical_weights(tmp_path):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_worker, args=(2, port, str(tmp_path / "run"), str(tmp_path)), nprocs=2, join=True)
    w0, w1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    for k in w0:
        assert torch.equal(w0[k], w1[k]), f"{k} differs between ranks"
    # only rank 0 wrote the run directory; both ranks trained on half of the batches each
    rows = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert len(rows) == 2
    single = train(small_cfg(tmp_path / "single", epochs=1), tiny_digits(n_train=192))
    assert any(not torch.equal(single.model.state_dict()[k], w0[k]) for k in w0)


# -- real data: a short CPU budget on Fashion-MNIST ---------------------------------------------------
@pytest.mark.slow
def test_small_xoresnet_on_fashion_mnist_subset_beats_80_percent(tmp_path):
    """The `fashion_mnist_quick` preset (XOResNet-8, T = 2, 10k training images, 3 epochs, ~100 s)."""
    from realdata import data_dir

    from xorsnn.training import load_config

    root = data_dir("fashion_mnist")
    cfg = TrainConfig.from_dict({**load_config("fashion_mnist_quick"), "data_dir": str(root), "device": "cpu",
                                 "out_dir": str(tmp_path / "run"), "progress": False})
    assert (cfg.model, cfg.train_subset, cfg.epochs, cfg.T) == ("xoresnet8", 10000, 3, 2)
    result = train(cfg)
    assert len(result.metrics) == 3
    assert result.final_test_acc > 0.80, result.metrics

"""Runs that cannot be poisoned, mixed or mislabelled (issue 15): the trainer, data and CLI under faults.

Every test reproduces one failure of the issue on a tiny model and a few dozen samples (CPU, seconds).
"""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import synthetic_digits

import xorsnn
from xorsnn.cli import main
from xorsnn.data import DataBundle, DatasetError
from xorsnn.data.digits import DIGITS_INFO
from xorsnn.training import (
    CheckpointError,
    CheckpointSaveError,
    CorruptCheckpointError,
    NonFiniteLossError,
    NonFiniteStateError,
    RunLock,
    RunLockedError,
    TrainConfig,
    build_model_from_checkpoint,
    resolve_checkpoint,
    resolve_resumable,
    save_checkpoint,
    train,
)


def tiny_data(n_train=64, n_test=32, seed=0):
    """Synthetic 8x8 'digits' (class = bright row); see helpers.synthetic_digits."""
    return synthetic_digits(n_train, n_test, seed)


def tiny_cfg(tmp_path, **kw):
    base = dict(model="xoresnet8", dataset="digits", epochs=1, batch_size=16, T=2, optimizer="adamw", lr=0.005,
                weight_decay=0.01, out_dir=str(tmp_path / "run"), progress=False, model_kwargs={"widths": [4, 8, 8]})
    base.update(kw)
    return TrainConfig.from_dict(base)


def _pointer(run, name="LAST"):
    return (Path(run) / "checkpoints" / name).read_text().strip()


def _epochs(run):
    return sorted(p.name for p in (Path(run) / "checkpoints").iterdir() if p.name.startswith("epoch_"))


def _small_model():
    return xorsnn.create_model("xoresnet8", num_classes=8, in_channels=1, T=2, widths=[4, 8, 8])


META = {"model": "xoresnet8", "model_kwargs": {"num_classes": 8, "in_channels": 1, "T": 2, "widths": [4, 8, 8]}}


# -- 1. finite-state guard ---------------------------------------------------------------------------
def test_non_finite_buffer_stops_training_and_last_stays_good(tmp_path, monkeypatch):
    """A NaN in a BN running statistic (loss still finite) stops the run naming epoch, step and tensor;
    no checkpoint of the poisoned state is written and LAST/BEST keep the last good epoch."""
    import xorsnn.training.trainer as trainer_mod

    real, calls = trainer_mod._backward_and_step, {"n": 0}

    def poison(loss, model, optimizer, scaler, cfg):
        real(loss, model, optimizer, scaler, cfg)
        calls["n"] += 1
        if calls["n"] == 6:  # epoch 2 (4 steps per epoch), step 2
            with torch.no_grad():
                xorsnn.training.unwrap_model(model).stem_bn.running_mean[0] = float("nan")

    monkeypatch.setattr(trainer_mod, "_backward_and_step", poison)
    cfg = tiny_cfg(tmp_path, epochs=3)
    with pytest.raises(NonFiniteStateError, match=r"epoch 2, step 2 of 4 .*'stem_bn.running_mean'"):
        train(cfg, tiny_data())
    assert _pointer(cfg.out_dir) == "epoch_0001" and _pointer(cfg.out_dir, "BEST") == "epoch_0001"
    assert _epochs(cfg.out_dir) == ["epoch_0001"]


def test_save_checkpoint_refuses_non_finite_weights(tmp_path):
    model = _small_model()
    save_checkpoint(tmp_path, model, {"global_step": 1}, META, 1)
    with torch.no_grad():
        model.stem_conv.weight[0, 0, 0, 0] = float("inf")
    with pytest.raises(CheckpointError, match="refusing to write checkpoint epoch_0002.*'stem_conv.weight'"):
        save_checkpoint(tmp_path, model, {"global_step": 2}, META, 2, is_best=True)
    assert _pointer(tmp_path) == "epoch_0001" and _epochs(tmp_path) == ["epoch_0001"]
    assert not list((tmp_path / "checkpoints").glob(".tmp_*"))


def test_eval_refuses_checkpoint_with_non_finite_weights(tmp_path, capsys):
    """A weights file with NaN (written by another tool, no checksum) is refused, not evaluated."""
    from safetensors.torch import save_file

    model = _small_model()
    tensors = {k: v.clone() for k, v in model.state_dict().items()}
    tensors["fc.weight"][0, 0] = float("nan")
    folder = tmp_path / "epoch_0001"
    folder.mkdir()
    save_file(tensors, str(folder / "model.safetensors"), metadata={k: json.dumps(v) for k, v in META.items()})
    with pytest.raises(CheckpointError, match="non-finite weights.*'fc.weight'"):
        build_model_from_checkpoint(folder)
    assert main(["-q", "eval", str(folder), "--dataset", "digits"]) == 2
    out = capsys.readouterr()
    assert "accuracy" not in out.out and "non-finite weights" in out.err


def test_nan_input_batch_is_named(tmp_path, monkeypatch):
    import xorsnn.training.trainer as trainer_mod

    real = trainer_mod.make_loaders

    class Poisoned:
        def __init__(self, inner):
            self.inner = inner

        def set_epoch(self, e):
            self.inner.set_epoch(e)

        def __len__(self):
            return len(self.inner)

        def __iter__(self):
            for i, (x, y) in enumerate(self.inner):
                if i == 2:
                    x = x.clone()
                    x[0, 0, 0, 0] = float("nan")
                yield x, y

    monkeypatch.setattr(trainer_mod, "make_loaders", lambda *a: (Poisoned(real(*a)[0]), real(*a)[1]))
    with pytest.raises(NonFiniteStateError, match=r"non-finite input .* training batch 3 of 4 at epoch 1"):
        train(tiny_cfg(tmp_path), tiny_data())
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_nan_loss_still_reported_first(tmp_path, monkeypatch):
    import xorsnn.training.trainer as trainer_mod

    real = trainer_mod._loss
    monkeypatch.setattr(trainer_mod, "_loss", lambda cfg, out, y: real(cfg, out, y) * float("nan"))
    with pytest.raises(NonFiniteLossError, match="non-finite loss at epoch 1, step 1"):
        train(tiny_cfg(tmp_path), tiny_data())


# -- 2. --resume configuration check -----------------------------------------------------------------
def test_resume_refuses_changed_settings_and_allows_more_epochs(tmp_path):
    data = tiny_data()
    train(tiny_cfg(tmp_path), data)
    with pytest.raises(ValueError, match=r"lr: 0\.005 -> 0\.01.*T: 2 -> 3|T: 2 -> 3.*lr: 0\.005 -> 0\.01"):
        train(tiny_cfg(tmp_path, resume=True, lr=0.01, T=3, epochs=2), data)
    for change in ({"seed": 1}, {"batch_size": 8}, {"model_kwargs": {"widths": [4, 8, 16]}}, {"schedule": "constant"}):
        with pytest.raises(ValueError, match=f"{next(iter(change))}: "):
            train(tiny_cfg(tmp_path, resume=True, epochs=2, **change), data)
    with pytest.raises(ValueError, match="epochs=1 is less than the 2 epochs"):
        _shorter(tmp_path, data)
    res = train(tiny_cfg(tmp_path, resume=True, epochs=2, progress=False, log_interval=5), data)
    assert len(res.metrics) == 2
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["epochs"] == 2 and result["T"] == 2 and result["model_kwargs"]["T"] == 2
    assert result["resumed_from_epoch"] == 1


def _shorter(tmp_path, data):
    train(tiny_cfg(tmp_path / "two", epochs=2, out_dir=str(tmp_path / "two")), data)
    return train(tiny_cfg(tmp_path, epochs=1, resume=True, out_dir=str(tmp_path / "two")), data)


def test_conflicting_model_arg_and_flag_refused(capsys):
    with pytest.raises(ValueError, match=r"model_kwargs\['T'\]=3 conflicts"):
        TrainConfig.from_dict({"model_kwargs": {"T": 3}, "T": 1})
    assert main(["-q", "train", "--model", "xoresnet8", "--dataset", "digits", "--model-arg", "T=3", "--T", "1"]) == 2
    assert "conflicts" in capsys.readouterr().err


def test_cli_resume_starts_from_the_saved_config(tmp_path, capsys):
    pytest.importorskip("sklearn")
    out = str(tmp_path / "run")
    common = ["-q", "train", "--out-dir", out, "--no-progress"]
    assert main([*common, "--model", "xoresnet8", "--dataset", "digits", "--epochs", "1", "--T", "2",
                 "--batch-size", "32", "--train-subset", "64", "--test-subset", "32", "--model-arg",
                 "widths=[4, 8, 8]"]) == 0
    assert main([*common, "--resume", "--epochs", "2"]) == 0  # everything else comes from config.yaml
    assert json.loads((tmp_path / "run" / "result.json").read_text())["epochs"] == 2
    capsys.readouterr()
    assert main([*common, "--resume", "--epochs", "3", "--lr", "0.5"]) == 2
    err = capsys.readouterr().err
    assert "lr: 0.1 -> 0.5" in err and err.count("\n") == 1


# -- 3. harmful numbers ------------------------------------------------------------------------------
@pytest.mark.parametrize("bad,match", [
    ({"grad_clip": -1.0}, "grad_clip must be > 0"),
    ({"grad_clip": 0.0}, "grad_clip must be > 0"),
    ({"weight_decay": -1.0}, "weight_decay must be >= 0"),
    ({"min_lr_ratio": 2.0}, r"min_lr_ratio must be in \[0, 1\]"),
    ({"lr": float("nan")}, "lr must be a finite number"),
    ({"lr": float("inf")}, "lr must be a finite number"),
    ({"tet_means": float("nan")}, "tet_means must be a finite number"),
    ({"momentum": 1.5}, "momentum must be in"),
    ({"augment": "no"}, "augment must be true or false"),
    ({"epochs": 2.5}, "epochs must be an integer"),
    ({"batch_size": True}, "batch_size must be an integer"),
    ({"eval_batch_size": 0}, "eval_batch_size must be a positive integer"),
    ({"num_workers": -1}, "num_workers must be >= 0"),
])
def test_harmful_numbers_are_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig.from_dict(bad)


def test_harmful_numbers_refused_on_the_cli(capsys):
    assert main(["-q", "train", "--dataset", "digits", "--grad-clip", "-1"]) == 2
    assert "grad_clip must be > 0" in capsys.readouterr().err
    assert main(["-q", "train", "--dataset", "digits", "--lr", "nan"]) == 2
    assert "lr must be a finite number" in capsys.readouterr().err
    assert main(["-q", "eval", "some_dir", "--T", "-1"]) == 2
    assert "--T must be a positive integer, got -1" in capsys.readouterr().err


@pytest.mark.parametrize("kwargs,match", [
    ({"zero_init_residual": "no"}, "zero_init_residual must be true, false or None, got 'no'"),
    ({"input_size": "28"}, "input_size must be a positive integer or an"),
    ({"stem_width": 0}, "stem_width must be a positive integer or None, got 0"),
    ({"num_classes": 2.0}, "num_classes must be a positive int"),
])
def test_create_model_is_strictly_typed(kwargs, match):
    with pytest.raises(ValueError, match=match):
        xorsnn.create_model("xoresnet8", **kwargs)


def test_fashion_mnist_labels_checked_for_the_full_range(tmp_path):
    import struct

    from xorsnn.data.fashion_mnist import _load_split

    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "t10k-images-idx3-ubyte").write_bytes(struct.pack(">BBBBIII", 0, 0, 8, 3, 10000, 28, 28)
                                                 + bytes(10000 * 28 * 28))
    labels = np.zeros(10000, np.int8)
    labels[7] = -1
    (raw / "t10k-labels-idx1-ubyte").write_bytes(struct.pack(">BBBBI", 0, 0, 9, 1, 10000) + labels.tobytes())
    with pytest.raises(DatasetError, match=r"labels in \[-1, 0\], expected 0..9"):
        _load_split(tmp_path, "test")


def test_trainer_checks_label_range_of_given_data(tmp_path):
    data = tiny_data()
    data.test.labels[3] = 10
    with pytest.raises(ValueError, match=r"test split has labels in \[0, 10\], expected \[0, 9\]"):
        train(tiny_cfg(tmp_path), data)


# -- 4. CLI errors: one line, exit code 2 ------------------------------------------------------------
def _cli(*args, env=None):
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "xorsnn", *args], capture_output=True, text=True, timeout=300,
                          env=env)


def test_cli_errors_are_one_line_with_exit_code_2(tmp_path):
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("epochs: [1, 2\nlr: 0.1\n")
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    corrupt = tmp_path / "ckpt"
    save_checkpoint(corrupt, _small_model(), {"global_step": 1}, META, 1)
    weights = resolve_checkpoint(corrupt).weights
    weights.write_bytes(weights.read_bytes()[:-100])
    cases = [
        (["train", "--config", str(bad_yaml)], "is not valid YAML"),
        (["train", "--dataset", "digits", "--out-dir", str(a_file)], "is not a directory"),
        (["eval", str(corrupt)], "corrupt or truncated"),
        (["train", "--dataset", "digits", "--batch-size", "1"], "use --batch-size 2 or more"),
    ]
    for args, match in cases:
        proc = _cli("-q", *args)
        assert proc.returncode == 2, (args, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and match in lines[0], (args, proc.stderr)
    proc = _cli("-q", "--debug", "eval", str(corrupt))
    assert proc.returncode == 2 and "Traceback" in proc.stderr
    proc = _cli("-q", "eval", str(corrupt), env={"XORSNN_DEBUG": "1"})
    assert proc.returncode == 2 and "Traceback" in proc.stderr


def test_non_finite_stop_is_one_line_on_the_cli(tmp_path, monkeypatch, capsys):
    import xorsnn.training.trainer as trainer_mod

    real = trainer_mod._loss
    monkeypatch.setattr(trainer_mod, "_loss", lambda cfg, out, y: real(cfg, out, y) * float("nan"))
    pytest.importorskip("sklearn")
    rc = main(["-q", "train", "--model", "xoresnet8", "--dataset", "digits", "--epochs", "1", "--T", "2",
               "--train-subset", "64", "--batch-size", "16", "--out-dir", str(tmp_path / "r"), "--no-progress",
               "--model-arg", "widths=[4, 8, 8]"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "non-finite loss at epoch 1, step 1" in err


@pytest.mark.parametrize("dtype,match", [(torch.float64, "dtype float64 .* convert the data to float32"),
                                         (torch.float16, "dtype float16 .*--amp")])
def test_unsupported_input_dtype_names_the_fix(tmp_path, dtype, match):
    base = tiny_data()
    x = base.train.images.to(dtype) / 255
    ds = torch.utils.data.TensorDataset(x, base.train.labels)
    data = DataBundle(DIGITS_INFO, ds, torch.utils.data.TensorDataset(x[:16], base.train.labels[:16]))
    with pytest.raises(ValueError, match=match):
        train(tiny_cfg(tmp_path, num_workers=0), data)


# -- 5. run-directory lock ---------------------------------------------------------------------------
def test_second_run_in_the_same_out_dir_refuses_naming_the_holder(tmp_path):
    cfg = tiny_cfg(tmp_path)
    Path(cfg.out_dir).mkdir(parents=True)
    with RunLock(cfg.out_dir):
        with pytest.raises(RunLockedError, match=f"in use by process {os.getpid()}"):
            train(cfg, tiny_data())
    train(cfg, tiny_data())  # released: the run proceeds
    with RunLock(cfg.out_dir):  # and the finished run released its lock
        pass


def test_lock_held_by_another_process(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    code = ("import sys, time; from xorsnn.training import RunLock; l = RunLock(sys.argv[1]).acquire(); "
            "print('locked', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(RunLockedError, match=f"process {proc.pid}"):
            RunLock(run).acquire()
    finally:
        proc.kill()
        proc.wait()
    RunLock(run).acquire().release()  # the kernel released the dead holder's lock


def test_tmp_cleanup_only_of_own_or_orphaned_folders(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        root = tmp_path / "checkpoints"
        root.mkdir()
        foreign = root / f".tmp_epoch_0007_pid{live.pid}_abc"
        orphan = root / f".tmp_epoch_0007_pid{dead_pid}_def"
        own = root / f".tmp_epoch_0007_pid{os.getpid()}_ghi"
        for p in (foreign, orphan, own):
            p.mkdir()
        save_checkpoint(tmp_path, _small_model(), {"global_step": 1}, META, 1)
        assert foreign.exists() and not orphan.exists() and not own.exists()
    finally:
        live.kill()
        live.wait()


# -- 6. checkpoint integrity -------------------------------------------------------------------------
def test_corrupt_latest_checkpoint_is_named_and_resume_falls_back(tmp_path, caplog):
    data = tiny_data()
    train(tiny_cfg(tmp_path, epochs=2), data)
    run = Path(tmp_path / "run")
    latest = resolve_checkpoint(run).weights
    latest.write_bytes(latest.read_bytes()[: latest.stat().st_size // 2])  # truncated
    with pytest.raises(CorruptCheckpointError, match="epoch_0002.*corrupt or truncated"):
        build_model_from_checkpoint(run, which="LAST")
    with caplog.at_level("WARNING", logger="xorsnn.train"):
        assert resolve_resumable(run).directory.name == "epoch_0001"
    assert "epoch_0002" in caplog.text and "newest intact" in caplog.text
    res = train(tiny_cfg(tmp_path, epochs=2, resume=True), data)
    assert len(res.metrics) == 2 and _pointer(run) == "epoch_0002"
    build_model_from_checkpoint(run, which="LAST")  # the re-written epoch 2 is intact


def test_flipped_bits_fail_the_checksum(tmp_path):
    save_checkpoint(tmp_path, _small_model(), {"global_step": 1}, META, 1)
    weights = resolve_checkpoint(tmp_path).weights
    raw = bytearray(weights.read_bytes())
    rng = np.random.default_rng(0)
    for pos in rng.integers(len(raw) - 2000, len(raw), 50):  # the tensor data is at the end of the file
        raw[pos] ^= 1 << int(rng.integers(0, 8))
    weights.write_bytes(bytes(raw))
    with pytest.raises(CorruptCheckpointError, match="fails its checksum"):
        build_model_from_checkpoint(tmp_path)
    state = resolve_checkpoint(tmp_path).state
    raw = bytearray(state.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    state.write_bytes(bytes(raw))
    from xorsnn.training import load_state

    with pytest.raises(CorruptCheckpointError, match="state.pt"):
        load_state(resolve_checkpoint(tmp_path))


def test_failed_save_says_so_and_leaves_nothing_behind(tmp_path, monkeypatch):
    import xorsnn.training.checkpoint as ck

    model = _small_model()
    save_checkpoint(tmp_path, model, {"global_step": 1}, META, 1)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    real = ck._write_files
    monkeypatch.setattr(ck, "_write_files", disk_full)
    with pytest.raises(CheckpointSaveError, match="could not write checkpoint epoch_0002.*No space left on device"):
        save_checkpoint(tmp_path, model, {"global_step": 2}, META, 2)
    assert _pointer(tmp_path) == "epoch_0001" and not list((tmp_path / "checkpoints").glob(".tmp_*"))
    monkeypatch.setattr(ck, "_write_files", real)
    save_checkpoint(tmp_path, model, {"global_step": 2}, META, 2)
    assert _pointer(tmp_path) == "epoch_0002"


# -- 7. image folders --------------------------------------------------------------------------------
def _folder_tree(root, splits):
    from PIL import Image

    for split, classes in splits.items():
        for c in classes:
            d = root / split / c
            d.mkdir(parents=True)
            for i in range(2):
                Image.fromarray(np.full((10, 12, 3), 40 * i + 10 * len(c), np.uint8)).save(d / f"{i}.png")


def test_image_folder_val_uses_train_mapping_and_refuses_mismatches(tmp_path):
    pytest.importorskip("PIL")
    from xorsnn.data.folders import load_image_folder

    _folder_tree(tmp_path / "ok", {"train": ["cat", "dog", "eel"], "val": ["cat", "dog", "eel"]})
    data = load_image_folder(tmp_path / "ok", image_size=8, backend="pillow")
    assert data.train.classes == data.test.classes == ["cat", "dog", "eel"] and data.info.num_classes == 3
    _folder_tree(tmp_path / "missing", {"train": ["cat", "dog", "eel"], "val": ["cat", "eel"]})
    with pytest.raises(DatasetError, match=r"missing class\(es\) \['dog'\]"):
        load_image_folder(tmp_path / "missing", image_size=8, backend="pillow")
    _folder_tree(tmp_path / "extra", {"train": ["cat", "dog"], "val": ["cat", "dog", "fox"]})
    with pytest.raises(DatasetError, match=r"unknown class\(es\) \['fox'\]"):
        load_image_folder(tmp_path / "extra", image_size=8, backend="pillow")


def test_pillow_augmentation_is_seeded_per_seed_epoch_and_sample(tmp_path):
    pytest.importorskip("PIL")
    from PIL import Image

    from xorsnn.data.folders import PillowImageFolder

    d = tmp_path / "train" / "a"
    d.mkdir(parents=True)
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(d / "0.png")

    def sample(seed, epoch):
        ds = PillowImageFolder(tmp_path / "train", 16, train=True)
        ds.set_augmentation(seed, epoch)
        return ds[0][0]

    assert torch.equal(sample(3, 1), sample(3, 1))  # reproducible (a resumed run sees the same crops)
    draws = [sample(s, e) for s, e in [(3, 1), (4, 1), (3, 2), (3, 3)]]
    assert sum(not torch.equal(draws[0], d) for d in draws[1:]) >= 2  # seed and epoch change the stream


# -- 8. no global side effects -----------------------------------------------------------------------
def test_pack_model_leaves_the_thread_count_alone():
    pytest.importorskip("numba")
    from xorsnn.export import pack_model

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        model = xorsnn.create_model("xoresnet8", num_classes=4, in_channels=1, T=1, widths=[4, 8, 8],
                                    weights="binary")
        packed = pack_model(model)
        packed(torch.rand(1, 1, 8, 8))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_nir_simulate_refuses_bad_neuron_parameters():
    nir = pytest.importorskip("nir")
    from xorsnn.export.nir_sim import simulate

    def graph(**lif):
        p = {"tau": np.ones(2), "r": np.ones(2), "v_leak": np.zeros(2), "v_threshold": np.ones(2), **lif}
        nodes = {"input": nir.Input(input_type={"input": np.array([2])}), "lif": nir.LIF(**p),
                 "output": nir.Output(output_type={"output": np.array([2])})}
        return nir.NIRGraph(nodes=nodes, edges=[("input", "lif"), ("lif", "output")])

    x = torch.ones(2, 1, 2)
    simulate(graph(), x)
    with pytest.raises(ValueError, match="node 'lif' \\(LIF\\): tau must be > 0"):
        simulate(graph(tau=np.array([1.0, 0.0])), x)
    with pytest.raises(ValueError, match="node 'lif' \\(LIF\\): v_threshold must be finite"):
        simulate(graph(v_threshold=np.array([math.nan, 1.0])), x)
    g = graph()
    g.nodes["lif"].r = np.ones(3)  # nir checks shapes at construction only
    with pytest.raises(ValueError, match="do not broadcast"):
        simulate(g, x)


# -- probe-sweep leftovers (benchmarks/fault_probes.py) ----------------------------------------------
@pytest.mark.parametrize("argv", [["train", "--lr", "fast"], ["smoke", "--batch", "x"], ["train", "--no-such-flag"],
                                  ["bench-infer", "--arch", "resnet1000"]])
def test_argparse_errors_are_one_line_with_exit_code_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and "usage:" not in err and "error: " in err


@pytest.mark.parametrize("argv,match", [
    (["smoke", "xoresnet8", "--batch", "0"], "--batch must be a positive integer, got 0"),
    (["smoke", "xoresnet8", "--T", "0"], "--T must be a positive integer, got 0"),
    (["bench-infer", "--arch", "resnet20", "--batch", "0", "--threads", "1"], "--batch must be a positive integer"),
    (["bench-infer", "--arch", "resnet20", "--batch", "1", "--repeats", "0"], "--repeats must be a positive integer"),
    (["export", "--format", "nir", "RUN", "out.nir", "--batch", "0"], "--batch must be a positive integer, got 0"),
    (["export", "--format", "nir", "RUN", "out.nir", "--input-size", "0"], "--input-size must be a positive integer"),
])
def test_sizes_refused_naming_the_flag(argv, match, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and match in err


def test_bench_infer_refuses_more_threads_than_cpus(monkeypatch, capsys):
    from xorsnn.export.bench import bench_infer

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    with pytest.raises(ValueError, match=r"--threads must be in \[1, 2\] .*got 3"):
        bench_infer(batches=[1], T=1, repeats=1, threads=3, arch="resnet20", with_layerwise=False)
    assert main(["bench-infer", "--threads", "64"]) == 2
    assert "--threads must be in [1, 2]" in capsys.readouterr().err


def test_bench_infer_reports_the_threads_used_and_restores_them():
    pytest.importorskip("numba")
    from xorsnn.export.bench import bench_infer

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2 if (os.cpu_count() or 1) >= 2 else 1)
        outer = torch.get_num_threads()
        rows = bench_infer(batches=[1], T=1, repeats=1, threads=1, arch="resnet20", with_layerwise=False)
        assert [r.threads for r in rows] == [1]
        assert torch.get_num_threads() == outer  # no global side effect
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_name_weights_teacher_with_non_finite_weights_refused(tmp_path, suffix):
    from safetensors.torch import save_file

    from xorsnn.training import load_teacher

    tensors = {k: v.clone() for k, v in _small_model().state_dict().items()}
    tensors["fc.weight"][0, 1] = float("nan")
    path = tmp_path / f"teacher{suffix}"
    save_file(tensors, str(path)) if suffix == ".safetensors" else torch.save(tensors, path)
    args = {"num_classes": 8, "in_channels": 1, "T": 2, "widths": [4, 8, 8]}
    with pytest.raises(CheckpointError, match="non-finite weights.*'fc.weight'"):
        load_teacher(f"xoresnet8:{path}", args)
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(CorruptCheckpointError, match="corrupt or truncated"):
        load_teacher(f"xoresnet8:{path}", args)


def test_init_from_refuses_non_finite_or_corrupt_checkpoint(tmp_path):
    from safetensors.torch import save_file

    from xorsnn.training import init_from_checkpoint

    tensors = {k: v.clone() for k, v in _small_model().state_dict().items()}
    tensors["fc.weight"][0, 0] = float("inf")
    folder = tmp_path / "epoch_0001"
    folder.mkdir()
    save_file(tensors, str(folder / "model.safetensors"), metadata={k: json.dumps(v) for k, v in META.items()})
    with pytest.raises(CheckpointError, match="non-finite weights.*'fc.weight'"):
        init_from_checkpoint(_small_model(), folder)
    (folder / "model.safetensors").write_bytes(b"\x00" * 16)
    with pytest.raises(CorruptCheckpointError, match="corrupt or truncated"):
        init_from_checkpoint(_small_model(), folder)


def test_analyze_raster_sample_out_of_range_names_the_flag(tmp_path, capsys):
    model = xorsnn.create_model("xoresnet8", num_classes=10, in_channels=1, T=2, widths=[4, 8, 8])
    meta = {"model": "xoresnet8", "model_kwargs": {"num_classes": 10, "in_channels": 1, "T": 2, "widths": [4, 8, 8]}}
    save_checkpoint(tmp_path / "run", model, {"global_step": 1}, meta, 1, is_best=True)
    rc = main(["-q", "analyze", str(tmp_path / "run"), "--dataset", "digits", "--raster-sample", "100000", "--batches",
               "1", "--batch-size", "8", "--no-plots", "--no-gradients", "--out", str(tmp_path / "an")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "--raster-sample must be in [0, 8)" in err

import json
import subprocess
import sys

import pytest

from xorsnn.cli import build_parser, main


def run_cli(*args, check=True):
    proc = subprocess.run([sys.executable, "-m", "xorsnn", *args], capture_output=True, text=True, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"xorsnn {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def test_every_option_has_help_text():
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command").choices
    assert {"train", "eval", "demo", "compare", "list", "smoke"} <= set(subparsers)
    for name, sub in subparsers.items():
        for action in sub._actions:
            if action.dest != "help":
                assert action.help, f"xorsnn {name}: option {action.option_strings or action.dest} has no help"


def test_list_and_errors(capsys):
    assert main(["list", "xoresnet4*"]) == 0
    assert capsys.readouterr().out.split() == ["xoresnet44", "xoresnet482"]
    assert main(["list", "nothing*"]) == 1
    assert main(["-q", "train", "--model", "resnet_nope", "--dataset", "digits", "--epochs", "1"]) == 2
    assert "unknown model 'resnet_nope'" in capsys.readouterr().err
    assert main(["-q", "train", "--config", "not_a_preset"]) == 2
    assert "neither a file nor a shipped preset" in capsys.readouterr().err


def test_train_then_eval_checkpoint(tmp_path):
    pytest.importorskip("sklearn")
    out = tmp_path / "run"
    run_cli("-q", "train", "--config", "digits_demo", "--model", "ms_resnet20", "--epochs", "2", "--T", "2",
            "--out-dir", str(out), "--no-progress", "--model-arg", "widths=[8, 16, 32]")
    result = json.loads((out / "result.json").read_text())
    proc = run_cli("-q", "eval", str(out), "--json", "--which", "LAST")
    ev = json.loads(proc.stdout)
    assert ev["model"] == "ms_resnet20" and ev["epoch"] == 2 and ev["count"] == 359
    assert ev["acc"] == pytest.approx(result["final_test_acc"], abs=1e-9)
    assert "warning" not in proc.stderr
    from realdata import _locate

    root, _ = _locate("fashion_mnist")
    if root is not None:  # the same checkpoint on another dataset: it runs, and says so
        other = run_cli("-q", "eval", str(out), "--dataset", "fashion_mnist", "--data-dir", str(root),
                        "--test-subset", "64")
        assert "was trained on digits, evaluating it on fashion_mnist" in other.stderr


def test_compare_writes_table_and_plot(tmp_path):
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    out = tmp_path / "cmp"
    proc = run_cli("-q", "compare", "ms_resnet20", "xoresnet20", "--config", "digits_demo", "--epochs", "1",
                   "--T", "2", "--out", str(out), "--no-progress", "--model-arg", "widths=[8, 8, 8]")
    assert "| ms_resnet20 |" in proc.stdout and "| xoresnet20 |" in proc.stdout
    assert (out / "curves.png").stat().st_size > 1000
    rows = json.loads((out / "results.json").read_text())["results"]
    assert [r["model"] for r in rows] == ["ms_resnet20", "xoresnet20"]


@pytest.mark.slow
def test_demo_every_model_above_90_percent(tmp_path):
    """The Quick-start main command: XOResNet, SEW- and MS-ResNet on digits, each > 90 % test accuracy."""
    pytest.importorskip("sklearn")
    run_cli("-q", "demo", "--out", str(tmp_path / "demo"), "--no-progress")
    rows = json.loads((tmp_path / "demo" / "results.json").read_text())["results"]
    assert [r["model"] for r in rows] == ["xoresnet20", "sew_resnet20", "ms_resnet20"]
    for r in rows:
        assert r["final_acc"] > 90.0, r


def test_compare_checks_every_name_and_option_before_training(tmp_path, monkeypatch, capsys):
    """A typo in the third name (or a bad option) fails at once, before any data is loaded or model trained."""
    import time

    import xorsnn.data
    import xorsnn.training

    def boom(*args, **kwargs):
        raise AssertionError("must not be reached")

    monkeypatch.setattr(xorsnn.data, "load_dataset", boom)
    monkeypatch.setattr(xorsnn.training, "train", boom)
    t0 = time.perf_counter()
    rc = main(["compare", "xoresnet20", "sew_resnet20", "ms_resnet2O", "--dataset", "digits", "--epochs", "1",
               "--out", str(tmp_path)])
    assert rc == 2 and time.perf_counter() - t0 < 2.0
    err = capsys.readouterr().err
    assert "unknown model 'ms_resnet2O'" in err and "ms_resnet20" in err and "xoresnet110" not in err  # no dump
    rc = main(["compare", "xoresnet20", "sew_resnet20", "--dataset", "digits", "--model-arg", "xor_mode=sideways",
               "--out", str(tmp_path)])
    assert rc == 2 and "xor_mode must be one of" in capsys.readouterr().err
    assert main(["smoke", "xoresnet20", "sew_resnt20"]) == 2
    assert "Did you mean ['sew_resnet20'" in capsys.readouterr().err


def test_presets_command_and_readme_counts(capsys):
    """The README's counts and preset list are checked against the registry and the shipped presets."""
    import re
    from pathlib import Path

    import xorsnn
    from xorsnn.training.config import list_presets

    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in list_presets()) and f"{len(list_presets())} presets" in out
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    depths = int(re.search(r'list_models\("xoresnet\*"\)\s+# (\d+) depths per family', readme).group(1))
    assert depths == len(xorsnn.list_models("xoresnet*"))
    listed = re.search(r"`xorsnn presets` lists all (\d+) with their descriptions \(([^)]*)\)", readme)
    assert int(listed.group(1)) == len(list_presets())
    assert sorted(re.findall(r"`([a-z0-9_]+)`", listed.group(2))) == list_presets()


def test_misspelled_flags_get_the_closest_flag(capsys):
    cases = ((["train", "--lrr", "0.1"], "--lrr -> --lr"), (["train", "--modle=xoresnet8"], "--modle -> --model"),
             (["--qiuet", "list"], "--qiuet -> --quiet"),
             (["eval", "run", "--batchsize", "3"], "--batchsize -> --batch-size"))
    for argv, hint in cases:
        with pytest.raises(SystemExit) as exc:
            main(argv)
        err = capsys.readouterr().err
        assert exc.value.code == 2 and hint in err and len(err.strip().splitlines()) == 1, err
    with pytest.raises(SystemExit):
        main(["train", "--zzzz"])
    assert "did you mean" not in capsys.readouterr().err  # nothing close: no guess


def test_misspelled_subcommands_and_choices_get_the_closest_one(capsys):
    for argv, hint in ((["trian"], "did you mean 'train'?"), (["export", "--format", "nri", "a", "b"],
                                                               "did you mean 'nir'?")):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        err = capsys.readouterr().err
        assert exc.value.code == 2 and "invalid choice" in err and hint in err and len(err.strip().splitlines()) == 1
    with pytest.raises(SystemExit):
        main(["zzzzzz"])
    assert "did you mean" not in capsys.readouterr().err


def test_train_names_an_unknown_model_before_touching_data_or_disk(tmp_path, monkeypatch, capsys):
    """The default dataset (CIFAR-10) is absent here: the model's name is still what the error is about,
    and no run directory is made."""
    monkeypatch.setenv("XORSNN_DATA", str(tmp_path / "nodata"))
    out = tmp_path / "run"
    assert main(["-q", "train", "--model", "xoresnet2", "--out-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'xoresnet2'" in err and "xoresnet20" in err and "missing file" not in err
    assert not out.exists()


def test_progress_bars_only_on_a_terminal_without_quiet(monkeypatch):
    from xorsnn.cli import _config_from_args

    def cfg(argv, tty):
        monkeypatch.setattr(sys.stderr, "isatty", lambda: tty, raising=False)
        return _config_from_args(build_parser().parse_args(argv))

    assert cfg(["train"], tty=True).progress
    assert not cfg(["train"], tty=False).progress  # redirected: no \r-updated bars in the log
    assert not cfg(["-q", "train"], tty=True).progress
    assert cfg(["-q", "train", "--progress"], tty=False).progress  # asked for explicitly
    assert not cfg(["train", "--no-progress"], tty=True).progress


def test_list_verbose_names_the_definition_and_a_closed_pipe_is_quiet():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "xorsnn", "list", "-v", "orrc_resnet20"], capture_output=True,
                         text=True, check=True).stdout
    assert "[xorsnn/blocks/orrc.py:" in out
    proc = subprocess.run(f"{sys.executable} -m xorsnn list -v | head -n 1", shell=True, capture_output=True,
                          text=True)
    assert proc.stdout.count("\n") == 1 and proc.stderr == ""

"""Converged family comparison: long CPU training runs that span several sessions, one results table.

A *study* is one recipe (dataset, schedule, T, epochs) and a list of (tag, model, model options,
seeds). Every run is a plain ``xorsnn train`` command (printed in the table, copy-pasteable), run
in ``runs/converged/<study>/<tag>_s<seed>``, one at a time under an exclusive CPU lock::

    python benchmarks/converged_study.py plan   --study fashion_mnist          # what is done / to do
    python benchmarks/converged_study.py run    --study fashion_mnist --threads 1 [--only xor oa] [--max-runs 1]
    python benchmarks/converged_study.py render --study fashion_mnist          # table + curves from the JSON
    python benchmarks/converged_study.py park   --study fashion_mnist          # before the session ends

``run`` skips finished runs, resumes interrupted ones (``--resume``: exact, the checkpoint of every
epoch) and collects each run's per-epoch metrics into ``benchmarks/results/converged_<study>.json``
after every run, then re-renders ``converged_<study>.md`` and ``converged_<study>_curves.png``.
Run directories are not committed; a session's processes end with it, so ``park`` copies the newest
checkpoint of every unfinished run into ``benchmarks/inflight/<study>/`` (a few MB, committed), and
the next ``run`` restores it and resumes. A finished run lives on as its rows of the JSON and its
final-epoch weights, ``benchmarks/results/weights/<study>/<tag>_s<seed>/model.safetensors`` (~0.7 MB for a
ResNet-14, committed; ``xorsnn eval``/``analyze`` take that folder).

Accuracies: ``final`` is the test accuracy after the last epoch (the number to compare); ``best``
is the maximum over epochs (what PLIF and many SNN papers report) and is labelled as such.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import fcntl
import json
import math
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xorsnn.training.checkpoint import WEIGHTS

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
INFLIGHT = ROOT / "benchmarks" / "inflight"
RUNS = ROOT / "runs" / "converged"
LOCK = Path(os.environ.get("XORSNN_CPU_LOCK", "/tmp/xorsnn_cpu.lock"))


@dataclass(frozen=True)
class RunSpec:
    """One configuration of a study: ``tag`` names it in the table; ``args`` are extra CLI flags."""

    tag: str
    model: str
    label: str
    model_args: dict[str, Any] = field(default_factory=dict)
    seeds: tuple[int, ...] = (0,)
    args: tuple[str, ...] = ()


@dataclass(frozen=True)
class Study:
    """A recipe (CLI flags shared by every run) and its runs, in the order they are trained."""

    name: str
    dataset: str
    recipe: tuple[str, ...]
    epochs: int
    runs: tuple[RunSpec, ...]
    order: tuple[tuple[str, int], ...]  # (tag, seed) in training priority
    note: str = ""

    def spec(self, tag: str) -> RunSpec:
        for r in self.runs:
            if r.tag == tag:
                return r
        raise ValueError(f"study {self.name!r} has no run tag {tag!r}; tags: {[r.tag for r in self.runs]}")


# -- the studies -----------------------------------------------------------------------------------
_NO_ZI = {"zero_init_residual": False}
_XOR = {"xor_mode": "input", "or_form": "poly"}

FMNIST_RECIPE = (
    "--dataset", "fashion_mnist", "--T", "2", "--epochs", "15", "--batch-size", "64",
    "--optimizer", "sgd", "--lr", "0.1", "--momentum", "0.9", "--nesterov", "--weight-decay", "5e-4",
    "--schedule", "cosine", "--augment", "--device", "cpu", "--no-progress",
)

FASHION_MNIST = Study(
    name="fashion_mnist",
    dataset="fashion_mnist",
    recipe=FMNIST_RECIPE,
    epochs=15,
    note=(
        "Full 60k train / 10k test (official split); 6n+2 ResNet-14 layout (3x3 stem, [2,2,2] x 16/32/64, "
        "28x28 input), T = 2, SGD Nesterov 0.1, cosine to 0 over 15 epochs, batch 64, wd 5e-4, crop 2 + flip; "
        "zero_init_residual off unless the tag says zi."
    ),
    runs=(
        RunSpec("spiking", "spiking_resnet14", "Spiking ResNet-14", dict(_NO_ZI)),
        RunSpec("sew", "sew_resnet14", "SEW-ResNet-14 (ADD)", {**_NO_ZI, "connect": "add"}, seeds=(0, 1, 2)),
        RunSpec("ms", "ms_resnet14", "MS-ResNet-14", dict(_NO_ZI), seeds=(0, 1, 2)),
        RunSpec("oa", "oa_resnet14", "OA-ResNet-14 (OR-ADD only)", dict(_NO_ZI), seeds=(0, 1, 2)),
        RunSpec("xor", "xoresnet14", "XOResNet-14 (xor_prev=shortcut)", {**_NO_ZI, **_XOR, "xor_prev": "shortcut"},
                seeds=(0, 1, 2)),
        RunSpec("xor_input", "xoresnet14", "XOResNet-14 (xor_prev=input, the earlier reading)",
                {**_NO_ZI, **_XOR, "xor_prev": "input"}),
        RunSpec("xor_zi", "xoresnet14", "XOResNet-14 (shortcut), zero-init on",
                {"zero_init_residual": True, **_XOR, "xor_prev": "shortcut"}),
        RunSpec("sew_zi", "sew_resnet14", "SEW-ResNet-14 (ADD), zero-init on", {"zero_init_residual": True}),
        RunSpec("ann", "ann_cifar_resnet14", "ANN ResNet-14 (ReLU, ceiling)", {}),
    ),
    order=(
        ("oa", 0), ("xor", 0), ("ms", 0), ("sew", 0), ("spiking", 0), ("ann", 0), ("xor_input", 0),
        ("xor", 1), ("oa", 1), ("ms", 1), ("sew", 1), ("xor", 2), ("oa", 2), ("ms", 2), ("sew", 2),
        ("xor_zi", 0), ("sew_zi", 0),
    ),
)

CIFAR10_RECIPE = (
    "--dataset", "cifar10", "--T", "2", "--epochs", "40", "--batch-size", "64",
    "--optimizer", "sgd", "--lr", "0.1", "--momentum", "0.9", "--nesterov", "--weight-decay", "5e-4",
    "--schedule", "cosine", "--augment", "--device", "cpu", "--no-progress",
)

CIFAR10 = Study(
    name="cifar10",
    dataset="cifar10",
    recipe=CIFAR10_RECIPE,
    epochs=40,
    note=(
        "The shared CIFAR-10 copy (real images recovered from JPEG, PSNR ~30 dB; 50k train / 10k test); the "
        "Fashion-MNIST study's ResNet-14 layout (3x3 stem, [2,2,2] x 16/32/64) at 32x32, T = 2, SGD Nesterov 0.1, "
        "cosine to 0 over 40 epochs, batch 64, wd 5e-4, crop 4 + flip, zero_init_residual off."
    ),
    runs=(
        RunSpec("xor", "xoresnet14", "XOResNet-14 (xor_prev=input, the default)",
                {**_NO_ZI, **_XOR, "xor_prev": "input"}),
        RunSpec("ms", "ms_resnet14", "MS-ResNet-14", dict(_NO_ZI)),
        RunSpec("oa", "oa_resnet14", "OA-ResNet-14 (OR-ADD only)", dict(_NO_ZI)),
        RunSpec("sew", "sew_resnet14", "SEW-ResNet-14 (ADD)", {**_NO_ZI, "connect": "add"}),
    ),
    order=(("xor", 0), ("ms", 0), ("oa", 0), ("sew", 0)),
)

STUDIES = {s.name: s for s in (FASHION_MNIST, CIFAR10)}


# -- commands --------------------------------------------------------------------------------------
def run_id(tag: str, seed: int) -> str:
    return f"{tag}_s{seed}"


def run_dir(study: Study, tag: str, seed: int) -> Path:
    return RUNS / study.name / run_id(tag, seed)


def _rel(path: Path) -> Path:
    """``path`` relative to the repository when inside it (as the commands in the table show it)."""
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def _yaml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def train_command(study: Study, tag: str, seed: int) -> list[str]:
    """The ``xorsnn train`` command of one run (without ``--resume``)."""
    spec = study.spec(tag)
    cmd = ["xorsnn", "train", "--model", spec.model, *study.recipe, *spec.args]
    for key, value in spec.model_args.items():
        cmd += ["--model-arg", f"{key}={_yaml_value(value)}"]
    return cmd + ["--seed", str(seed), "--out-dir", str(_rel(run_dir(study, tag, seed)))]


# -- reading a run directory -----------------------------------------------------------------------
def _read_metrics(path: Path) -> list[dict[str, float]]:
    if not path.exists():
        return []
    with open(path) as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def wall_time_s(metrics: list[dict[str, float]]) -> float:
    """Training + evaluation wall time over all process segments of a (possibly resumed) run.

    Each row's ``wall_time_s`` counts from its process's start; a drop marks a resume. An epoch
    lost to a kill (not checkpointed) is not counted.
    """
    total, last = 0.0, 0.0
    for row in metrics:
        w = row["wall_time_s"]
        if w < last:
            total += last
        last = w
    return total + last


def collect(study: Study, tag: str, seed: int, threads: int | None) -> dict[str, Any] | None:
    """The JSON row of one run from its directory (``None`` if it has no finished epoch)."""
    d = run_dir(study, tag, seed)
    metrics = _read_metrics(d / "metrics.csv")
    if not metrics:
        return None
    result = json.loads((d / "result.json").read_text()) if (d / "result.json").exists() else {}
    finished = bool(result) and len(metrics) >= study.epochs
    accs = [m["test_acc"] for m in metrics]
    best_i = max(range(len(accs)), key=lambda i: accs[i])
    spec = study.spec(tag)
    return {
        "study": study.name, "tag": tag, "label": spec.label, "model": spec.model, "model_args": spec.model_args,
        "seed": seed, "epochs_done": len(metrics), "epochs": study.epochs, "finished": finished,
        "final_test_acc": accs[-1] if finished else None, "last_test_acc": accs[-1],
        "best_test_acc": accs[best_i], "best_epoch": best_i + 1,
        "final_train_acc": metrics[-1]["train_acc"], "wall_time_s": wall_time_s(metrics),
        "train_img_per_s": statistics.median(m["train_img_per_s"] for m in metrics),
        "threads": threads, "device": result.get("device_name", "cpu"), "torch": result.get("torch"),
        "command": shlex.join(train_command(study, tag, seed)),
        "curve": [{"epoch": int(m["epoch"]), "train_acc": m["train_acc"], "test_acc": m["test_acc"],
                   "train_loss": m["train_loss"], "test_loss": m["test_loss"]} for m in metrics],
    }


# -- results file ----------------------------------------------------------------------------------
def results_path(study: Study, suffix: str) -> Path:
    return RESULTS / f"converged_{study.name}{suffix}"


def load_results(study: Study) -> dict[str, dict[str, Any]]:
    path = results_path(study, ".json")
    if not path.exists():
        return {}
    rows = json.loads(path.read_text()).get("rows", {})
    if not isinstance(rows, dict):
        raise ValueError(f"{path}: 'rows' must be a mapping of run id -> row")
    return rows


def save_results(study: Study, rows: dict[str, dict[str, Any]], machine: dict[str, Any]) -> None:
    path = results_path(study, ".json")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"study": study.name, "note": study.note, "machine": machine, "rows": rows},
                              indent=1, sort_keys=True))
    tmp.replace(path)


def machine_info() -> dict[str, Any]:
    import platform

    import torch

    import xorsnn

    try:
        import numba  # noqa: F401

        numba_version = numba.__version__
    except ImportError:  # pragma: no cover - optional
        numba_version = None
    return {"cpu": platform.machine(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "xorsnn": getattr(xorsnn, "__version__", "?"), "numba": numba_version}


# -- rendering -------------------------------------------------------------------------------------
def _pct(v: float | None, digits: int = 2) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.{digits}f}"


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean, sample standard deviation and range of the final (and best-epoch) accuracy over seeds."""
    final = [r["final_test_acc"] for r in rows if r["finished"]]
    best = [r["best_test_acc"] for r in rows if r["finished"]]
    out: dict[str, Any] = {"n": len(final), "running": sum(not r["finished"] for r in rows)}
    if final:
        out.update(mean=statistics.fmean(final), sd=statistics.stdev(final) if len(final) > 1 else None,
                   lo=min(final), hi=max(final), best_mean=statistics.fmean(best),
                   wall_min=statistics.fmean(r["wall_time_s"] for r in rows if r["finished"]) / 60)
    return out


def render_markdown(study: Study, rows: dict[str, dict[str, Any]], machine: dict[str, Any]) -> str:
    by_tag: dict[str, list[dict[str, Any]]] = {}
    for row in rows.values():
        by_tag.setdefault(row["tag"], []).append(row)
    lines = [
        f"# Converged study: {study.name}",
        "",
        study.note,
        "",
        f"Machine: {machine.get('cpu')} CPU, {machine.get('cpu_count')} cores; Python {machine.get('python')}, "
        f"torch {machine.get('torch')}, xorsnn {machine.get('xorsnn')}, numba {machine.get('numba')}. Runs at 1 "
        "thread, usually two at a time (two lanes, one CPU lock each), so the wall times include sharing the machine; "
        "`threads` is the run's torch thread count. Alone, an MS-ResNet-14 Fashion-MNIST epoch took ~5 min at 1 thread "
        "and 2.8-3.9 min at 2 threads (one training process, measured 2026-12-02; the VM's speed varies). "
        "Rendered by `python benchmarks/converged_study.py render --study "
        f"{study.name}`; each run's command is in the second table (add `--resume` to continue one).",
        "",
        "**final** = test accuracy after the last epoch (mean ± sample s.d. over seeds, range); "
        "**best** = maximum over epochs (PLIF-style, reported separately, not the number to compare).",
        "",
        "| configuration | seeds done | final test acc % (mean ± sd) | range % | best-epoch acc % (mean) "
        "| wall min / run |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for spec in study.runs:
        if spec.tag not in by_tag:
            continue
        s = summarize(by_tag[spec.tag])
        running = f" (+{s['running']} running)" if s["running"] else ""
        if s["n"]:
            sd = f" ± {100 * s['sd']:.2f}" if s["sd"] is not None else ""
            lines.append(f"| {spec.label} | {s['n']}{running} | {_pct(s['mean'])}{sd} | "
                         f"{_pct(s['lo'])}–{_pct(s['hi'])} | {_pct(s['best_mean'])} | {s['wall_min']:.0f} |")
        else:
            lines.append(f"| {spec.label} | 0{running} | – | – | – | – |")
    lines += [
        "",
        "## Runs",
        "",
        "| run | epochs | final % | best % (epoch) | train acc % | wall min | img/s | threads | device | code "
        "| command |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---|---|",
    ]
    for key in sorted(rows, key=lambda k: (rows[k]["tag"], rows[k]["seed"])):
        r = rows[key]
        status = "" if r["finished"] else f" (running; last {_pct(r['last_test_acc'])})"
        lines.append(
            f"| {key}{status} | {r['epochs_done']}/{r['epochs']} | {_pct(r['final_test_acc'])} | "
            f"{_pct(r['best_test_acc'])} ({r['best_epoch']}) | {_pct(r['final_train_acc'])} | "
            f"{r['wall_time_s'] / 60:.0f} | {r['train_img_per_s']:.0f} | {r['threads'] or '?'} | {r['device']} | "
            f"{r.get('code') or '?'} | `{r['command']}` |"
        )
    kept = [k for k in sorted(rows) if (weights_dir(study, rows[k]["tag"], rows[k]["seed"]) / WEIGHTS).exists()]
    if kept:
        where = f"benchmarks/results/weights/{study.name}/RUN"
        lines += ["", f"Final-epoch weights kept for {', '.join(kept)} in `{where}/` (`xorsnn eval {where} --dataset "
                  f"{study.dataset}` reproduces the final column; `xorsnn analyze` takes the same folder)."]
    return "\n".join(lines) + "\n"


def render_curves(study: Study, rows: dict[str, dict[str, Any]], path: Path) -> bool:
    """Test accuracy per epoch, one line per seed: all epochs (left) and the last five, zoomed (right),
    where the converged rows differ by tenths of a point."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, (ax, zoom) = plt.subplots(1, 2, figsize=(12, 5), dpi=120, gridspec_kw={"width_ratios": [3, 2]})
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    tags = [s.tag for s in study.runs if any(r["tag"] == s.tag for r in rows.values())]
    first = max(1, study.epochs - 4)
    for i, tag in enumerate(tags):
        for r in sorted((r for r in rows.values() if r["tag"] == tag), key=lambda r: r["seed"]):
            ep = [c["epoch"] for c in r["curve"]]
            acc = [100 * c["test_acc"] for c in r["curve"]]
            label = study.spec(tag).label if r["seed"] == min(x["seed"] for x in rows.values()
                                                               if x["tag"] == tag) else None
            ax.plot(ep, acc, color=colors[i % len(colors)], lw=1.4, alpha=0.9, label=label)
            late = [(e, a) for e, a in zip(ep, acc, strict=True) if e >= first]
            if late:
                zoom.plot(*zip(*late, strict=True), color=colors[i % len(colors)], lw=1.4, alpha=0.9, marker=".")
    accs = [100 * c["test_acc"] for r in rows.values() for c in r["curve"]]
    late_accs = [100 * c["test_acc"] for r in rows.values() for c in r["curve"] if c["epoch"] >= first]
    for a, title, values in ((ax, f"{study.name}: test accuracy per epoch (one line per seed)", accs),
                             (zoom, f"epochs {first}-{study.epochs}, zoomed", late_accs)):
        a.set_xlabel("epoch")
        a.set_ylabel("test accuracy % (full test set)")
        a.set_title(title, fontsize=10)
        a.xaxis.get_major_locator().set_params(integer=True)
        if values:
            pad = 0.2 if a is zoom else 1.0
            a.set_ylim(max(min(values) - pad, 0), min(max(values) + pad, 100))
        a.grid(alpha=0.3)
    zoom.set_xlim(first - 0.3, study.epochs + 0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def render(study: Study) -> None:
    rows = load_results(study)
    path = results_path(study, ".json")
    machine = json.loads(path.read_text()).get("machine", {}) if path.exists() else machine_info()
    results_path(study, ".md").write_text(render_markdown(study, rows, machine))
    if rows:
        render_curves(study, rows, results_path(study, "_curves.png"))


# -- running ---------------------------------------------------------------------------------------
@contextlib.contextmanager
def cpu_lock(path: Path) -> Iterator[None]:
    """Exclusive lock shared by every heavy job on this machine (waits for the holder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _has_checkpoint(d: Path) -> bool:
    return (d / "checkpoints" / "LAST").exists()


def check_parked(d: Path) -> None:
    """Raise ``SystemExit`` naming ``d`` unless its ``LAST`` checkpoint is intact (weights and state, checksums)."""
    from xorsnn.training.checkpoint import CheckpointError, resolve_checkpoint, verify_checkpoint

    try:
        verify_checkpoint(resolve_checkpoint(d, "LAST"))
    except CheckpointError as exc:
        raise SystemExit(f"parked run {_rel(d)} is not resumable: {exc}; delete it to restart the run "
                         "from epoch 0") from None


def git_ignored(paths: list[Path], repo: Path = ROOT) -> list[Path]:
    """Those of ``paths`` (files in ``repo``) that git would leave out of a commit."""
    rels = [str(p.relative_to(repo)) for p in paths if p.is_relative_to(repo)]
    if not rels:
        return []
    out = subprocess.run(["git", "check-ignore", "--stdin"], cwd=repo, input="\n".join(rels), text=True,
                         capture_output=True)
    return [repo / line for line in out.stdout.splitlines() if line]


def restore_inflight(study: Study, tag: str, seed: int) -> bool:
    """Copy a parked run back into ``runs/`` (when its run directory is missing); ``True`` if restored."""
    src, dst = INFLIGHT / study.name / run_id(tag, seed), run_dir(study, tag, seed)
    if not src.exists() or _has_checkpoint(dst):
        return False
    check_parked(src)
    shutil.copytree(src, dst, dirs_exist_ok=True)
    return True


def weights_dir(study: Study, tag: str, seed: int) -> Path:
    """Where the final-epoch weights of a finished run are kept (committed, unlike ``runs/``)."""
    return RESULTS / "weights" / study.name / run_id(tag, seed)


def keep_final_weights(study: Study, tag: str, seed: int) -> Path | None:
    """Copy the last epoch's ``model.safetensors`` of a finished run into :func:`weights_dir` (verified;
    refused if git would not commit it); ``None`` when the run directory is gone (an earlier session's run)."""
    from xorsnn.training.checkpoint import resolve_checkpoint, verify_checkpoint

    d = run_dir(study, tag, seed)
    if not _has_checkpoint(d):
        return None
    ckpt = resolve_checkpoint(d, "LAST")
    verify_checkpoint(ckpt, with_state=False)  # checksums and finiteness, read once, before anything is copied
    dest = weights_dir(study, tag, seed)
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(ckpt.weights, dest / WEIGHTS)
    if git_ignored([dest / WEIGHTS]):
        raise SystemExit(f"git ignores {_rel(dest / WEIGHTS)}; add a '!' rule to .gitignore")
    return dest


def is_finished(study: Study, tag: str, seed: int) -> bool:
    row = load_results(study).get(run_id(tag, seed))
    if row is not None and row["finished"] and row["epochs_done"] >= study.epochs:
        return True
    d = run_dir(study, tag, seed)
    return (d / "result.json").exists() and len(_read_metrics(d / "metrics.csv")) >= study.epochs


def code_version(src: Path = ROOT) -> str:
    """``git describe --always --dirty`` of the checkout (``?`` outside git)."""
    try:
        return subprocess.run(["git", "describe", "--always", "--dirty"], cwd=src, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def snapshot_source() -> Path:
    """``src/`` of the committed ``HEAD`` (``git archive``), frozen for the children: neither uncommitted
    work nor later edits can change a run of the study."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()
    dest = RUNS / ".src" / head
    if not (dest / "src").exists():
        dest.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", "HEAD", "src"], cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
        (dest / "VERSION").write_text(head + "\n")
    return dest


def train_one(study: Study, tag: str, seed: int, threads: int, snapshot: Path | None = None) -> int:
    """Train (or resume) one run in a child process; returns its exit code.

    The child is ``python -m xorsnn train ...`` of this interpreter; with ``snapshot`` it imports xorsnn
    from that frozen copy.
    """
    restore_inflight(study, tag, seed)
    cmd = train_command(study, tag, seed)
    d = run_dir(study, tag, seed)
    if _has_checkpoint(d):
        cmd.append("--resume")
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    if snapshot is not None:
        env["PYTHONPATH"] = str(snapshot / "src")
    cmd = [sys.executable, "-m", "xorsnn", *cmd[1:]]  # this interpreter's xorsnn, whatever PATH holds
    d.mkdir(parents=True, exist_ok=True)
    print(f"[{time.strftime('%H:%M:%S')}] {shlex.join(cmd)}", flush=True)
    with open(d / "train.log", "a") as log:
        return subprocess.call(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def _merged(old: Any, new: Any) -> Any:
    """``"a,b"`` when a resumed run's setting changed between sessions (thread count, code version)."""
    if old in (None, "", new) or new in (None, ""):
        return new if new not in (None, "") else old
    seen = str(old).split(",")
    return old if str(new) in seen else f"{old},{new}"


def update(study: Study, tag: str, seed: int, threads: int | None, code: str | None = None) -> None:
    """Collect one run into the results JSON and re-render."""
    row = collect(study, tag, seed, threads)
    rows = load_results(study)
    if row is None:
        return
    old = rows.get(run_id(tag, seed), {})
    row["threads"] = _merged(old.get("threads"), threads)
    row["code"] = _merged(old.get("code"), code)
    rows[run_id(tag, seed)] = row
    save_results(study, rows, machine_info())
    render(study)


def pending(study: Study, only: list[str] | None, seeds: list[int] | None) -> list[tuple[str, int]]:
    todo = [(t, s) for t, s in study.order if (not only or t in only) and (seeds is None or s in seeds)]
    return [(t, s) for t, s in todo if not is_finished(study, t, s)]


def cmd_run(args: argparse.Namespace) -> int:
    study = STUDIES[args.study]
    snapshot = snapshot_source() if args.snapshot else None
    code = (snapshot / "VERSION").read_text().strip() if snapshot else code_version()
    done = 0
    while args.max_runs is None or done < args.max_runs:
        with cpu_lock(LOCK):  # what is pending is decided only once the lock is held
            todo = pending(study, args.only, args.seeds)
            if not todo:
                return 0
            tag, seed = todo[0]
            rc = train_one(study, tag, seed, args.threads, snapshot)
        update(study, tag, seed, args.threads, code)
        if is_finished(study, tag, seed):
            keep_final_weights(study, tag, seed)
        done += 1
        if rc != 0:
            print(f"run {run_id(tag, seed)} exited with {rc}; see {run_dir(study, tag, seed) / 'train.log'}")
            return rc
    return 0


def cmd_park(args: argparse.Namespace) -> int:
    """Copy the newest checkpoint of every unfinished run into ``benchmarks/inflight`` (for the next session)."""
    study = STUDIES[args.study]
    dest_root = INFLIGHT / study.name
    for tag, seed in study.order:
        rid, d = run_id(tag, seed), run_dir(study, tag, seed)
        dest = dest_root / rid
        if is_finished(study, tag, seed):
            if dest.exists():
                shutil.rmtree(dest)
            keep_final_weights(study, tag, seed)
            continue
        if not _has_checkpoint(d):
            continue
        last = (d / "checkpoints" / "LAST").read_text().strip()
        if dest.exists():
            shutil.rmtree(dest)
        (dest / "checkpoints").mkdir(parents=True)
        shutil.copytree(d / "checkpoints" / last, dest / "checkpoints" / last)
        for name in ("LAST", "BEST"):
            (dest / "checkpoints" / name).write_text(last + "\n")
        for name in ("metrics.csv", "config.yaml"):
            if (d / name).exists():
                shutil.copy2(d / name, dest / name)
        check_parked(dest)
        lost = git_ignored(sorted(p for p in dest.rglob("*") if p.is_file()))
        if lost:  # a commit would drop them and the next session could not resume (the weights, once)
            raise SystemExit(f"park: git ignores {', '.join(_rel(p) for p in lost)}; add a '!' rule to .gitignore")
        update(study, tag, seed, args.threads)
        print(f"parked {rid} at {last} -> {_rel(dest)}")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    study = STUDIES[args.study]
    rows = load_results(study)
    for tag, seed in study.order:
        rid = run_id(tag, seed)
        row = rows.get(rid)
        if is_finished(study, tag, seed):
            state = f"done: final {_pct(row['final_test_acc']) if row else '?'} %"
        elif _has_checkpoint(run_dir(study, tag, seed)) or (INFLIGHT / study.name / rid).exists():
            state = f"in progress ({row['epochs_done'] if row else '?'}/{study.epochs} epochs)"
        else:
            state = "to do"
        print(f"{rid:14s} {state}")
    return 0


def cmd_collect(args: argparse.Namespace) -> int:
    study = STUDIES[args.study]
    for tag, seed in study.order:
        if (run_dir(study, tag, seed) / "metrics.csv").exists():
            update(study, tag, seed, args.threads)
    render(study)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("command", choices=("plan", "run", "render", "collect", "park"))
    p.add_argument("--study", default="fashion_mnist", choices=sorted(STUDIES))
    p.add_argument("--only", nargs="+", help="run tags to train (default: all, in the study's order)")
    p.add_argument("--seeds", nargs="+", type=int, help="seeds to train (default: the study's)")
    p.add_argument("--max-runs", type=int, default=None, help="train at most this many runs, then stop")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run (recorded in the table)")
    p.add_argument("--snapshot", action="store_true",
                   help="run the children against a frozen copy of src/ (edits during the study cannot change a run)")
    args = p.parse_args(argv)
    if args.threads < 1:
        p.error(f"--threads must be >= 1, got {args.threads}")
    if args.max_runs is not None and args.max_runs < 1:
        p.error(f"--max-runs must be >= 1, got {args.max_runs}")
    if args.command == "render":
        render(STUDIES[args.study])
        return 0
    return {"run": cmd_run, "park": cmd_park, "plan": cmd_plan, "collect": cmd_collect}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())

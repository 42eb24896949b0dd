"""One prepared command for a lent GPU: correctness on the device, the training-step table, and a
short time-to-accuracy run, written to ``benchmarks/results/`` -- inside ~8 minutes on one H200.

    python benchmarks/gpu_check.py                       # on the GPU machine (device tool `run`)
    python benchmarks/gpu_check.py --device cpu --quick  # the CPU dry run CI executes (tiny shapes)

Stages, each time-boxed; results are rewritten after every stage, so a run cut short still leaves
what it measured (``gpu_check.json`` + ``gpu_check.md``):

1. ``env``: torch / CUDA versions, device name, TF32 and cuDNN settings, Triton presence.
2. ``tests``: ``pytest -m gpu`` (the GPU-marked tests; they skip without CUDA).
3. ``correctness``: on the device, every neuron backend against the autograd oracle (spikes exact,
   gradients to 1e-5), a SpikingResNet forward in fp32 vs CPU, bf16 autocast finite, channels_last
   equal to contiguous, ``torch.compile`` equal to eager.
4. ``train_step``: img/s (CUDA-event timing, median of interleaved samples) and peak memory per
   training step, fp32 / tf32 / bf16, CIFAR stem (B=128, T=4, 32x32) and ImageNet stem (B=32, T=4,
   224x224): SEW-/XOResNet-/MS-ResNet-18 beside the ANN ceiling (the same ResNet-18 with ReLU on
   B*T images) and SpikingJelly 2.0's SEW-ResNet-18 when it is importable.
5. ``cuda_graphs``: XOResNet-18 (CIFAR layout, B=128, T=4, bf16) eager vs ``torch.compile(mode="reduce-overhead")``:
   ms/step, compile seconds, and inductor's CUDA-graph counters (any reason graphs were skipped).
6. ``time_to_accuracy``: CIFAR-10 (``--data-dir``, official pickles; ``prepare_data.py`` lays them
   out) trained for ``--tta-seconds`` with XOResNet-18 (CIFAR layout, T=2, bf16 on CUDA), then the
   full test set.

The device machine gets the checkout, not ``../shared``: carry ``.carry/cifar10-jpeg.npz`` and
``.carry/prepare_data.py`` (see docs/deploy.md) and pass ``--data-dir`` after laying them out.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

import xorsnn
from xorsnn.models.ann import ANNResNet
from xorsnn.neurons.backends import multistep, triton_available
from xorsnn.neurons.dynamics import multistep_autograd

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
ARCHS = ("sew_resnet18", "xoresnet18", "ms_resnet18")


# -- helpers -----------------------------------------------------------------------------------------
class Timer:
    """Wall-clock (CPU) or CUDA-event (GPU) timing of a callable, in seconds."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"

    def __call__(self, fn: Callable[[], None], n: int) -> float:
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(n):
                fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1000 / n
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - t0) / n


def env_info(device: torch.device) -> dict[str, Any]:
    try:
        import triton  # noqa: F401

        triton_version = triton.__version__
    except ImportError:
        triton_version = None
    info = {"python": platform.python_version(), "torch": torch.__version__, "xorsnn": xorsnn.__version__,
            "device": str(device), "cuda": torch.version.cuda, "triton": triton_version,
            "cpu": platform.machine()}
    if device.type == "cuda":
        info.update(name=torch.cuda.get_device_name(device), capability=list(torch.cuda.get_device_capability(device)),
                    memory_gb=round(torch.cuda.get_device_properties(device).total_memory / 2**30, 1))
    return info


# -- stage 3: correctness on the device --------------------------------------------------------------
def check_neurons(device: torch.device) -> list[dict[str, Any]]:
    """Every backend usable on ``device`` vs the autograd oracle on the CPU (fp32)."""
    rows = []
    g = torch.Generator().manual_seed(0)
    for spec in ({"tau": 2.0}, {"tau": None, "decay": 0.25, "v_threshold": 0.5, "surrogate": "rectangle"},
                 {"tau": 2.0, "reset": "soft", "detach_reset": False}, {"tau": 2.0, "real_valued": True}):
        neuron = xorsnn.neurons.make_neuron(spec)
        d = neuron.dynamics
        x = torch.randn(4, 3, 257, generator=g) * 1.5
        xr = x.clone().requires_grad_(True)
        ref_out, _ = multistep_autograd(xr, d)
        ref_out.sum().backward()
        gpu_backends = ("torch", "triton") if triton_available() else ("torch",)
        for backend in ("torch", "cpu") if device.type == "cpu" else gpu_backends:
            xd = x.detach().clone().to(device).requires_grad_(True)  # a fresh leaf per backend
            out, _ = multistep(xd, d, backend=backend)
            out.sum().backward()
            rows.append({"neuron": json.dumps(spec), "backend": backend,
                         "spikes_equal": bool(torch.equal((out.detach().cpu() != 0), (ref_out.detach() != 0))),
                         "out_max_err": float((out.detach().cpu() - ref_out.detach()).abs().max()),
                         "grad_max_err": float((xd.grad.cpu() - xr.grad).abs().max())})
    return rows


def check_model(device: torch.device, size: int) -> dict[str, Any]:
    """fp32 device vs CPU, bf16 autocast finite, channels_last and torch.compile vs eager."""
    torch.manual_seed(0)
    model = xorsnn.create_model("xoresnet18_cifar", T=2, zero_init_residual=False).eval()
    x = torch.rand(4, 3, size, size)
    with torch.no_grad():
        ref = model(x)
        dev_model = model.to(device)
        out = dev_model(x.to(device))
        res: dict[str, Any] = {"fp32_max_err_vs_cpu": float((out.cpu() - ref).abs().max())}
        with torch.autocast(device.type, dtype=torch.bfloat16):
            res["bf16_finite"] = bool(torch.isfinite(dev_model(x.to(device)).float()).all())
        cl = dev_model.to(memory_format=torch.channels_last)
        res["channels_last_max_err"] = float((cl(x.to(device)) - out).abs().max())
    try:
        compiled = torch.compile(dev_model)
        with torch.no_grad():
            res["compile_max_err"] = float((compiled(x.to(device)) - out).abs().max())
    except Exception as exc:  # noqa: BLE001 - recorded, not fatal: the report says what failed
        res["compile_error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    return res


# -- stage 4: training-step table --------------------------------------------------------------------
def _spikingjelly_sew18(T: int, num_classes: int) -> nn.Module | None:
    try:
        from spikingjelly.activation_based import functional, neuron, surrogate
        from spikingjelly.activation_based.model import sew_resnet
    except ImportError:
        return None
    net = sew_resnet.sew_resnet18(cnf="ADD", spiking_neuron=neuron.LIFNode, surrogate_function=surrogate.ATan(),
                                  detach_reset=True, num_classes=num_classes)
    functional.set_step_mode(net, "m")

    class Wrap(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, img: torch.Tensor) -> torch.Tensor:
            out = self.net(img.unsqueeze(0).repeat(T, 1, 1, 1, 1))
            functional.reset_net(self.net)
            return out

    return Wrap()


def _models(layout: str, T: int) -> dict[str, Callable[[], nn.Module]]:
    stem = {"cifar": {"stem": "cifar"}, "imagenet": {}}[layout]
    suffix = "18_cifar" if layout == "cifar" else "18"
    builders: dict[str, Callable[[], nn.Module]] = {
        "ann ceiling (B*T images)": lambda: ANNResNet("spiking", layers=[2, 2, 2, 2], num_classes=10,
                                                      stem=stem.get("stem", "imagenet")),
    }
    for arch in ARCHS:
        name = arch.replace("18", suffix)
        builders[f"xorsnn {name}"] = lambda name=name: xorsnn.create_model(name, T=T, num_classes=10)
    builders["spikingjelly 2.0 sew_resnet18"] = lambda: _spikingjelly_sew18(T, 10)  # type: ignore[assignment,return-value]
    return builders


def train_step(model: nn.Module, run: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor, *,
               bf16: bool, ann: bool = False, mark_step: bool = False) -> Callable[[], None]:
    """One SGD training step of ``model`` called through ``run`` (itself, or a compiled wrapper): cross-entropy of
    the time-mean logits (of the first output for an ANN on ``B*T`` images), bf16 autocast if asked; with
    ``mark_step`` it first tells CUDA-graph trees that a new iteration begins."""
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, foreach=True)

    def step() -> None:
        if mark_step:
            torch.compiler.cudagraph_mark_step_begin()
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
            out = run(x)
            loss = F.cross_entropy((out[0] if ann else out.mean(0)).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def train_step_table(device: torch.device, layouts: dict[str, tuple[int, int, int]], precisions: list[str],
                     repeats: int, steps: int, deadline: float) -> list[dict[str, Any]]:
    """Rows of (layout, precision, model): ms/step, img/s, peak memory, ratio to the ANN ceiling."""
    rows: list[dict[str, Any]] = []
    timer = Timer(device)
    for layout, (B, T, size) in layouts.items():
        for prec in precisions:
            if time.time() > deadline:
                return rows
            torch.backends.cuda.matmul.allow_tf32 = prec == "tf32"
            torch.backends.cudnn.allow_tf32 = prec == "tf32"
            entries = []
            for label, build in _models(layout, T).items():
                model = build()
                if model is None:
                    continue
                model = model.to(device).train()
                ann = label.startswith("ann")
                x = torch.randn(B * T if ann else B, 3, size, size, device=device)
                y = torch.randint(0, 10, (x.shape[0],), device=device)
                entries.append((label, train_step(model, model, x, y, bf16=prec == "bf16", ann=ann)))
            samples: dict[str, list[float]] = {label: [] for label, _ in entries}
            peaks: dict[str, float] = {}
            for label, step in entries:  # warm-up, peak memory
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                step()
                step()
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                    peaks[label] = torch.cuda.max_memory_allocated(device) / 2**20
            for _ in range(repeats):  # interleaved
                for label, step in entries:
                    samples[label].append(timer(step, steps))
            ceiling = statistics.median(samples["ann ceiling (B*T images)"])
            for label, _ in entries:
                med = statistics.median(samples[label])
                rows.append({"layout": layout, "B": B, "T": T, "size": size, "precision": prec, "model": label,
                             "ms_per_step": 1000 * med, "img_per_s": B / med, "x_ann": ceiling / med,
                             "peak_mib": peaks.get(label)})
            del entries
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return rows


# -- stage 5: CUDA graphs ----------------------------------------------------------------------------
def cuda_graphs(device: torch.device, quick: bool, deadline: float) -> dict[str, Any]:
    """XOResNet-18 (CIFAR layout) training step, eager vs ``torch.compile(mode="reduce-overhead")`` (CUDA graphs),
    bf16 on CUDA: ms/step (CUDA events, median of 3 x 5 steps), the warm-up (compile) seconds, and inductor's
    counters, which name any reason CUDA graphs were skipped. The CPU dry run compiles with dynamo's ``eager``
    backend at tiny shapes (CUDA graphs are CUDA-only), so that CI runs every line but the device's."""
    if time.time() + (5 if quick else 150) > deadline:
        return {"skipped": "not enough of the time budget left"}
    cuda = device.type == "cuda"
    B, T, size = (128, 4, 32) if not quick else (2, 2, 16)
    compile_kwargs: dict[str, Any] = {"mode": "reduce-overhead"} if cuda else {"backend": "eager"}
    timer = Timer(device)
    res: dict[str, Any] = {"B": B, "T": T, "size": size, "compile": compile_kwargs}
    x = torch.randn(B, 3, size, size, device=device)
    y = torch.randint(0, 10, (B,), device=device)
    for label in ("eager", "compiled"):
        torch._dynamo.reset()
        model = xorsnn.create_model("xoresnet18_cifar", T=T, num_classes=10).to(device).train()
        run = model if label == "eager" else torch.compile(model, **compile_kwargs)
        step = train_step(model, run, x, y, bf16=cuda, mark_step=label != "eager")

        try:
            t0 = time.time()
            for _ in range(3):
                step()
            if cuda:
                torch.cuda.synchronize(device)
            warm = time.time() - t0
            ms = 1000 * statistics.median(timer(step, 1 if quick else 5) for _ in range(1 if quick else 3))
            res[label] = {"ms_per_step": ms, "warmup_s": warm}
        except Exception as exc:  # a failure here is a result: record it and go on
            res[label] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"}
    counters = torch._dynamo.utils.counters
    res["inductor_counters"] = {k: v for k, v in counters.get("inductor", {}).items() if "cudagraph" in k}
    torch._dynamo.reset()
    return res


# -- stage 6: time to accuracy -----------------------------------------------------------------------
def time_to_accuracy(device: torch.device, data_dir: str | None, seconds: float, quick: bool) -> dict[str, Any]:
    from xorsnn.data import load_dataset

    name = "digits" if quick else "cifar10"
    data = load_dataset(name, data_dir) if not quick else load_dataset(name)
    info = data.info
    model = xorsnn.create_model("xoresnet18_cifar" if not quick else "xoresnet8", T=2, num_classes=info.num_classes,
                                in_channels=info.in_channels, zero_init_residual=False).to(device)
    from xorsnn.data.augment import BatchAugment

    aug = BatchAugment(info.mean, info.std, crop_padding=0 if quick else 4, hflip=not quick)
    xs, ys = data.train.images.to(device), data.train.labels.to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4, foreach=True)
    B = 128 if not quick else 64
    g = torch.Generator(device="cpu").manual_seed(0)
    t0, seen, epoch = time.time(), 0, 0
    bf16 = device.type == "cuda"
    while time.time() - t0 < seconds:
        perm = torch.randperm(len(ys), generator=g).to(device)
        for i in range(0, len(ys) - B + 1, B):
            frac = min((time.time() - t0) / seconds, 1.0)
            for group in opt.param_groups:  # cosine over the time budget
                group["lr"] = 0.1 * 0.5 * (1 + torch.cos(torch.tensor(torch.pi * frac)).item())
            idx = perm[i:i + B]
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                loss = F.cross_entropy(model(aug(xs[idx], True)).mean(0).float(), ys[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            seen += B
            if time.time() - t0 >= seconds:
                break
        epoch += 1
    train_s = time.time() - t0
    model.eval()
    correct = 0
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        xt, yt = data.test.images.to(device), data.test.labels.to(device)
        for i in range(0, len(yt), 500):
            correct += int((model(aug(xt[i:i + 500], False)).mean(0).argmax(-1) == yt[i:i + 500]).sum())
    return {"dataset": name, "model": "xoresnet18_cifar" if not quick else "xoresnet8", "train_seconds": train_s,
            "images_seen": seen, "epochs_started": epoch, "test_acc": correct / len(yt),
            "img_per_s": seen / train_s}


# -- report ------------------------------------------------------------------------------------------
def render(report: dict[str, Any]) -> str:
    e = report["env"]
    lines = ["# GPU check", "", f"Device: {e.get('name', e['device'])}; torch {e['torch']}, CUDA {e['cuda']}, "
             f"Triton {e['triton']}, xorsnn {e['xorsnn']}. Command: `{report['command']}`. "
             f"Total {report.get('seconds', 0):.0f} s; stages done: {', '.join(report['done'])}.", ""]
    if "tests" in report:
        lines += [f"GPU-marked tests: exit code {report['tests']['returncode']}: {report['tests']['summary']}", ""]
    if "neurons" in report:
        lines += ["## Neuron backends vs the autograd oracle", "", "| neuron | backend | spikes equal | out err | "
                  "grad err |", "|---|---|---|---:|---:|"]
        lines += [f"| `{r['neuron']}` | {r['backend']} | {r['spikes_equal']} | {r['out_max_err']:.2e} | "
                  f"{r['grad_max_err']:.2e} |" for r in report["neurons"]]
        lines += ["", f"Model checks: `{json.dumps(report['model'])}`", ""]
    if report.get("train_step"):
        lines += ["## Training step", "", "| layout | B | T | precision | model | ms/step | img/s | x ANN | peak MiB |",
                  "|---|---:|---:|---|---|---:|---:|---:|---:|"]
        for r in report["train_step"]:
            peak = "–" if r["peak_mib"] is None else f"{r['peak_mib']:.0f}"
            lines.append(f"| {r['layout']} | {r['B']} | {r['T']} | {r['precision']} | {r['model']} | "
                         f"{r['ms_per_step']:.1f} | {r['img_per_s']:.0f} | {r['x_ann']:.2f} | {peak} |")
        lines.append("")
    if "cuda_graphs" in report:
        lines += ["## CUDA graphs (XOResNet-18, CIFAR layout)", "", f"`{json.dumps(report['cuda_graphs'])}`", ""]
    if "time_to_accuracy" in report:
        t = report["time_to_accuracy"]
        lines += ["## Time to accuracy", "", f"{t['model']} on {t['dataset']}: {100 * t['test_acc']:.2f} % test "
                  f"accuracy after {t['train_seconds']:.0f} s of training ({t['images_seen']} images, "
                  f"{t['img_per_s']:.0f} img/s).", ""]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", help="cuda | cuda:N | cpu (a dry run)")
    p.add_argument("--quick", action="store_true", help="tiny shapes and digits (the CPU dry run)")
    p.add_argument("--data-dir", default=None, help="datasets for the time-to-accuracy stage (CIFAR-10 pickles)")
    p.add_argument("--budget-s", type=float, default=450.0, help="stop starting new work after this many seconds")
    p.add_argument("--tta-seconds", type=float, default=180.0)
    p.add_argument("--out", default=str(RESULTS), help="directory for gpu_check.json / gpu_check.md")
    p.add_argument("--skip-tests", action="store_true")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda but torch.cuda.is_available() is False; use --device cpu --quick for the dry run")
    t_start = time.time()
    deadline = t_start + args.budget_s
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "gpu_check" if device.type == "cuda" else "gpu_check_cpu_dryrun"
    report: dict[str, Any] = {"command": "python " + " ".join([sys.argv[0], *(argv or sys.argv[1:])]),
                              "env": env_info(device), "done": []}
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    def save(stage: str) -> None:
        report["done"].append(stage)
        report["seconds"] = time.time() - t_start
        (out / f"{stem}.json").write_text(json.dumps(report, indent=1))
        (out / f"{stem}.md").write_text(render(report))

    save("env")
    if not args.skip_tests:
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "gpu", "tests"], cwd=ROOT, capture_output=True,
                           text=True, timeout=max(30.0, deadline - time.time()))
        tail = (r.stdout.strip().splitlines() or [""])[-1]
        report["tests"] = {"returncode": r.returncode, "summary": tail}
        save("tests")
    report["neurons"] = check_neurons(device)
    report["model"] = check_model(device, 16 if args.quick else 32)
    save("correctness")
    if args.quick:
        layouts = {"cifar": (2, 2, 16)}
        precisions = ["fp32", "bf16"]
        repeats, steps = 1, 1
    else:
        layouts = {"cifar": (128, 4, 32), "imagenet": (32, 4, 224)}
        precisions = ["fp32", "tf32", "bf16"]
        repeats, steps = 5, 3
    report["train_step"] = train_step_table(device, layouts, precisions, repeats, steps, deadline)
    save("train_step")
    report["cuda_graphs"] = cuda_graphs(device, args.quick, deadline)
    save("cuda_graphs")
    if time.time() + args.tta_seconds < deadline + args.tta_seconds:  # always attempt; the budget is soft
        report["time_to_accuracy"] = time_to_accuracy(device, args.data_dir, 3.0 if args.quick else args.tta_seconds,
                                                      args.quick)
        save("time_to_accuracy")
    print(render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())

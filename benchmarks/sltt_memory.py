"""SLTT vs BPTT: activation memory and time per batch as T grows.

    python benchmarks/sltt_memory.py [--models msc_resnet20 msc_resnet18_cifar] [--batch 8] [--T 2 4 8] [--device cpu]

Writes ``benchmarks/results/sltt_memory.md``. Memory is the peak number of bytes autograd keeps for
backward (``xorsnn.online.ActivationMemoryProbe``: saved tensors, one count per storage, parameters
excluded); on CUDA the peak allocated memory is reported as well. BPTT: one forward over ``T``
steps, cross-entropy on the time-mean, one backward. SLTT: ``xorsnn.online.sltt_step_losses``
(per-step forward, per-step CE / T, per-step backward; carried membranes detached).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import torch
from torch import nn

import xorsnn
from xorsnn.online import ActivationMemoryProbe, sltt_step_losses

CE = nn.functional.cross_entropy


def measure(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, mode: str, device: torch.device
) -> tuple[float, float, float]:
    """``(peak saved MB, peak CUDA MB or nan, seconds)`` of one training step."""
    model.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    t0 = time.perf_counter()
    with ActivationMemoryProbe() as probe:
        if mode == "sltt":
            sltt_step_losses(model, x, y, CE)
        else:
            CE(model(x).mean(0), y).backward()
    if device.type == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    cuda_mb = (torch.cuda.max_memory_allocated() - base) / 2**20 if device.type == "cuda" else float("nan")
    return probe.peak_bytes / 2**20, cuda_mb, dt


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["msc_resnet20", "msc_resnet18_cifar"])
    ap.add_argument("--weights", nargs="+", default=["float", "binary"], choices=["float", "binary"])
    ap.add_argument("--binary-scale", default="magnitude", choices=["none", "alpha", "magnitude"])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--T", type=int, nargs="+", default=[2, 4, 8])
    ap.add_argument("--repeats", type=int, default=2, help="timed repeats per setting (the minimum is reported)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "sltt_memory.md")
    args = ap.parse_args(argv)

    device = torch.device(args.device)
    load_before = os.getloadavg()
    setups = []
    for name, weights in [(m, w) for m in args.models for w in args.weights]:
        torch.manual_seed(0)
        kwargs = {"weights": weights, **({"binary_scale": args.binary_scale} if weights == "binary" else {})}
        model = xorsnn.create_model(name, **kwargs).to(device).train()
        label = f"`{name}`, " + weights + (f" ({args.binary_scale})" if weights == "binary" else "")
        setups += [(label, model, T, mode) for T in args.T for mode in ("bptt", "sltt")]
    x = torch.rand(args.batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (args.batch,), device=device)
    # round-robin over the settings (the first sweep is a warm-up), so that a burst of load from other
    # jobs hits different settings in different sweeps; the minimum time per setting is reported
    results: dict[int, list[tuple[float, float, float]]] = {i: [] for i in range(len(setups))}
    for sweep in range(args.repeats + 1):
        for i, (label, model, T, mode) in enumerate(setups):
            model.T = T
            r = measure(model, x, y, mode, device)
            if sweep > 0:
                results[i].append(r)
            print(f"sweep {sweep} {label:<40} T={T:<3} {mode:<5} saved {r[0]:8.1f} MB  {r[2]:6.2f} s", flush=True)
    rows = []
    for i, (label, _, T, mode) in enumerate(setups):
        saved, cuda_mb = results[i][0][0], results[i][0][1]
        rows.append((label, T, mode, saved, cuda_mb, min(r[2] for r in results[i])))

    command = "python " + " ".join([Path(sys.argv[0]).as_posix(), *(argv if argv is not None else sys.argv[1:])])
    cpu = platform.processor() or platform.machine()
    threads = torch.get_num_threads()
    dev = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({cpu}, {threads} threads)"
    lines = [
        "# SLTT vs BPTT: activation memory and time per batch",
        "",
        f"- command: `{command}`",
        f"- batch {args.batch}, 3x32x32 random input, cross-entropy, train mode",
        f"- device: {dev}; Python {platform.python_version()}, torch {torch.__version__}, {platform.platform()}",
        "- saved MB: peak bytes autograd keeps for backward (`xorsnn.online.ActivationMemoryProbe`, parameters "
        "excluded); CUDA MB: peak allocated above the model (GPU runs only); time: minimum of "
        f"{args.repeats} runs (interleaved sweeps after a warm-up sweep), forward + backward of one batch; "
        "1-minute load average "
        f"{load_before[0]:.1f} before and {os.getloadavg()[0]:.1f} after the run on {os.cpu_count()} cores (other "
        "jobs on a shared machine make the times indicative only; the memory numbers are exact)",
        "",
        "| model, weights | T | mode | saved MB | CUDA MB | s / batch |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for label, T, mode, saved, cuda_mb, secs in rows:
        cuda = "" if cuda_mb != cuda_mb else f"{cuda_mb:.1f}"
        lines.append(f"| {label} | {T} | {mode.upper()} | {saved:.1f} | {cuda} | {secs:.2f} |")
    lines.append("")
    for label in dict.fromkeys(r[0] for r in rows):
        sltt = [r[3] for r in rows if r[0] == label and r[2] == "sltt"]
        bptt = [r[3] for r in rows if r[0] == label and r[2] == "bptt"]
        flat = "flat" if max(sltt) <= 1.05 * min(sltt) else "NOT flat"
        lines.append(
            f"- {label}: SLTT's peak is {flat} in T ({', '.join(f'{v:.1f}' for v in sltt)} MB); BPTT's grows "
            f"({', '.join(f'{v:.1f}' for v in bptt)} MB). At T = {args.T[-1]} SLTT keeps "
            f"{sltt[-1] / bptt[-1]:.0%} of BPTT's activation memory."
        )
    lines += [
        "",
        "Binary weights: the binarised weight tensors `scale * sign(W)` are saved for backward too (non-leaf "
        "tensors), a constant of about one fp32 copy of the weights in both modes.",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Step time of Spikformer with the dot-product vs the a-XNOR attention similarity.

Measures one training step (forward + backward + AdamW update) of ``spikformer_4_384`` at CIFAR size
for ``similarity="dot"`` and ``"axnor"`` (fixed ``a``; learnable per-head ``a``; learnable ``a``
with ``attn_norm="match_dot"`` and ``"center"``), plus the attention product alone (``scale * sim(Q, K) V`` at
Spikformer-4-384's shapes, forward + backward). Configurations are measured round-robin -- one
step of each in turn -- so that load changes on a shared machine hit all of them alike; the
median over the measured steps is reported. On CUDA the steps are timed with CUDA events after
warm-up.

Bar (issue 6): a-XNOR's step time <= 1.05 x the dot product's.

    python benchmarks/attention_similarity.py                    # CPU: B=4, T=4, 8 steps
    python benchmarks/attention_similarity.py --device cuda --batch 64 --steps 30

Writes ``benchmarks/results/attention_similarity_<device>.{json,md}``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

import xorsnn
from xorsnn.ops import axnor_attention

CONFIGS: dict[str, dict[str, Any]] = {
    "dot": {},
    "axnor, fixed a=0.25": {"similarity": "axnor", "a": 0.25, "a_learnable": False},
    "axnor, learnable a per head": {"similarity": "axnor", "a": 0.25, "a_learnable": True, "a_granularity": "head"},
    "axnor, learnable a, match_dot": {"similarity": "axnor", "attn_norm": "match_dot"},
    "axnor, learnable a, center": {"similarity": "axnor", "attn_norm": "center"},
}


class Timer:
    """Wall-clock (CPU) or CUDA-event timing of one callable, in milliseconds."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"

    def __call__(self, fn) -> float:  # noqa: ANN001
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize()
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            return start.elapsed_time(end)
        t0 = time.perf_counter()
        fn()
        return (time.perf_counter() - t0) * 1e3


def round_robin(steps: dict[str, Any], timer: Timer, warmup: int, repeats: int) -> dict[str, list[float]]:
    """Time each step ``repeats`` times, one of each per round; the starting config rotates every round."""
    for _ in range(warmup):
        for fn in steps.values():
            timer(fn)
    names = list(steps)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names):] + names[: r % len(names)]:
            times[name].append(timer(steps[name]))
    return times


def model_steps(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    steps = {}
    x = torch.rand(args.batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (args.batch,), device=device)
    for name, kw in CONFIGS.items():
        torch.manual_seed(0)
        model = xorsnn.create_model(args.model, T=args.T, num_classes=10, **kw).to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.06)

        def step(model: nn.Module = model, opt: torch.optim.Optimizer = opt) -> None:
            opt.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(model(x).mean(0), y)
            loss.backward()
            opt.step()

        steps[name] = step
    return steps


def kernel_steps(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """The attention product alone at Spikformer-4-384's shapes: [T, B, h=12, N=64, d=32]."""
    shape = (args.T, args.batch, 12, 64, 32)
    q, k, v = ((torch.rand(shape, device=device) < 0.15).float().requires_grad_() for _ in range(3))
    rho = torch.zeros(12, 1, 1, device=device, requires_grad=True)

    def dot() -> None:
        (q @ (k.transpose(-2, -1) @ v) * 0.125).sum().backward()

    def ax_fixed() -> None:
        axnor_attention(q, k, v, 0.25, 0.125, order="kv_first").sum().backward()

    def ax_learn() -> None:
        axnor_attention(q, k, v, torch.sigmoid(rho), 0.125, order="kv_first").sum().backward()

    return {"dot": dot, "axnor, fixed a=0.25": ax_fixed, "axnor, learnable a per head": ax_learn}


def summarise(times: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    base, base_min = statistics.median(times["dot"]), min(times["dot"])
    return {
        name: {
            "median_ms": statistics.median(t),
            "min_ms": min(t),
            "max_ms": max(t),
            "ratio_to_dot": statistics.median(t) / base,
            "min_ratio_to_dot": min(t) / base_min,
            "n": len(t),
        }
        for name, t in times.items()
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="spikformer_4_384")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--T", type=int, default=4)
    p.add_argument("--steps", type=int, default=8, help="measured steps per configuration")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--kernel-steps", type=int, default=30)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)

    kernel = summarise(round_robin(kernel_steps(args, device), Timer(device), 3, args.kernel_steps))
    model = summarise(round_robin(model_steps(args, device), Timer(device), args.warmup, args.steps))

    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    result = {
        "benchmark": "attention_similarity",
        "command": "python " + " ".join([sys.argv[0]] + (argv if argv is not None else sys.argv[1:])),
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "device": args.device,
        "device_name": device_name,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_after": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "xorsnn": xorsnn.__version__,
        "model": args.model,
        "batch": args.batch,
        "T": args.T,
        "train_step": model,
        "attention_only": kernel,
        "bar": "a-XNOR step time <= 1.05 x dot",
        "bar_met": all(v["ratio_to_dot"] <= 1.05 for k, v in model.items() if k != "dot"),
        "note": "the attention product is a small part of the step; the attention-only table isolates its cost",
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"attention_similarity_{args.device.split(':')[0]}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))
    return result


def markdown(r: dict[str, Any]) -> str:
    lines = [
        f"# Attention similarity: step time of {r['model']} (dot vs a-XNOR)",
        "",
        f"- command: `{r['command']}`",
        f"- date: {r['date']}; device: {r['device']} ({r['device_name']}); CPU cores: {r['cpu_count']}, "
        f"torch threads: {r['torch_threads']}; load average after the run: {r['load_average_after']}",
        f"- torch {r['torch']}, Python {r['python']}, xorsnn {r['xorsnn']}",
        f"- batch {r['batch']}, T = {r['T']}, CIFAR size (32x32, 64 tokens); configurations measured round-robin, "
        "median of the measured steps",
        "",
        "## Training step (forward + backward + AdamW)",
        "",
        "| similarity | median ms | min ms | max ms | ratio to dot (median) | ratio to dot (min) | steps |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, v in r["train_step"].items():
        lines.append(f"| {name} | {v['median_ms']:.1f} | {v['min_ms']:.1f} | {v['max_ms']:.1f} | "
                     f"{v['ratio_to_dot']:.3f} | {v['min_ratio_to_dot']:.3f} | {v['n']} |")
    lines += [
        "",
        f"Bar: {r['bar']} -- **{'met' if r['bar_met'] else 'NOT met'}**.",
        "",
        "## Attention product alone (`scale * sim(Q, K) V`, KᵀV first, forward + backward, [T, B, 12, 64, 32])",
        "",
        "| similarity | median ms | min ms | max ms | ratio to dot (median) | ratio to dot (min) | repeats |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, v in r["attention_only"].items():
        lines.append(f"| {name} | {v['median_ms']:.3f} | {v['min_ms']:.3f} | {v['max_ms']:.3f} | "
                     f"{v['ratio_to_dot']:.3f} | {v['min_ratio_to_dot']:.3f} | {v['n']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

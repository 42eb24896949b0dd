"""Benchmark of the bit-packed CPU engine against PyTorch fp32 (``xorsnn bench-infer``,
``benchmarks/bench_infer.py``).

The network is a binary-weight (``sign(W)``, no scale), binary-spike Spiking ResNet on 32x32 RGB
input: ``resnet18`` = CIFAR ResNet-18 layout (3x3 stem, [2, 2, 2, 2] basic blocks, widths
64/128/256/512, 11.2M parameters), ``resnet20`` = widths 16/32/64, [3, 3, 3] (quick). BatchNorm
running statistics are calibrated on the benchmark input (so neurons fire at realistic rates).
Before timing, the packed model's logits are checked to be bitwise equal to the float model's.
"""

from __future__ import annotations

import platform
import statistics
import time
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["BenchRow", "bench_model", "bench_infer", "format_results", "machine_info"]


@dataclass
class BenchRow:
    arch: str
    batch: int
    T: int
    threads: int
    torch_ms: float
    packed_ms: float
    equal: bool
    spike_rate: float

    @property
    def speedup(self) -> float:
        return self.torch_ms / self.packed_ms

    def throughput(self, ms: float) -> float:
        return self.batch / (ms / 1e3)


def bench_model(arch: str = "resnet18", T: int = 4, seed: int = 0) -> nn.Module:
    """The benchmark network (eval mode, BN calibrated on random images)."""
    from ..models import SpikingResNet

    torch.manual_seed(seed)
    if arch == "resnet18":
        m = SpikingResNet("spiking", [2, 2, 2, 2], stem="cifar", num_classes=10, T=T, weights="binary")
    elif arch == "resnet20":
        m = SpikingResNet("spiking", [3, 3, 3], widths=[16, 32, 64], stem="cifar", num_classes=10, T=T,
                          weights="binary")
    else:
        raise ValueError(f"arch must be 'resnet18' or 'resnet20', got {arch!r}")
    calibrate_bn(m, torch.randn(32, 3, 32, 32))
    return m.eval()


@torch.no_grad()
def calibrate_bn(model: nn.Module, x: torch.Tensor, bias: float = 0.4) -> None:
    """Set every BN's running statistics to those of ``x`` (one train-mode pass, cumulative average),
    with ``gamma = 1`` and ``beta = bias`` so that normalised currents make neurons fire."""
    for mod in model.modules():
        if isinstance(mod, nn.modules.batchnorm._BatchNorm):
            mod.reset_running_stats()
            mod.momentum = None
            nn.init.ones_(mod.weight)
            nn.init.constant_(mod.bias, bias)
    model.train()
    model(x)
    model.eval()


def _spike_rate(model: nn.Module, x: torch.Tensor) -> float:
    from ..neurons import SpikingNeuron

    rates: list[float] = []
    hooks = [m.register_forward_hook(lambda m, a, o: rates.append(float(o.mean())))
             for m in model.modules() if isinstance(m, SpikingNeuron)]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return sum(rates) / max(1, len(rates))


def _time(fn, x: torch.Tensor, repeats: int) -> float:  # type: ignore[no-untyped-def]
    with torch.no_grad():
        fn(x)  # warm-up (and numba compilation)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn(x)
            times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def bench_infer(batches: list[int] | tuple[int, ...] = (1, 64), T: int = 4, repeats: int = 5,
                threads: int | None = None, arch: str = "resnet18") -> list[BenchRow]:
    """Median latency of ``model(x)`` (PyTorch fp32) and ``pack_model(model)(x)`` per batch size."""
    from .packed import pack_model

    if threads is not None:
        torch.set_num_threads(int(threads))
    model = bench_model(arch, T)
    packed = pack_model(model)
    rows = []
    for b in batches:
        x = torch.randn(int(b), 3, 32, 32, generator=torch.Generator().manual_seed(b))
        with torch.no_grad():
            equal = torch.equal(model(x), packed(x))
        rows.append(BenchRow(arch, int(b), T, torch.get_num_threads(), _time(model, x, repeats),
                             _time(packed, x, repeats), equal, _spike_rate(model, x)))
    return rows


def machine_info() -> str:
    import numpy

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        import numba

        nb = numba.__version__
    except ImportError:  # pragma: no cover
        nb = "absent"
    return (f"{cpu}; Python {platform.python_version()}, torch {torch.__version__}, numpy {numpy.__version__}, "
            f"numba {nb}")


def format_results(rows: list[BenchRow]) -> str:
    lines = [
        "| network | batch | T | threads | torch fp32 (ms) | packed (ms) | torch img/s | packed img/s | speedup | "
        "logits equal | mean spike rate |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in rows:
        lines.append(f"| {r.arch} | {r.batch} | {r.T} | {r.threads} | {r.torch_ms:.1f} | {r.packed_ms:.1f} | "
                     f"{r.throughput(r.torch_ms):.1f} | {r.throughput(r.packed_ms):.1f} | {r.speedup:.2f}x | "
                     f"{r.equal} | {r.spike_rate:.3f} |")
    return "\n".join(lines)

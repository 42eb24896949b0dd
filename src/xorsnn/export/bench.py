"""Benchmark of the bit-packed CPU engine against PyTorch fp32 (``xorsnn bench-infer``,
``benchmarks/bench_infer.py``).

The network is a binary-weight (``sign(W)``, no scale), binary-spike residual network on 32x32 RGB
input: ``resnet18`` = Spiking ResNet, CIFAR ResNet-18 layout (3x3 stem, [2, 2, 2, 2] basic blocks,
widths 64/128/256/512, 11.2M parameters), ``xoresnet18`` = the same layout with XOResNet blocks
(OR shortcuts, XOR meta-residuals), ``msc_resnet18`` = the SEI-BWSNN multi-shortcut form
(pre-activation units, real-valued residual stream, full-precision projection shortcuts),
``resnet20`` = widths 16/32/64, [3, 3, 3] (quick). BatchNorm
running statistics are calibrated on the benchmark input (so neurons fire at realistic rates).
Before timing, the packed model's logits are checked to be bitwise equal to the float model's.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from .._checks import check_choice

__all__ = ["BENCH_ARCHS", "BenchRow", "bench_model", "bench_infer", "bench_trained", "bench_rows", "format_results",
           "machine_info"]

BENCH_ARCHS: dict[str, tuple[str, list[int], list[int]]] = {
    "resnet18": ("spiking", [2, 2, 2, 2], [64, 128, 256, 512]),
    "xoresnet18": ("xor", [2, 2, 2, 2], [64, 128, 256, 512]),
    "msc_resnet18": ("msc", [2, 2, 2, 2], [64, 128, 256, 512]),
    "resnet20": ("spiking", [3, 3, 3], [16, 32, 64]),
}
"""Benchmark networks: name -> (family, blocks per stage, widths), all with the CIFAR 3x3 stem."""


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
    layerwise_ms: float = float("nan")  # packed layer by layer (``fuse_blocks=False``), for comparison

    @property
    def speedup(self) -> float:
        return self.torch_ms / self.packed_ms

    def throughput(self, ms: float) -> float:
        return self.batch / (ms / 1e3)


def bench_model(arch: str = "resnet18", T: int = 4, seed: int = 0) -> nn.Module:
    """The benchmark network (eval mode, BN calibrated on random images)."""
    from ..models import SpikingResNet

    torch.manual_seed(seed)
    check_choice("arch", arch, tuple(BENCH_ARCHS))
    family, layers, widths = BENCH_ARCHS[arch]
    m = SpikingResNet(family, layers, widths=widths, stem="cifar", num_classes=10, T=T, weights="binary")
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
                threads: int | None = None, arch: str = "resnet18", with_layerwise: bool = True,
                progress: Callable[[str], None] | None = None) -> list[BenchRow]:
    """Median latency of ``model(x)`` (PyTorch fp32) and ``pack_model(model)(x)`` per batch size (and,
    with ``with_layerwise``, of the layer-by-layer packed model ``pack_model(model, fuse_blocks=False)``)
    for the benchmark network ``arch`` on random CIFAR-sized images."""
    def images(b: int) -> torch.Tensor:
        return torch.randn(int(b), 3, 32, 32, generator=torch.Generator().manual_seed(b))

    return _with_threads(threads, lambda: bench_rows(bench_model(arch, T), arch, batches, images, repeats,
                                                     with_layerwise, progress))


def bench_trained(model: nn.Module, name: str, images: Callable[[int], torch.Tensor],
                  batches: list[int] | tuple[int, ...] = (1, 64), repeats: int = 5, threads: int | None = None,
                  with_layerwise: bool = True, progress: Callable[[str], None] | None = None) -> list[BenchRow]:
    """:func:`bench_infer` for a trained model (``xorsnn bench-infer RUN``): ``images(batch)`` gives the
    input ``[B, C, H, W]``. Scaled binary weights are re-parameterised to ±1 first; a float-weight model
    is refused (:func:`~xorsnn.export.packed.packable_form`)."""
    from .packed import packable_form

    model, _ = packable_form(model.eval())
    return _with_threads(threads, lambda: bench_rows(model, name, batches, images, repeats, with_layerwise,
                                                     progress))


def _with_threads(threads: int | None, run: Callable[[], list[BenchRow]]) -> list[BenchRow]:
    if threads is not None:
        threads, cpus = int(threads), os.cpu_count() or 1
        if not 1 <= threads <= cpus:
            raise ValueError(f"--threads must be in [1, {cpus}] (this machine's CPU count), got {threads}")
    previous = torch.get_num_threads()
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        return run()
    finally:
        torch.set_num_threads(previous)  # no global side effect


def bench_rows(model: nn.Module, name: str, batches: list[int] | tuple[int, ...],
               images: Callable[[int], torch.Tensor], repeats: int, with_layerwise: bool = True,
               progress: Callable[[str], None] | None = None) -> list[BenchRow]:
    """Pack ``model``, check its logits equal the float model's on ``images(b)``, then time both per batch."""
    from .packed import pack_model

    say = progress or (lambda msg: None)
    say(f"{name}: packing (the numba kernels compile on their first call, ~30 s)")
    packed = pack_model(model)
    layerwise = pack_model(model, fuse_blocks=False) if with_layerwise else None
    T = int(getattr(model, "T", 1))
    rows = []
    for b in batches:
        x = images(int(b))
        say(f"{name}: batch {b}: checking packed == torch, then timing {repeats} repeats")
        with torch.no_grad():
            ref = model(x)
            equal = torch.equal(ref, packed(x)) and (layerwise is None or torch.equal(ref, layerwise(x)))
        times, used = [], []  # the thread count in effect while timing is reported (as it was, not as asked)
        for fn in (model, packed, layerwise):
            times.append(_time(fn, x, repeats) if fn is not None else float("nan"))
            used.append(torch.get_num_threads())
        rows.append(BenchRow(name, int(b), T, min(used), times[0], times[1], equal, _spike_rate(model, x), times[2]))
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
        "layer-wise packed (ms) | logits equal | mean spike rate |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in rows:
        lw = "–" if math.isnan(r.layerwise_ms) else f"{r.layerwise_ms:.1f}"
        lines.append(f"| {r.arch} | {r.batch} | {r.T} | {r.threads} | {r.torch_ms:.1f} | {r.packed_ms:.1f} | "
                     f"{r.throughput(r.torch_ms):.1f} | {r.throughput(r.packed_ms):.1f} | {r.speedup:.2f}x | "
                     f"{lw} | {r.equal} | {r.spike_rate:.3f} |")
    return "\n".join(lines)

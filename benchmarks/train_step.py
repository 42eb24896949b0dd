"""Training-step throughput of xorsnn's spiking ResNet-20s (torch vs fused neuron backend) beside the ANN ceiling.

One process, one SGD step per timing sample, configurations interleaved (repeat r runs every
configuration once before repeat r+1) and summarised by the median, so that load from other
processes hits all of them alike. Rows:

* ``ann`` -- the ANN ceiling: the same ResNet-20 layout with ReLU
  (``ANNResNet("spiking", layers=[3,3,3], widths=[16,32,64], stem="cifar")``) on a batch of ``B*T`` images;
* ``sew_resnet20`` / ``xoresnet20`` with every neuron on ``backend="torch"`` (torch ops, hand-written
  BPTT) and on the fused CPU kernel (``backend="cpu"``; what ``"auto"`` picks when numba is installed;
  XOResNet's OR merges then run inside the neuron kernels). The poly OR / XOR of ``xorsnn.ops`` run on
  their own numba kernel in both rows (it is chosen by the tensors, not by the neuron backend);
* with ``--merge-ablation``: ``xoresnet20`` on the fused neurons with its OR / XOR merges as separate
  torch ops (what the fused path was before the merges moved into the kernels);
* ``spikingjelly_sew20`` -- SpikingJelly 2.0's multi-step ``LIFNode`` (tau=2, ATan, detach_reset,
  its ``torch`` backend) in an equivalent SEW-ResNet-20 (ADD), when ``spikingjelly`` is importable
  (``pip install --no-deps spikingjelly==2.0.0 loguru``).

``img/s`` is ``B / step time`` (an SNN image is ``T`` steps; the ANN's ``B*T`` batch counts as ``B``),
so ``x ANN`` = ANN step time / step time is the fraction of the ANN ceiling reached.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/train_step.py --device cpu --threads 1

Writes ``benchmarks/results/train_step_<device>.md`` (machine, versions, threads, command, table).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from xorsnn.models import create_model
from xorsnn.models.ann import ANNResNet
from xorsnn.neurons import SpikingNeuron, fused_cpu_available
from xorsnn.ops import logic


@dataclass
class Config:
    """One row: a model, its input ``x`` and labels ``y``, and how its logits reduce to ``[B', K]``."""

    name: str
    model: nn.Module
    x: torch.Tensor
    y: torch.Tensor
    reduce: Callable[[torch.Tensor], torch.Tensor]
    opt: torch.optim.Optimizer | None = None
    unfused_merges: bool = False  # the ablation row: OR / XOR merges as torch ops after the neuron kernels

    def step(self) -> None:
        """One SGD training step."""
        assert self.opt is not None
        threshold = logic.FUSED_LOGIC_MIN_NUMEL
        if self.unfused_merges:
            logic.FUSED_LOGIC_MIN_NUMEL = 1 << 62  # the poly OR / XOR kernel off (a size nothing reaches)
        try:
            self.opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(self.reduce(self.model(self.x)), self.y)
            loss.backward()
            self.opt.step()
        finally:
            logic.FUSED_LOGIC_MIN_NUMEL = threshold


def _unfuse_merges(model: nn.Module) -> nn.Module:
    """Observe every neuron with a no-op forward hook: an observed neuron runs on its own, so the OR after it
    is a separate op (``SpikingNeuron.fire_or``); with :attr:`Config.unfused_merges` the OR / XOR are torch ops."""
    for m in model.modules():
        if isinstance(m, SpikingNeuron):
            m.register_forward_hook(lambda *_: None)
    return model


def _set_backend(model: nn.Module, backend: str) -> nn.Module:
    for m in model.modules():
        if isinstance(m, SpikingNeuron):
            m.backend = backend
    return model


def _xorsnn(arch: str, backend: str, T: int, size: int) -> nn.Module:
    model = create_model(arch, in_channels=1, num_classes=10, T=T, input_size=size)
    return _set_backend(model, backend)


def _spikingjelly_sew20(T: int) -> nn.Module:
    """SEW-ResNet-20 (ADD) from SpikingJelly 2.0 layers: multi-step LIF tau=2, ATan, detach_reset."""
    from spikingjelly.activation_based import functional, layer, neuron, surrogate

    def lif() -> nn.Module:
        return neuron.LIFNode(tau=2.0, surrogate_function=surrogate.ATan(), detach_reset=True, step_mode="m")

    def conv_bn(cin: int, cout: int, k: int, stride: int) -> list[nn.Module]:
        return [layer.Conv2d(cin, cout, k, stride, k // 2, bias=False), layer.BatchNorm2d(cout)]

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.body = nn.Sequential(*conv_bn(cin, cout, 3, stride), lif(), *conv_bn(cout, cout, 3, 1), lif())
            self.down = (nn.Sequential(*conv_bn(cin, cout, 1, stride), lif())
                         if stride != 1 or cin != cout else None)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.body(x) + (x if self.down is None else self.down(x))

    class SEW20(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            blocks: list[nn.Module] = [*conv_bn(1, 16, 3, 1), lif()]
            cin = 16
            for i, w in enumerate((16, 32, 64)):
                for j in range(3):
                    blocks.append(Block(cin, w, 2 if (i > 0 and j == 0) else 1))
                    cin = w
            self.features = nn.Sequential(*blocks)
            self.pool = layer.AdaptiveAvgPool2d(1)
            self.fc = layer.Linear(64, 10)

        def forward(self, img: torch.Tensor) -> torch.Tensor:
            x = img.unsqueeze(0).repeat(T, 1, 1, 1, 1)  # [T, B, C, H, W]
            x = self.pool(self.features(x)).flatten(2)
            out = self.fc(x)
            functional.reset_net(self)
            return out

    net = SEW20()
    functional.set_step_mode(net, "m")
    return net


def build_configs(T: int, B: int, size: int, with_sj: bool, merge_ablation: bool = False) -> list[Config]:
    """All rows of the table, each with its own fixed batch and SGD optimiser."""
    g = torch.Generator().manual_seed(0)
    img = torch.randn(B, 1, size, size, generator=g)
    y = torch.randint(0, 10, (B,), generator=g)
    mean_t: Callable[[torch.Tensor], torch.Tensor] = lambda o: o.mean(0)  # noqa: E731
    ann = ANNResNet("spiking", layers=[3, 3, 3], widths=[16, 32, 64], stem="cifar", in_channels=1, num_classes=10)
    configs = [Config("ann (ReLU, B*T images)", ann, img.repeat(T, 1, 1, 1), y.repeat(T), lambda o: o[0])]
    backends = [("torch", "torch")] + ([("fused cpu", "cpu")] if fused_cpu_available() else [])
    for arch in ("sew_resnet20", "xoresnet20"):
        for label, backend in backends:
            configs.append(Config(f"xorsnn {arch}, {label}", _xorsnn(arch, backend, T, size), img, y, mean_t))
    if merge_ablation and fused_cpu_available():
        model = _unfuse_merges(_xorsnn("xoresnet20", "cpu", T, size))
        configs.append(Config("xorsnn xoresnet20, fused cpu, merges unfused (ablation)", model, img, y, mean_t,
                              unfused_merges=True))
    if with_sj:
        configs.append(Config("spikingjelly 2.0 sew20 (torch)", _spikingjelly_sew20(T), img, y, mean_t))
    for c in configs:
        c.model.train()
        c.opt = torch.optim.SGD(c.model.parameters(), lr=0.01, momentum=0.9)
    return configs


def measure(configs: list[Config], repeats: int, steps: int, warmup: int) -> dict[str, list[float]]:
    """Seconds per step of every configuration, ``repeats`` interleaved samples of ``steps`` steps each."""
    for c in configs:
        for _ in range(warmup):
            c.step()
    times: dict[str, list[float]] = {c.name: [] for c in configs}
    for _ in range(repeats):
        for c in configs:
            t0 = time.perf_counter()
            for _ in range(steps):
                c.step()
            times[c.name].append((time.perf_counter() - t0) / steps)
    return times


def _versions() -> str:
    parts = [f"Python {platform.python_version()}", f"torch {torch.__version__}"]
    for dist in ("numpy", "numba", "spikingjelly"):
        try:
            parts.append(f"{dist} {importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            parts.append(f"{dist} absent")
    return ", ".join(parts)


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def format_table(times: dict[str, list[float]], B: int) -> str:
    """Markdown table: median ms/step, img/s, fraction of the ANN ceiling, spread."""
    med = {k: statistics.median(v) for k, v in times.items()}
    ann = next(v for k, v in med.items() if k.startswith("ann"))
    sj = next((v for k, v in med.items() if k.startswith("spikingjelly")), None)
    lines = ["| configuration | ms/step (median) | min-max ms | img/s | x ANN ceiling | x SpikingJelly |",
             "|---|---:|---:|---:|---:|---:|"]
    for k, v in med.items():
        rel_sj = "–" if sj is None else f"{sj / v:.2f}x"
        lines.append(f"| {k} | {v * 1e3:.1f} | {min(times[k]) * 1e3:.1f}-{max(times[k]) * 1e3:.1f} | "
                     f"{B / v:.1f} | {ann / v:.2f}x | {rel_sj} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=("cpu",), default="cpu", help="only the CPU table exists so far")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--T", type=int, default=2)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--size", type=int, default=28)
    p.add_argument("--repeats", type=int, default=7, help="interleaved samples per configuration")
    p.add_argument("--steps", type=int, default=3, help="training steps per sample")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--no-spikingjelly", action="store_true")
    p.add_argument("--merge-ablation", action="store_true",
                   help="add xoresnet20 on the fused neurons with its OR / XOR merges as separate torch ops")
    p.add_argument("--note", default="", help="free text written under the table")
    p.add_argument("--out", default=None, help="default: benchmarks/results/train_step_<device>.md")
    args = p.parse_args()
    if args.threads < 1:
        raise SystemExit("--threads must be >= 1")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    try:
        import spikingjelly  # noqa: F401

        with_sj = not args.no_spikingjelly
    except ImportError:
        with_sj = False
    configs = build_configs(args.T, args.batch, args.size, with_sj, args.merge_ablation)
    times = measure(configs, args.repeats, args.steps, args.warmup)
    table = format_table(times, args.batch)
    print(table)
    env = " ".join(f"{k}={os.environ[k]}" for k in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS") if k in os.environ)
    text = (
        f"# Training step on the CPU: xorsnn ResNet-20s (torch vs fused neurons), ANN ceiling, SpikingJelly\n\n"
        f"Machine: {_cpu_name()}, {os.cpu_count()} logical CPUs; {_versions()}\n\n"
        f"Threads: torch.set_num_threads({args.threads}) (numba kernels use the same count).\n\n"
        f"Workload: T={args.T}, B={args.batch}, 1x{args.size}x{args.size} input, 10 classes, SGD(momentum 0.9) "
        f"step incl. zero_grad/forward/CE loss/backward; {args.warmup} warm-up steps, then {args.repeats} "
        f"interleaved samples x {args.steps} steps per configuration, median.\n\n"
        f"Command: `{env + ' ' if env else ''}python benchmarks/train_step.py {shlex.join(sys.argv[1:])}`\n\n"
        f"{table}\n"
        + (f"\n{args.note}\n" if args.note else "")
    )
    out = Path(args.out) if args.out else Path(__file__).parent / "results" / f"train_step_{args.device}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()

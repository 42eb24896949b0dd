"""Plots of an analysis report (PNG). Needs matplotlib: ``pip install "xorsnn[plot]"``.

matplotlib is imported lazily, inside each function, with the non-interactive ``Agg`` backend.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .report import Report

__all__ = ["plot_firing_rates", "plot_raster", "plot_grad_norms", "raster_title", "save_plots"]


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError('plots need matplotlib: pip install "xorsnn[plot]"') from exc
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


_KIND_COLORS = {"binary": "tab:blue", "graded": "tab:orange", "real": "tab:red"}
_LABEL_SIZE = 8


def _bar_panel(ax: Any, items: list[Any], colors: list[str], ylabel: str, title: str) -> None:
    """Bar chart of ``item.rate`` against ``item.name``."""
    values = [i.rate for i in items]
    ax.bar(range(len(values)), values, color=colors)
    ax.set_xticks(range(len(values)))
    ax.set_xticklabels([i.name for i in items], rotation=90, fontsize=_LABEL_SIZE)
    ax.set_xlim(-0.6, len(values) - 0.4)
    ax.set_ylabel(ylabel, fontsize=_LABEL_SIZE + 1)
    ax.set_title(title, fontsize=_LABEL_SIZE + 2)
    ax.set_ylim(0, max(max(values) * 1.15, 1e-3))
    ax.grid(axis="y", alpha=0.3)


def plot_firing_rates(report: Report, path: str | Path) -> Path:
    """Firing rates of the neuron layers, and the input rates of the synaptic layers.

    Panels: (1) each spiking-neuron layer's firing rate (spikes per neuron and step); (2) the
    non-zero input rate ``fr_l`` of the synaptic layers whose input is binary spikes; (3) the same
    for layers on graded or real-valued input (first layer, SEW-ADD sums, real spikes), on their own
    axis so that they do not squash the binary layers.
    """
    plt = _pyplot()
    rows = list(report.ops)
    if not rows and not report.neurons:
        raise ValueError("the report has no neuron or synaptic layers to plot")
    binary = [r for r in rows if r.kind == "binary"]
    other = [r for r in rows if r.kind != "binary"]
    neuron_colors = ["tab:green" if n.kind == "binary" else "tab:red" for n in report.neurons]
    input_rate = "non-zero input rate fr_l"
    panels = [p for p in (  # (items, colors, ylabel, title)
        (report.neurons, neuron_colors, "firing rate (spikes / neuron / step)", "neuron layers: firing rate"),
        (binary, [_KIND_COLORS[r.kind] for r in binary], input_rate, "synaptic layers, binary-spike input"),
        (other, [_KIND_COLORS[r.kind] for r in other], input_rate, "graded/real input"),
    ) if p[0]]
    widths = [max(len(p[0]), 3) for p in panels]
    fig, axes = plt.subplots(1, len(panels), figsize=(max(7.0, 0.32 * sum(widths) + 2.0), 4.6),
                             gridspec_kw={"width_ratios": widths}, squeeze=False)
    for ax, panel in zip(axes[0], panels, strict=True):
        _bar_panel(ax, *panel)
    kinds = [k for k in _KIND_COLORS if any(r.kind == k for r in other)]
    if kinds:
        handles = [plt.Rectangle((0, 0), 1, 1, color=_KIND_COLORS[k]) for k in kinds]
        fig.axes[-1].legend(handles, kinds, title="input kind", fontsize=_LABEL_SIZE)
    fig.suptitle(f"{report.model}: T={report.T}, {report.samples} test samples", fontsize=_LABEL_SIZE + 3)
    fig.tight_layout()
    return _save(fig, plt, path)


def raster_title(info: dict[str, Any] | None, layer: str | None) -> str:
    """What a raster shows: layer, sample, channel (of how many), neurons shown of the total, T."""
    if not info:
        return f"spike raster: {layer}"
    what = f"{info['layer']} ({info.get('where', 'output')}), sample {info['sample']}"
    if info.get("channel") is not None:
        hw = "x".join(str(v) for v in info["shape"][1:])
        what += f", channel {info['channel']} of {info['channels']} ({hw} positions)"
    shown = info["neurons"]
    total = info["neurons_total"]
    count = f"{shown} neurons" if shown == total else f"first {shown} of {total} neurons"
    return f"{what}\n{count}, T={info['T']}, rate {info['rate']:.3f}"


def plot_raster(raster: torch.Tensor, path: str | Path, *, title: str = "spike raster") -> Path:
    """Raster plot of a ``[T, N]`` tensor (one mark per non-zero entry; time steps are rows)."""
    plt = _pyplot()
    if not isinstance(raster, torch.Tensor) or raster.dim() != 2:
        raise ValueError(f"raster must be a [T, N] tensor, got {getattr(raster, 'shape', type(raster).__name__)}")
    t, n = torch.nonzero(raster != 0, as_tuple=True)
    steps = raster.shape[0]
    fig, ax = plt.subplots(figsize=(8.0, 1.2 + 0.45 * max(steps, 2)))
    ax.scatter(n.numpy(), t.numpy(), s=60, marker="|", color="black", linewidths=0.8)
    ax.set_xlim(-0.5, raster.shape[1] - 0.5)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_ylim(steps - 0.5, -0.5)
    ax.set_yticks(range(steps))
    ax.set_xlabel("neuron (flattened position)")
    ax.set_ylabel("time step")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, plt, path)


def plot_grad_norms(report: Report, path: str | Path) -> Path:
    """Weight-gradient norm of each residual block, input to output, against the block names (log scale)."""
    plt = _pyplot()
    if not report.gradients:
        raise ValueError("the report has no gradient statistics (analyze with labelled batches)")
    names = [g.name for g in report.gradients]
    norms = [g.grad_norm for g in report.gradients]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.4 * len(norms) + 2.0), 4.4))
    ax.plot(range(len(norms)), norms, marker="o", ms=4)
    if all(v > 0 for v in norms):
        ax.set_yscale("log")
    ax.set_xticks(range(len(norms)))
    ax.set_xticklabels(names, rotation=90, fontsize=_LABEL_SIZE)
    ax.set_xlabel("block (input -> output)")
    ax.set_ylabel("weight-gradient norm")
    ratio = report.grad_norm_ratio
    ax.set_title(f"{report.model}\ngradient norm per block; first/last ratio {ratio:.3g}", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, plt, path)


def save_plots(report: Report, directory: str | Path) -> list[Path]:
    """Write every plot the report supports into ``directory``; returns the paths."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    paths = [plot_firing_rates(report, d / "firing_rates.png")]
    if report.raster is not None:
        paths.append(plot_raster(report.raster, d / "raster.png",
                                 title=raster_title(report.raster_info, report.raster_layer)))
    if report.gradients:
        paths.append(plot_grad_norms(report, d / "grad_norms.png"))
    return paths


def _save(fig: Any, plt: Any, path: str | Path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p, dpi=120)
    plt.close(fig)
    return p

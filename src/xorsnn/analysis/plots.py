"""Plots of an analysis report (PNG). Needs matplotlib: ``pip install "xorsnn[plot]"``.

matplotlib is imported lazily, inside each function, with the non-interactive ``Agg`` backend.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .report import Report

__all__ = ["plot_firing_rates", "plot_raster", "plot_grad_norms", "save_plots"]


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError('plots need matplotlib: pip install "xorsnn[plot]"') from exc
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


_KIND_COLORS = {"binary": "tab:blue", "graded": "tab:orange", "real": "tab:red"}


def plot_firing_rates(report: Report, path: str | Path) -> Path:
    """Bar chart of every synaptic layer's input rate ``fr_l``, coloured by input kind."""
    plt = _pyplot()
    rows = list(report.ops)
    if not rows:
        raise ValueError("the report has no synaptic layers to plot")
    fig, ax = plt.subplots(figsize=(max(6.0, 0.25 * len(rows)), 4.0))
    colors = [_KIND_COLORS[r.kind] for r in rows]
    ax.bar(range(len(rows)), [r.rate for r in rows], color=colors)
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([r.name for r in rows], rotation=90, fontsize=6)
    ax.set_ylabel("input non-zero rate fr_l")
    ax.set_title(f"{report.model}: input rates per layer (T={report.T})")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in _KIND_COLORS.values()]
    ax.legend(handles, list(_KIND_COLORS), title="input kind", fontsize=7)
    fig.tight_layout()
    return _save(fig, plt, path)


def plot_raster(raster: torch.Tensor, path: str | Path, *, title: str = "spike raster") -> Path:
    """Raster plot of a ``[T, N]`` tensor (one dot per non-zero entry)."""
    plt = _pyplot()
    if not isinstance(raster, torch.Tensor) or raster.dim() != 2:
        raise ValueError(f"raster must be a [T, N] tensor, got {getattr(raster, 'shape', type(raster).__name__)}")
    t, n = torch.nonzero(raster != 0, as_tuple=True)
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    ax.scatter(n.numpy(), t.numpy(), s=2, marker="|", color="black")
    ax.set_xlim(-0.5, raster.shape[1] - 0.5)
    ax.set_ylim(raster.shape[0] - 0.5, -0.5)
    ax.set_yticks(range(raster.shape[0]))
    ax.set_xlabel("neuron")
    ax.set_ylabel("time step")
    ax.set_title(title)
    fig.tight_layout()
    return _save(fig, plt, path)


def plot_grad_norms(report: Report, path: str | Path) -> Path:
    """Block gradient norm vs depth (log scale)."""
    plt = _pyplot()
    if not report.gradients:
        raise ValueError("the report has no gradient statistics (analyze with labelled batches)")
    norms = [g.grad_norm for g in report.gradients]
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    ax.plot(range(len(norms)), norms, marker="o", ms=3)
    if all(v > 0 for v in norms):
        ax.set_yscale("log")
    ax.set_xlabel("block index (input -> output)")
    ax.set_ylabel("weight-gradient norm")
    ax.set_title(f"{report.model}: gradient norm vs depth")
    fig.tight_layout()
    return _save(fig, plt, path)


def save_plots(report: Report, directory: str | Path) -> list[Path]:
    """Write every plot the report supports into ``directory``; returns the paths."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    paths = [plot_firing_rates(report, d / "firing_rates.png")]
    if report.raster is not None:
        paths.append(plot_raster(report.raster, d / "raster.png", title=f"raster: {report.raster_layer}"))
    if report.gradients:
        paths.append(plot_grad_norms(report, d / "grad_norms.png"))
    return paths


def _save(fig: Any, plt: Any, path: str | Path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p, dpi=120)
    plt.close(fig)
    return p

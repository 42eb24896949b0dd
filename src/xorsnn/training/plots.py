"""Training curves as PNG (matplotlib, an optional dependency imported on use)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["plot_curves"]


def _pyplot():  # type: ignore[no-untyped-def]
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("plots need matplotlib: pip install matplotlib (or pip install 'xorsnn[demo]')") from None
    return plt


def plot_curves(runs: Mapping[str, Sequence[Mapping[str, Any]]], path: str | Path, title: str = "",
                test_images: int | None = None, test_subset: bool = False) -> Path:
    """Test accuracy and training loss per epoch for several runs, side by side.

    Args:
        runs: run label -> metric rows (dicts with ``epoch``, ``test_acc``, ``train_loss``, as in ``metrics.csv``).
        path: output PNG path.
        title: figure title.
        test_images: number of test images behind each accuracy (named in the panel title).
        test_subset: the test accuracy is on a random subset of the test split (said in the title).
    """
    plt = _pyplot()
    fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(11, 4))
    for label, rows in runs.items():
        ep = [int(r["epoch"]) for r in rows]
        ax_acc.plot(ep, [100 * float(r["test_acc"]) for r in rows], marker="o", ms=3, label=label)
        ax_loss.plot(ep, [float(r["train_loss"]) for r in rows], marker="o", ms=3, label=label)
    where = "test subset" if test_subset else "test set"
    acc_title = f"test accuracy ({where}" + (f", {test_images:,} images)" if test_images else ")")
    ax_acc.set(xlabel="epoch", ylabel="test accuracy (%)", title=acc_title)
    ax_loss.set(xlabel="epoch", ylabel="training loss", title="training loss (epoch mean)")
    for ax in (ax_acc, ax_loss):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        ax.xaxis.get_major_locator().set_params(integer=True)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path

"""``xorsnn analyze``: firing rates, op counts, energy, redundancy and gradients of a checkpoint.

::

    xorsnn analyze runs/r19 --dataset cifar10 --data-dir DATA --batches 4 --out runs/r19/analysis \\
                   --raster-layer stages.0.0.sn1

prints the report (raw counts first, then the energy under **both** conventions, per-layer rates and
SOPs, block redundancy, per-block gradient norms) and writes into ``--out``: ``report.md``,
``report.json``, one CSV per table (``layers``, ``neurons``, ``blocks``, ``gradients``, ``energy``)
and the plots ``firing_rates.png``, ``raster.png`` and ``grad_norms.png`` (matplotlib, optional).

The batches are the first ``--batches`` test batches of the dataset (fixed order, the evaluation
normalisation, no augmentation), so two runs of the command give the same numbers.
"""

from __future__ import annotations

import argparse
import json
import time
from itertools import islice
from pathlib import Path
from typing import Any

from ..cli_common import add_checkpoint_arguments

__all__ = ["add_analyze_parser", "run_analyze", "checkpoint_batches", "checkpoint_test_loader"]


def add_analyze_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the ``analyze`` command to the sub-parsers ``sub`` of the ``xorsnn`` parser."""
    p = sub.add_parser(
        "analyze",
        help="firing / SOP / energy / redundancy / gradient report of a checkpoint (+ plots, JSON, CSV)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_checkpoint_arguments(p)
    p.add_argument("--batches", type=int, default=4, help="test batches to analyse (default: 4)")
    p.add_argument("--batch-size", type=int, default=32, help="samples per batch (default: 32)")
    p.add_argument("--T", type=int, default=None, help="override the number of time steps")
    p.add_argument("--convention", default="45nm",
                   help="energy convention of the headline: 45nm (a) or 77fJ (b); both are always printed "
                        "(default: 45nm)")
    p.add_argument("--graded-cost", choices=("mac", "ac"), default="mac",
                   help="how the headline prices graded/real inputs (default: mac)")
    p.add_argument("--raster-layer", default="auto",
                   help="module whose output spikes are drawn as a raster: a module name, 'auto' (the neuron layer "
                        "with the most spikes per sample, firing rate below 1) or 'none'")
    p.add_argument("--raster-sample", type=int, default=0, help="sample of the first batch for the raster")
    p.add_argument("--raster-channel", default="auto",
                   help="channel of a conv layer shown in the raster: an index, 'auto' (the sample's most active "
                        "channel) or 'all' (every channel, flattened)")
    p.add_argument("--raster-max-neurons", type=int, default=1024,
                   help="neurons shown in the raster (default 1024: a 32x32 feature map)")
    p.add_argument("--no-gradients", action="store_true", help="skip the gradient pass")
    p.add_argument("--no-plots", action="store_true", help="do not write PNG plots")
    p.add_argument("--out", default=None, help="output directory (default: <checkpoint folder>/analysis)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--json", action="store_true", help="print the report as JSON instead of markdown")
    p.set_defaults(func=run_analyze)
    return p


def _raster_channel(value: str) -> int | str | None:
    """``--raster-channel``: ``'auto'``, ``'all'`` (``None``) or a non-negative index."""
    if value in ("auto", "all"):
        return None if value == "all" else "auto"
    try:
        channel = int(value)
    except ValueError:
        channel = -1
    if channel < 0:
        raise ValueError(f"--raster-channel must be 'auto', 'all' or a channel index >= 0, got {value!r}")
    return channel


def checkpoint_test_loader(meta: dict[str, Any], *, dataset: str | None, data_dir: str | None, T: int,
                           batch_size: int, test_subset: int | None = None,
                           device: Any = None) -> tuple[str, Any]:
    """``(dataset name, its test loader)`` for the checkpoint described by ``meta``, prepared as for evaluation
    (the run's data directory, image size and padding unless given; batches on ``device``, default CPU)."""
    import torch

    from ..data import ImageArrays, load_dataset
    from ..training import DistContext, TrainConfig, make_loaders

    saved = meta.get("xorsnn_config", {})
    name = dataset or saved.get("dataset")
    if not name:
        raise ValueError("--dataset is required (the checkpoint does not name its dataset)")
    data = load_dataset(name, data_dir or saved.get("data_dir") or TrainConfig().resolved_data_dir(), T=T,
                        image_size=saved.get("image_size"))
    classes = meta.get("model_kwargs", {}).get("num_classes")
    if isinstance(data.train, ImageArrays) and classes is not None and data.info.num_classes != classes:
        raise ValueError(f"the checkpoint was trained for {classes} classes but {name} has {data.info.num_classes}")
    cfg = TrainConfig(dataset=name, batch_size=batch_size, eval_batch_size=batch_size, test_subset=test_subset,
                      seed=0, pad_mode=saved.get("pad_mode", "constant"))
    ctx = DistContext(device=torch.device("cpu") if device is None else device)
    _, test_loader = make_loaders(cfg, data, ctx)
    return name, test_loader


def checkpoint_batches(meta: dict[str, Any], *, dataset: str | None, data_dir: str | None, batches: int,
                       batch_size: int, T: int) -> tuple[str, list[Any]]:
    """``(dataset name, the first batches of its test split)`` prepared as for evaluation."""
    if batches < 1:
        raise ValueError(f"--batches must be >= 1, got {batches}")
    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    name, test_loader = checkpoint_test_loader(meta, dataset=dataset, data_dir=data_dir, T=T, batch_size=batch_size)
    return name, list(islice(test_loader, batches))


def run_analyze(args: argparse.Namespace) -> int:
    """The ``analyze`` command (see the module docstring)."""
    from ..training import build_model_from_checkpoint
    from ..training.distributed import resolve_device
    from .analyze import analyze
    from .energy import get_convention

    headline = get_convention(args.convention).key  # validate before loading anything
    device = resolve_device(args.device)
    model, meta = build_model_from_checkpoint(args.checkpoint, "cpu", which=args.which)
    if args.T is not None:
        if args.T < 1:
            raise ValueError(f"--T must be >= 1, got {args.T}")
        model.T = args.T
    T = int(getattr(model, "T", 1))
    dataset, batches = checkpoint_batches(meta, dataset=args.dataset, data_dir=args.data_dir, batches=args.batches,
                                          batch_size=args.batch_size, T=T)
    raster = None if args.raster_layer == "none" else args.raster_layer
    if raster is not None and not 0 <= args.raster_sample < batches[0][0].shape[0]:
        raise ValueError(f"--raster-sample must be in [0, {batches[0][0].shape[0]}) (a sample of the first batch), "
                         f"got {args.raster_sample}")
    channel = _raster_channel(args.raster_channel)
    t0 = time.perf_counter()
    report = analyze(
        model, batches, T=T if isinstance(getattr(model, "T", None), int) else None, device=device,
        gradients=False if args.no_gradients else "auto", raster_layer=raster, raster_sample=args.raster_sample,
        raster_max_neurons=args.raster_max_neurons, raster_channel=channel, headline=headline,
        headline_graded_cost=args.graded_cost,
    )
    seconds = time.perf_counter() - t0
    out = Path(args.out) if args.out else Path(meta["checkpoint"]) / "analysis"
    paths = report.save(out)
    plot_note = ""
    if not args.no_plots:
        try:
            from .plots import save_plots

            paths += save_plots(report, out)
        except ImportError as exc:
            plot_note = f"(no plots: {exc})"
    info = {"checkpoint": meta["checkpoint"], "model": meta["model"], "epoch": meta.get("epoch"), "dataset": dataset,
            "samples": report.samples, "seconds": seconds, "files": [str(p) for p in paths]}
    (out / "run.json").write_text(json.dumps(info, indent=2))
    if args.json:
        print(json.dumps({**info, "report": report.to_dict()}, indent=2))
    else:
        print(f"{meta['model']} (epoch {meta.get('epoch')}) on {report.samples} {dataset} test images, "
              f"{seconds:.1f}s\n")
        print(report.to_markdown())
        print(f"files in {out}: {', '.join(p.name for p in paths)} {plot_note}".rstrip())
    return 0

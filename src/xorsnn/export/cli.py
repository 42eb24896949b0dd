"""The ``xorsnn export`` and ``xorsnn bench-infer`` commands (registered by :mod:`xorsnn.cli`).

``xorsnn export --format nir CHECKPOINT out.nir``: NIR graph (:func:`xorsnn.export.export_nir`).
``xorsnn export --format reparam CHECKPOINT OUT_DIR`` (or ``--reparam``): the re-parameterised ±1-weight
inference model as ``OUT_DIR/model.safetensors`` + ``OUT_DIR/model.json`` (sidecar: source model,
arguments, full-precision layers, op report), and the op report printed.
``xorsnn bench-infer``: latency / throughput of the bit-packed engine against PyTorch fp32.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..cli_common import check_positive

__all__ = ["add_export_parser", "add_bench_infer_parser"]

_SIZES = {"fashion_mnist": 28, "fashion-mnist": 28, "fmnist": 28, "mnist": 28, "digits": 8}


def _sample_input(model: Any, meta: dict[str, Any], size: int | None, batch: int, seed: int) -> Any:
    import torch

    if size is None:
        if getattr(model, "input_size", None):
            h, w = model.input_size
        else:
            dataset = str(meta.get("xorsnn_config", {}).get("dataset", "")).lower()
            img = meta.get("xorsnn_config", {}).get("image_size")
            h = w = int(img or _SIZES.get(dataset, 32))
    else:
        h = w = int(size)
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, int(getattr(model, "in_channels", 3)), h, w, generator=g)


def _test_images(args: argparse.Namespace, model: Any, meta: dict[str, Any], batch: int) -> tuple[Any, str]:
    """The first ``batch`` test images of ``--dataset`` as ``model`` takes them, and what they are."""
    from ..analysis.cli import checkpoint_batches

    _, batches = checkpoint_batches(meta, dataset=args.dataset, data_dir=args.data_dir, batches=1, batch_size=batch,
                                    T=int(getattr(model, "T", 1)))
    x = batches[0][0]
    return x, f"the first {x.shape[0]} {args.dataset} test images"


def _cmd_export(args: argparse.Namespace) -> int:
    import torch

    from ..training import build_model_from_checkpoint

    fmt = "reparam" if args.reparam else args.format
    if fmt is None:
        raise ValueError("choose the export format: --format nir or --format reparam (same as --reparam)")
    check_positive(("--batch", args.batch), ("--input-size", args.input_size))
    model, meta = build_model_from_checkpoint(args.checkpoint, "cpu", which=args.which)
    model.eval()
    if args.dataset:  # the op report's spike rates from real test images
        x, images = _test_images(args, model, meta, args.batch)
    else:
        x = _sample_input(model, meta, args.input_size, args.batch, args.seed)
        images = f"{args.batch} random N(0,1) images (seed {args.seed}); spike rates of real data differ (--dataset)"
    out = Path(args.out)
    if fmt == "nir":
        from .nir_export import export_nir

        if meta.get("reparameterized"):  # NIR folds BN itself: export the same function from the source weights
            from ..training.checkpoint import load_reparam_source

            model = load_reparam_source(args.checkpoint)
            print("note: a re-parameterised export; the NIR graph is built from its training-form weights "
                  "(source.safetensors, checked equal in function), with BN folded by the NIR exporter")
        graph = export_nir(model, x, out, consumer=args.consumer)
        n_neurons = sum(type(n).__name__ in ("LIF", "IF") for n in graph.nodes.values())
        print(f"wrote {out}: {len(graph.nodes)} NIR nodes ({n_neurons} LIF/IF populations), {len(graph.edges)} edges "
              f"from {meta['model']} (epoch {meta.get('epoch')}); input per step {tuple(x.shape[1:])}; "
              f"for {args.consumer} (dt = {graph.metadata['dt']:g})")
        return 0

    from safetensors.torch import save_file

    from .opcount import op_report
    from .reparam import reparameterize

    inference = reparameterize(model)
    with torch.no_grad():
        ref = model(x)
        got = inference(x)
    report = op_report(inference, x)
    out.mkdir(parents=True, exist_ok=True)
    from ..training.checkpoint import TENSORS_SHA, tensor_digest

    tensors = {k: v.detach().cpu().contiguous() for k, v in inference.state_dict().items()}
    common = {"format": "xorsnn-reparam", "source_checkpoint": meta["checkpoint"], "model": meta["model"],
              "model_kwargs": meta.get("model_kwargs", {}), "epoch": meta.get("epoch")}
    header = {**common, "reparameterized": True, "dataset": meta.get("dataset"),
              "xorsnn_config": meta.get("xorsnn_config"), TENSORS_SHA: tensor_digest(tensors)}
    # JSON-encoded values, as in every xorsnn checkpoint: eval, analyze and export read it like one
    save_file(tensors, str(out / "model.safetensors"), metadata={k: json.dumps(v) for k, v in header.items()})
    # the training-form weights beside it: the folded structure depends on their values, so a loader rebuilds
    # the inference model from them and checks it equals model.safetensors exactly
    source = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(source, str(out / "source.safetensors"), metadata={TENSORS_SHA: json.dumps(tensor_digest(source))})
    sidecar = {
        **common,
        "full_precision_layers": inference.full_precision_layers,
        "max_abs_logit_diff_vs_source": float((ref - got).abs().max()),
        "op_report": {
            "note": f"per sample over T={model.T} steps, on {images}",
            "additions": report.additions,
            "multiplications": report.multiplications,
            "rows": [vars(r) for r in report.rows],
        },
        "rebuild": "xorsnn.training.build_model_from_checkpoint(OUT_DIR) (reparameterize of source.safetensors, "
                   "checked equal to model.safetensors); `xorsnn eval/analyze/export OUT_DIR` take it",
    }
    (out / "model.json").write_text(json.dumps(sidecar, indent=2))
    print(report.to_markdown())
    print(f"\nadditions {report.additions:,.0f}, multiplications {report.multiplications:,.0f} per sample")
    print("full-precision layers: " + (", ".join(f"{k} ({v})" for k, v in inference.full_precision_layers.items())
                                       or "none"))
    print(f"wrote {out / 'model.safetensors'} and {out / 'model.json'} (max |logit diff| vs the source model "
          f"{sidecar['max_abs_logit_diff_vs_source']:.3g})")
    return 0


def add_export_parser(sub: Any) -> None:
    """Register ``xorsnn export`` on the subparsers ``sub``."""
    p = sub.add_parser("export", help="export a checkpoint: NIR graph or re-parameterised ±1-weight model",
                       description="Examples: xorsnn export --format nir RUN out.nir; "
                                   "xorsnn export --reparam RUN out_dir")
    p.add_argument("checkpoint", help="run directory, epoch_NNNN folder or model.safetensors")
    p.add_argument("out", help="output file (nir) or directory (reparam)")
    p.add_argument("--format", choices=("nir", "reparam"), default=None, help="what to write")
    p.add_argument("--reparam", action="store_true", help="same as --format reparam")
    p.add_argument("--consumer", choices=("nir", "snntorch", "spikingjelly", "norse"), default="nir",
                   help="nir: the NIR specification (dt = 1, default); snntorch: a graph snnTorch's import_from_nir "
                        "runs with the same spikes; spikingjelly: the spec graph, refusing what its importer lacks; "
                        "norse: for Norse's from_nir(dt=1e-4); residual networks load with "
                        "xorsnn.export.norse_from_nir (docs/deploy.md)")
    p.add_argument("--which", choices=("BEST", "LAST"), default="BEST", help="checkpoint of a run directory")
    p.add_argument("--input-size", type=int, default=None,
                   help="image height = width used to trace shapes (default: the model's or its dataset's)")
    p.add_argument("--batch", type=int, default=2,
                   help="images used for tracing / the op report (default 2; e.g. 256 with --dataset)")
    p.add_argument("--dataset", default=None,
                   help="count the op report on this dataset's first test images instead of random ones")
    p.add_argument("--data-dir", default=None, help="dataset directory (default: $XORSNN_DATA)")
    p.add_argument("--seed", type=int, default=0, help="seed of those images (default 0)")
    p.set_defaults(func=_cmd_export)


def _cmd_bench(args: argparse.Namespace) -> int:
    import sys

    from .bench import bench_infer, bench_trained, format_results

    check_positive(*[("--batch", b) for b in args.batch], ("--T", args.T), ("--repeats", args.repeats))
    progress = None if getattr(args, "quiet", False) else (lambda msg: print(msg, file=sys.stderr, flush=True))
    if args.checkpoint is None:
        rows = bench_infer(batches=args.batch, T=args.T, repeats=args.repeats, threads=args.threads, arch=args.arch,
                           progress=progress)
        print(format_results(rows))
        return 0
    from ..training import build_model_from_checkpoint

    model, meta = build_model_from_checkpoint(args.checkpoint, "cpu", which=args.which)
    if args.dataset:
        test, source = _test_images(args, model, meta, max(args.batch))

        def images(b: int) -> Any:
            return test[:b]
    else:
        source = "random N(0,1) images (spike rates of real data differ: --dataset)"

        def images(b: int) -> Any:
            return _sample_input(model, meta, None, b, 0)
    rows = bench_trained(model, str(meta["model"]), images, batches=args.batch, repeats=args.repeats,
                         threads=args.threads, progress=progress)
    print(format_results(rows))
    print(f"\n{meta['model']} from {meta['checkpoint']} (epoch {meta.get('epoch')}), input: {source}")
    return 0


def add_bench_infer_parser(sub: Any) -> None:
    """Register ``xorsnn bench-infer`` on the subparsers ``sub``."""
    p = sub.add_parser("bench-infer", help="latency/throughput of the bit-packed CPU engine vs PyTorch fp32",
                       description="Binary-weight, binary-spike ResNet on CIFAR-sized input (--arch), or a trained "
                                   "binary-weight run (RUN); checks the packed engine's logits equal PyTorch's, "
                                   "then times both.")
    p.add_argument("checkpoint", nargs="?", default=None,
                   help="a trained run (directory, epoch folder or model.safetensors) to time instead of --arch; "
                        "binary-weight runs only (scaled binary weights are re-parameterised to ±1)")
    p.add_argument("--which", choices=("BEST", "LAST"), default="BEST", help="checkpoint of a run directory")
    p.add_argument("--dataset", default=None, help="with a checkpoint: time on this dataset's first test images")
    p.add_argument("--data-dir", default=None, help="dataset directory (default: the run's, then $XORSNN_DATA)")
    p.add_argument("--arch", choices=("resnet18", "xoresnet18", "msc_resnet18", "resnet20"), default="resnet18",
                   help="network: resnet18 (Spiking ResNet, widths 64-512, 11M params), xoresnet18 (same layout, "
                        "XOResNet blocks), msc_resnet18 (SEI-BWSNN multi-shortcut) or resnet20 (16-64, quick)")
    p.add_argument("--batch", type=int, nargs="+", default=[1, 64], help="batch sizes (default: 1 64)")
    p.add_argument("--T", type=int, default=4, help="time steps (default 4)")
    p.add_argument("--repeats", type=int, default=5, help="timed repetitions per setting (default 5)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's current setting)")
    p.set_defaults(func=_cmd_bench)

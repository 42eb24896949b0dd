"""The ``xorsnn`` command line (also ``python -m xorsnn``).

Commands: ``train``, ``eval``, ``demo``, ``compare``, ``list``, ``presets``, ``smoke``. Training options come
from :class:`xorsnn.training.TrainConfig` (every field is a flag with its help text); a YAML preset
(``--config``) sets defaults that flags override.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import difflib
import json
import logging
import os
import re
import sys
import time
import traceback
import types
import typing
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .cli_common import add_checkpoint_arguments, check_positive

__all__ = ["main", "build_parser"]

log = logging.getLogger("xorsnn")

_PACKAGE_DIR = str(Path(__file__).resolve().parent)  # warnings raised from here print as one line


# -- helpers ---------------------------------------------------------------------------------------
def _parse_kv(items: Sequence[str] | None) -> dict[str, Any]:
    """``["xor_mode=output", "neuron={tau: 1.5}"]`` -> dict, values parsed as YAML."""
    import yaml

    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"--model-arg expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise ValueError(f"--model-arg {item!r}: the value is not valid YAML ({' '.join(str(exc).split())})"
                             ) from None
    return out


def _base_type(annotation: Any) -> Any:
    if isinstance(annotation, str):
        annotation = eval(annotation, vars(typing), {})  # dataclass annotations are strings (PEP 563)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0]
    return annotation


def _add_config_flags(p: argparse.ArgumentParser, skip: Sequence[str] = ()) -> None:
    from .training import TrainConfig

    group = p.add_argument_group("training options (override --config)")
    for f in dataclasses.fields(TrainConfig):
        if f.name in skip or f.name == "model_kwargs":
            continue
        flag = "--" + f.name.replace("_", "-")
        typ = _base_type(f.type)
        help_text = f"{f.metadata.get('help', '')} (default: {f.default!r})"
        if typ is bool:
            group.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            group.add_argument(flag, dest=f.name, type=typ, default=None, choices=f.metadata.get("choices"),
                               help=help_text, metavar=f.name.upper() if not f.metadata.get("choices") else None)
    group.add_argument("--model-arg", dest="model_args", action="append", metavar="KEY=VALUE",
                       help="model argument (repeatable; VALUE is YAML), e.g. --model-arg xor_mode=output "
                            "--model-arg 'neuron={tau: 1.5}'")


def _saved_run_config(data: dict[str, Any]) -> dict[str, Any]:
    """With ``resume``: the run directory's ``config.yaml`` (the defaults a resumed run starts from, so
    ``xorsnn train --out-dir RUN --resume`` continues RUN as it was configured); else ``{}``."""
    from .training import TrainConfig, load_config

    if not data.get("resume"):
        return {}
    probe = TrainConfig(model=data.get("model", TrainConfig.model), dataset=data.get("dataset", TrainConfig.dataset),
                        out_dir=data.get("out_dir"))
    path = Path(probe.resolved_out_dir()) / "config.yaml"
    if not path.is_file():
        return {}
    saved = load_config(path)
    return {k: v for k, v in saved.items() if k not in ("resume", "out_dir")}


def _bars_wanted(args: argparse.Namespace) -> bool:
    """Progress bars by default only on a terminal and without ``-q``."""
    return not getattr(args, "quiet", False) and sys.stderr.isatty()


def _config_from_args(args: argparse.Namespace, **forced: Any):  # type: ignore[no-untyped-def]
    from .training import TrainConfig, load_config

    data: dict[str, Any] = {}
    if getattr(args, "config", None):
        data.update(load_config(args.config))
    for name in TrainConfig.field_names():
        value = getattr(args, name, None)
        if value is not None:
            data[name] = value
    data.update(forced)
    if getattr(args, "progress", None) is None and not _bars_wanted(args):
        data["progress"] = False  # -q, or stderr is a file: no \r-updated bars in the log (--progress forces them)
    data = {**_saved_run_config(data), **data}
    kwargs = dict(data.get("model_kwargs") or {})
    kwargs.update(_parse_kv(getattr(args, "model_args", None)))
    data["model_kwargs"] = kwargs
    return TrainConfig.from_dict(data)


def _table(rows: list[dict[str, Any]], columns: list[tuple[str, str, str]]) -> str:
    """Markdown table; ``columns`` are (key, header, format)."""
    head = "| " + " | ".join(h for _, h, _ in columns) + " |"
    sep = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(format(r[k], fmt) if fmt else str(r[k]) for k, _, fmt in columns) + " |" for r in rows]
    return "\n".join([head, sep, *body])


# -- commands --------------------------------------------------------------------------------------
def _cmd_list(args: argparse.Namespace) -> int:
    from .models import list_models, model_info

    names = list_models(args.pattern)
    if not names:
        print(f"no registered model matches {args.pattern!r}", file=sys.stderr)
        return 1
    width = max(len(n) for n in names)
    for name in names:
        entry = model_info(name)
        print(f"{name:<{width}}  {entry.description}  [{entry.defined_in}]" if args.verbose else name)
    return 0


def _cmd_presets(args: argparse.Namespace) -> int:
    from .training.config import list_presets, preset_description

    names = list_presets()
    width = max(len(n) for n in names)
    for name in names:
        print(f"{name:<{width}}  {preset_description(name)}")
    print(f"\n{len(names)} presets; use one with `xorsnn train --config NAME` (flags override it)")
    return 0


def _cmd_smoke(args: argparse.Namespace) -> int:
    """Forward + backward of one model of every family on random input (no data needed)."""
    import torch

    from .models import create_model, model_info

    check_positive(("--T", args.T), ("--batch", args.batch))
    torch.manual_seed(0)
    names = args.models or ["spiking_resnet20", "sew_resnet20", "ms_resnet20", "oa_resnet20", "xoresnet20"]
    for name in names:  # every name checked before the first model runs
        model_info(name)
    print(f"{'model':<20} {'depth':>5} {'params':>9} {'out shape':>14} {'s':>6}")
    for name in names:
        model = create_model(name, T=args.T, num_classes=10)
        x = torch.rand(args.batch, 3, 32, 32)
        t0 = time.perf_counter()
        out = model(x)
        torch.nn.functional.cross_entropy(out.mean(0), torch.randint(0, 10, (args.batch,))).backward()
        dt = time.perf_counter() - t0
        ok = all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
        params = sum(p.numel() for p in model.parameters())
        print(f"{name:<20} {getattr(model, 'depth', '-'):>5} {params / 1e6:>8.2f}M {str(tuple(out.shape)):>14} "
              f"{dt:>6.2f}" + ("" if ok else "  NON-FINITE GRADIENTS"))
        if not ok:
            return 1
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from .training import train

    cfg = _config_from_args(args)
    result = train(cfg)
    print(f"best test accuracy {100 * result.best_test_acc:.2f}% (final {100 * result.final_test_acc:.2f}%) "
          f"after {len(result.metrics)} epochs in {result.wall_time_s:.1f}s; run directory {result.out_dir}")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    import torch

    from .analysis.cli import checkpoint_test_loader
    from .training import DistContext, build_model_from_checkpoint, evaluate
    from .training.distributed import resolve_device

    check_positive(("--T", args.T), ("--batch-size", args.batch_size), ("--test-subset", args.test_subset))
    device = resolve_device(args.device)
    if str(args.checkpoint).endswith(".nir"):
        model, meta = _nir_model(args)
    elif args.dt is not None:
        raise ValueError("--dt applies to NIR graphs (GRAPH.nir) only; an xorsnn checkpoint knows its dynamics")
    else:
        model, meta = build_model_from_checkpoint(args.checkpoint, device, which=args.which)
    if args.T is not None:
        model.T = args.T
    engine_info: dict[str, Any] = {"engine": args.engine}
    if args.engine == "packed":
        model, engine_info = _packed_engine(model, device)
    trained_on = meta.get("xorsnn_config", {}).get("dataset")
    if args.dataset and trained_on and args.dataset != trained_on:
        print(f"xorsnn eval: warning: {meta['model']} was trained on {trained_on}, evaluating it on {args.dataset} "
              "(a different dataset: the accuracy says how it transfers, not how it was trained)", file=sys.stderr)
    dataset, test_loader = checkpoint_test_loader(meta, dataset=args.dataset, data_dir=args.data_dir, T=model.T,
                                                  batch_size=args.batch_size, test_subset=args.test_subset,
                                                  device=device)
    t0 = time.perf_counter()
    with torch.no_grad():
        res = evaluate(model, test_loader, DistContext(device=device))
    res.update(model=meta["model"], epoch=meta.get("epoch"), checkpoint=meta["checkpoint"], dataset=dataset,
               seconds=time.perf_counter() - t0, **engine_info)
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        engine = "" if args.engine == "torch" else (f" [packed engine: {engine_info['packed_layers']} packed layers, "
                                                     f"{engine_info['fused_blocks']} fused blocks]")
        epoch = "" if meta.get("epoch") is None else f" (epoch {meta['epoch']})"
        print(f"{meta['model']}{epoch} on {dataset}: test accuracy {100 * res['acc']:.2f}%, "
              f"loss {res['loss']:.4f} over {int(res['count'])} samples ({res['seconds']:.1f}s){engine}")
    return 0


def _nir_model(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """``xorsnn eval GRAPH.nir``: a NIR graph (written by xorsnn or another library) run by xorsnn's NIR
    simulator; it names neither its dataset nor ``T``, so both are flags."""
    from .export.nir_sim import NIRGraphModule, read_graph

    if args.engine != "torch" or args.T is None or not args.dataset:
        raise ValueError("a NIR graph is evaluated by xorsnn's NIR simulator: give --dataset and --T (the graph "
                         "stores neither), and no --engine")
    import numpy as np

    graph = read_graph(args.checkpoint)
    out = next((n for n in graph.nodes.values() if type(n).__name__ == "Output"), None)
    types_ = [t.get(k) for t, k in ((getattr(out, "output_type", None) or {}, "output"),
                                    (getattr(out, "input_type", None) or {}, "input")) if t.get(k) is not None]
    if not types_:
        raise ValueError(f"{args.checkpoint}: the graph's Output node states no shape (the number of classes)")
    classes = int(np.asarray(types_[0]).ravel()[-1])
    meta = {"model": f"NIR graph {Path(args.checkpoint).name}", "epoch": None, "checkpoint": str(args.checkpoint),
            "model_kwargs": {"num_classes": classes}, "xorsnn_config": {}}
    return NIRGraphModule(graph, args.T, dt=args.dt), meta


def _packed_engine(model: Any, device: Any) -> tuple[Any, dict[str, Any]]:
    """``xorsnn eval --engine packed``: the bit-packed CPU form of ``model`` and what was packed."""
    from .export import pack_model, packed_layers
    from .export.packed import packable_form
    from .export.packed_fused import FusedBasicBlock

    if device.type != "cpu":
        raise ValueError("--engine packed runs on the CPU: add --device cpu")
    form, reparam = packable_form(model)
    packed = pack_model(form)
    info = {"engine": "packed", "reparameterized": reparam, "packed_layers": len(packed_layers(packed)),
            "fused_blocks": sum(isinstance(m, FusedBasicBlock) for m in packed.modules())}
    return packed, info


def _check_runs(models: Sequence[str], base_cfg: Any) -> list[Any]:
    """Every run's config, validated -- each name and its options -- before anything trains or loads data."""
    from .models import create_model, model_info

    for name in models:  # names first: a typo in the last one fails in milliseconds
        model_info(name)
    import torch

    configs = []
    for name in models:
        cfg = base_cfg.updated(model=name, out_dir=None)
        cfg.validate()
        with torch.device("meta"):  # the options are checked by building the model without memory or init cost
            try:
                create_model(name, **{**cfg.model_kwargs, "T": cfg.T})
            except TypeError as exc:
                raise ValueError(f"{name}: {exc}") from exc
        configs.append(cfg)
    return configs


def _run_comparison(models: Sequence[str], base_cfg: Any, out_dir: Path, title: str) -> list[dict[str, Any]]:
    from .data import load_dataset
    from .training import train

    _check_runs(models, base_cfg)
    data = load_dataset(base_cfg.dataset, base_cfg.resolved_data_dir(), download=base_cfg.download, T=base_cfg.T,
                        image_size=base_cfg.image_size)
    rows, curves = [], {}
    for name in models:
        cfg = base_cfg.updated(model=name, out_dir=str(out_dir / name))
        log.info("== %s", name)
        res = train(cfg, data)
        n_params = sum(p.numel() for p in res.model.parameters())
        rows.append({"model": name, "params_M": n_params / 1e6, "best_acc": 100 * res.best_test_acc,
                     "final_acc": 100 * res.final_test_acc, "epochs": len(res.metrics), "time_s": res.wall_time_s})
        curves[name] = res.metrics
    table = _table(rows, [("model", "model", ""), ("params_M", "params (M)", ".2f"),
                          ("best_acc", "best test acc (%)", ".2f"), ("final_acc", "final test acc (%)", ".2f"),
                          ("epochs", "epochs", ""), ("time_s", "train time (s)", ".1f")])
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.md").write_text(f"# {title}\n\n{table}\n")
    with open(out_dir / "results.json", "w") as f:
        json.dump({"config": base_cfg.to_dict(), "results": rows}, f, indent=2)
    print(table)
    try:
        from .training.plots import plot_curves

        png = plot_curves(curves, out_dir / "curves.png", title)
        print(f"\ncurves: {png}")
    except ImportError as exc:
        print(f"\n(no plot: {exc})")
    print(f"results: {out_dir / 'results.md'}")
    return rows


def _cmd_compare(args: argparse.Namespace) -> int:
    cfg = _config_from_args(args, model=args.models[0])
    out = Path(args.out or f"runs/compare_{cfg.dataset}")
    _run_comparison(args.models, cfg, out, f"{', '.join(args.models)} on {cfg.dataset}, {cfg.epochs} epochs, T={cfg.T}")
    return 0


DEMO_MODELS = ["xoresnet20", "sew_resnet20", "ms_resnet20"]


def _cmd_demo(args: argparse.Namespace) -> int:
    from .training import TrainConfig, load_config

    data = load_config("digits_demo")
    if args.epochs is not None:
        data["epochs"] = args.epochs
    bars = not args.no_progress and _bars_wanted(args)
    cfg = TrainConfig.from_dict({**data, "model": DEMO_MODELS[0], "progress": bars, "seed": args.seed})
    print(f"xorsnn demo: {', '.join(args.models)} on scikit-learn's 8x8 digits (1,438 train / 359 test images), "
          f"T={cfg.T}, {cfg.epochs} epochs each, CPU\n")
    t0 = time.perf_counter()
    _run_comparison(args.models, cfg, Path(args.out), "xorsnn demo: digits")
    print(f"\ntotal {time.perf_counter() - t0:.1f}s")
    return 0


# -- parser ----------------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit code 2), like every other xorsnn error: the usage text is in ``--help``."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {_with_suggestion(' '.join(message.split()))} (see {self.prog} --help)\n")

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: Any = None
    ) -> argparse.Namespace:
        ns, extras = self.parse_known_args(args, namespace)
        if extras:
            self.error(_unrecognized(self, ns, extras))
        return ns


_INVALID_CHOICE = re.compile(r"invalid choice: '([^']*)' \(choose from (.*)\)")


def _with_suggestion(message: str) -> str:
    """argparse's ``invalid choice: 'trian' (choose from 'train', ...)`` with the closest choice named."""
    m = _INVALID_CHOICE.search(message)
    if not m:
        return message
    choices = re.findall(r"'([^']*)'", m.group(2))
    close = difflib.get_close_matches(m.group(1), choices, n=1, cutoff=0.6)
    return f"{message}; did you mean {close[0]!r}?" if close else message


def _unrecognized(parser: argparse.ArgumentParser, ns: argparse.Namespace, extras: list[str]) -> str:
    """``unrecognized arguments: ...`` with the closest flag of the sub-command for each misspelled one."""
    sub = parser
    for action in parser._actions:  # the chosen sub-command's parser knows its flags
        if isinstance(action, argparse._SubParsersAction) and getattr(ns, "command", None) in action.choices:
            sub = action.choices[ns.command]
    flags = [f for p in {parser, sub} for f in p._option_string_actions if f.startswith("--")]
    hints = []
    for extra in extras:
        flag = extra.split("=", 1)[0]
        if flag.startswith("-"):
            close = difflib.get_close_matches(flag, flags, n=1, cutoff=0.6)
            if close:
                hints.append(f"{flag} -> {close[0]}")
    msg = f"unrecognized arguments: {' '.join(extras)}"
    return msg + (f"; did you mean {', '.join(hints)}?" if hints else "")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="xorsnn", description="Deep spiking neural networks built on logic operations.")
    parser.add_argument("-q", "--quiet", action="store_true", help="only print results (no per-epoch log)")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error (also XORSNN_DEBUG=1); default: one line")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("train", help="train a registered model on a dataset",
                       description="Train a model. Example: xorsnn train --config cifar10_resnet19_tet --epochs 10")
    p.add_argument("--config", help="YAML preset name (see presets/) or path; flags override it")
    _add_config_flags(p)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("eval", help="evaluate a checkpoint (or a NIR graph: GRAPH.nir) on a dataset's test split")
    add_checkpoint_arguments(p)
    p.add_argument("--batch-size", type=int, default=256, help="evaluation batch size (default: 256)")
    p.add_argument("--test-subset", type=int, default=None, help="evaluate on a random subset of this size")
    p.add_argument("--T", type=int, default=None, help="override the number of time steps")
    p.add_argument("--dt", type=float, default=None,
                   help="NIR graphs only: the time step its time constants are written for (default: the graph's "
                        "metadata, else 1; 1e-4 for graphs written by SpikingJelly or snnTorch)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--engine", choices=("torch", "packed"), default="torch",
                   help="torch (default) or packed: the bit-packed CPU engine (binary-weight models; scaled "
                        "weights are re-parameterised first; needs numba)")
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("demo", help="train XOResNet, SEW- and MS-ResNet briefly on digits (CPU) and compare")
    p.add_argument("--models", nargs="+", default=DEMO_MODELS, help=f"models to compare (default: {DEMO_MODELS})")
    p.add_argument("--epochs", type=int, default=None, help="epochs per model (default: the digits_demo preset's)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--out", default="runs/demo", help="output directory (default: runs/demo)")
    p.add_argument("--no-progress", action="store_true", help="hide the per-epoch progress bars")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("compare", help="train several models with the same recipe; results table + curves PNG")
    p.add_argument("models", nargs="+", help="registered model names")
    p.add_argument("--config", help="YAML preset name or path; flags override it")
    p.add_argument("--out", help="output directory (default: runs/compare_<dataset>)")
    _add_config_flags(p, skip=("model", "out_dir"))
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser("list", help="list registered models")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style name pattern, e.g. 'xoresnet*'")
    p.add_argument("-v", "--verbose", action="store_true", help="print descriptions and definitions")
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("presets", help="list the shipped training presets with their descriptions")
    p.set_defaults(func=_cmd_presets)

    p = sub.add_parser("smoke", help="forward/backward smoke run of every block family on random input")
    p.add_argument("models", nargs="*", help="registered model names (default: the 20-layer model of each family)")
    p.add_argument("--T", type=int, default=4, help="time steps (default 4)")
    p.add_argument("--batch", type=int, default=8, help="batch size (default 8)")
    p.set_defaults(func=_cmd_smoke)

    from .analysis.cli import add_analyze_parser
    from .export.cli import add_bench_infer_parser, add_export_parser

    add_analyze_parser(sub)
    add_export_parser(sub)
    add_bench_infer_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    debug = args.debug or os.environ.get("XORSNN_DEBUG", "").strip() not in ("", "0")
    try:
        with _terminal_warnings(args.command, debug):
            return int(args.func(args) or 0)
    except BrokenPipeError:  # `xorsnn list | head`: the reader left; stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as exc:  # every error: one line on stderr, exit 2 (--debug: the traceback too)
        if debug:
            traceback.print_exc()
        print(f"xorsnn {args.command}: error: {_one_line(exc, debug)}", file=sys.stderr)
        return 2


@contextlib.contextmanager
def _terminal_warnings(command: str, debug: bool) -> Iterator[None]:
    """xorsnn's own warnings as ``xorsnn COMMAND: warning: MESSAGE`` lines (not Python's ``file:line`` form
    with the source line below it) while a command runs; ``--debug`` keeps Python's form."""
    if debug:
        yield
        return
    previous = warnings.formatwarning

    def one_line(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                 line: str | None = None) -> str:
        if not filename.startswith(_PACKAGE_DIR):
            return previous(message, category, filename, lineno, line)
        return f"xorsnn {command}: warning: {' '.join(str(message).split())}\n"

    warnings.formatwarning = one_line
    try:
        yield
    finally:
        warnings.formatwarning = previous


def _one_line(exc: BaseException, debug: bool = False) -> str:
    """``exc`` as one line: its message, prefixed by its type unless it is one of xorsnn's own errors
    (or a plain ``ValueError``/``FileNotFoundError``), whose messages say what happened."""
    text = " ".join(str(exc).split()) or "(no message)"
    plain = (ValueError, FileNotFoundError, FloatingPointError)
    if isinstance(exc, plain) and type(exc).__module__.startswith(("xorsnn", "builtins")):
        return text
    return f"{type(exc).__name__}: {text}" + ("" if debug else " (run with --debug for the traceback)")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""The ``xorsnn`` command line (also ``python -m xorsnn``)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

__all__ = ["main", "build_parser"]


def _cmd_list(args: argparse.Namespace) -> int:
    from .models import list_models, model_info

    names = list_models(args.pattern)
    if not names:
        print(f"no registered model matches {args.pattern!r}", file=sys.stderr)
        return 1
    width = max(len(n) for n in names)
    for name in names:
        print(f"{name:<{width}}  {model_info(name).description}" if args.verbose else name)
    return 0


def _cmd_smoke(args: argparse.Namespace) -> int:
    """Forward + backward of one model of every family on random input (no data needed)."""
    import torch

    from .models import create_model

    torch.manual_seed(0)
    names = args.models or ["spiking_resnet20", "sew_resnet20", "ms_resnet20", "oa_resnet20", "xoresnet20"]
    print(f"{'model':<20} {'depth':>5} {'params':>9} {'out shape':>14} {'rate':>6} {'s':>6}")
    for name in names:
        model = create_model(name, T=args.T, num_classes=10)
        x = torch.rand(args.batch, 3, 32, 32)
        t0 = time.perf_counter()
        out = model(x)
        torch.nn.functional.cross_entropy(out.mean(0), torch.randint(0, 10, (args.batch,))).backward()
        dt = time.perf_counter() - t0
        ok = all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
        params = sum(p.numel() for p in model.parameters())
        rate = float(out.detach().abs().mean())
        print(f"{name:<20} {model.depth:>5} {params / 1e6:>8.2f}M {str(tuple(out.shape)):>14} {rate:>6.3f} {dt:>6.2f}"
              + ("" if ok else "  NON-FINITE GRADIENTS"))
        if not ok:
            return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xorsnn", description="Deep spiking neural networks built on logic operations."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("list", help="list registered models")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style name pattern, e.g. 'xoresnet*'")
    p.add_argument("-v", "--verbose", action="store_true", help="print each model's description")
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("smoke", help="forward/backward smoke run of every block family on random input")
    p.add_argument("models", nargs="*", help="registered model names (default: the 20-layer model of each family)")
    p.add_argument("--T", type=int, default=4, help="time steps (default 4)")
    p.add_argument("--batch", type=int, default=8, help="batch size (default 8)")
    p.set_defaults(func=_cmd_smoke)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except ValueError as exc:
        print(f"xorsnn {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

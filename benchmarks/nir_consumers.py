"""Trained checkpoints exported to NIR and run by other libraries on the whole Fashion-MNIST test set.

For each run directory: the model's own test predictions (xorsnn, T steps of the checkpoint) beside those
of snnTorch (``import_from_nir`` of a ``consumer="snntorch"`` graph), Norse (``norse_from_nir`` of a
``consumer="norse"`` graph) and, for families without spike logic, SpikingJelly (``import_from_nir`` of a
``consumer="spikingjelly"`` graph, ``dt=1``): accuracy and how many of the 10,000 predictions equal
xorsnn's. The graphs are exported in memory and read back from a file first (``nir.read`` type-checks).

Usage::

    python benchmarks/nir_consumers.py runs/converged/fashion_mnist/ms_s0 runs/converged/fashion_mnist/oa_s0

Writes ``benchmarks/results/nir_consumers_fashion_mnist.md`` (machine, versions, command, table).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import io
import os
import platform
import shlex
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

from xorsnn.data import load_dataset
from xorsnn.data.augment import normalize
from xorsnn.export import export_nir, norse_from_nir
from xorsnn.training import build_model_from_checkpoint

RESULTS = Path(__file__).resolve().parent / "results"
CHUNK = 500


def test_set(data_dir: str | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The 10,000 official test images ``[N, 1, 28, 28]`` (normalised as in training) and labels ``[N]``."""
    data = load_dataset("fashion_mnist", data_dir or os.environ.get("XORSNN_DATA") or "data")
    return normalize(data.test.images.float() / 255.0, data.info.mean, data.info.std), data.test.labels


def _stateful(net: torch.nn.Module) -> Callable[[torch.Tensor, int], torch.Tensor]:
    """``T`` steps of an imported graph that passes its state (Norse, SpikingJelly): ``[T, B, K]``."""
    def run(x: torch.Tensor, t_n: int) -> torch.Tensor:
        state, outs = None, []
        for _ in range(t_n):
            out, state = net(x, state)
            outs.append(out)
        return torch.stack(outs)
    return run


def _snntorch(net: torch.nn.Module) -> Callable[[torch.Tensor, int], torch.Tensor]:
    from snntorch import utils

    def run(x: torch.Tensor, t_n: int) -> torch.Tensor:
        utils.reset(net)
        outs = [net(x) for _ in range(t_n)]
        return torch.stack([o[0] if isinstance(o, tuple) else o for o in outs])
    return run


def consumers(model: torch.nn.Module, sample: torch.Tensor, tmp: Path) -> dict[str, Callable]:
    """Each consumer's runner of ``model``'s graph, read back from a file in ``tmp``."""
    import nir
    from snntorch.import_nir import import_from_nir as snntorch_import

    def graph(consumer: str):
        export_nir(model, sample, tmp / f"{consumer}.nir", consumer=consumer)
        return nir.read(tmp / f"{consumer}.nir")

    with contextlib.redirect_stdout(io.StringIO()):  # snnTorch prints a note per rescaled neuron
        out = {"snntorch": _snntorch(snntorch_import(graph("snntorch")))}
    out["norse"] = _stateful(norse_from_nir(graph("norse")))
    try:
        from spikingjelly.activation_based.nir_exchange.from_nir import import_from_nir as sj_import
        out["spikingjelly"] = _stateful(sj_import(graph("spikingjelly"), dt=1.0))
    except ValueError:  # spike logic (OR / XOR / AND / IAND): SpikingJelly has no Threshold node
        pass
    return out


def measure(run: str, x: torch.Tensor, y: torch.Tensor) -> list[dict]:
    model, meta = build_model_from_checkpoint(run, "cpu", which="LAST")
    model.eval()
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runners = consumers(model, x[:1], Path(tmp))
        preds: dict[str, list[torch.Tensor]] = {"xorsnn": [], **{k: [] for k in runners}}
        t0 = time.perf_counter()
        with torch.no_grad():
            for i in range(0, len(x), CHUNK):
                xb = x[i:i + CHUNK]
                ref = model(xb)
                preds["xorsnn"].append(ref.mean(0).argmax(-1))
                for name, f in runners.items():
                    preds[name].append(f(xb, ref.shape[0]).mean(0).argmax(-1))
    p = {k: torch.cat(v) for k, v in preds.items()}
    wall = time.perf_counter() - t0
    return [{"run": run, "model": meta.get("model", "?"), "consumer": k,
             "acc": float((v == y).float().mean()) * 100, "same": int((v == p["xorsnn"]).sum()), "n": len(y),
             "wall_s": wall} for k, v in p.items()]


def _versions() -> str:
    parts = [f"Python {platform.python_version()}", f"torch {torch.__version__}"]
    for dist in ("nir", "nirtorch", "snntorch", "norse", "spikingjelly"):
        try:
            parts.append(f"{dist} {importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            parts.append(f"{dist} absent")
    return ", ".join(parts)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="run directories of Fashion-MNIST checkpoints")
    p.add_argument("--data-dir", default=None, help="dataset directory (default: $XORSNN_DATA, else ./data)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(RESULTS / "nir_consumers_fashion_mnist.md"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    x, y = test_set(args.data_dir)
    rows = []
    for run in args.runs:
        rows += measure(run, x, y)
        for r in rows[-4:]:
            if r["run"] == run:
                print(f"{Path(run).name:14s} {r['consumer']:12s} {r['acc']:.2f} %  same as xorsnn {r['same']}/{r['n']}")
    lines = [
        "# Trained checkpoints in other libraries (NIR), whole Fashion-MNIST test set",
        "",
        f"Machine: {platform.machine()}, {torch.get_num_threads()} thread(s); {_versions()}.",
        f"Command: `python benchmarks/{Path(__file__).name} {shlex.join(sys.argv[1:] if argv is None else argv)}`",
        "",
        "Each checkpoint (LAST) is exported per consumer (`xorsnn.export.export_nir(..., consumer=...)`), read back "
        "with `nir.read` and run by that library's importer for the checkpoint's T steps (snnTorch "
        "`import_from_nir`; Norse through `xorsnn.export.norse_from_nir`; SpikingJelly `import_from_nir(dt=1)`, "
        "not for spike-logic families). `same` counts test images whose predicted class equals xorsnn's.",
        "",
        "| run | model | consumer | test acc % | same prediction as xorsnn |",
        "|---|---|---|---:|---:|",
    ]
    lines += [f"| {Path(r['run']).name} | {r['model']} | {r['consumer']} | {r['acc']:.2f} | {r['same']}/{r['n']} |"
              for r in rows]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

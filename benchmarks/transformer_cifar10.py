"""Spikformer on CIFAR-10: dot-product attention vs a-XNOR (fixed a, learnable a), one recipe.

    python benchmarks/transformer_cifar10.py DATA_DIR [--variants dot axnor_fixed axnor_learn]
        [--embed-dim 128 --depth 2 --heads 4 --T 2 --epochs 2 --train-subset 10000 --test-subset 2000]

``DATA_DIR`` holds ``cifar-10-batches-py`` (``shared/tools/prepare_data.py`` lays it out). Every variant
is trained with the same recipe, seed and data order through :func:`xorsnn.training.train`; the
result of each variant is stored in ``benchmarks/results/transformer_cifar10.json`` (keyed by variant
and seed, so variants and seeds can be run in separate invocations) and the table
``benchmarks/results/transformer_cifar10.md`` is rewritten from all stored results: best/final test
accuracy, wall time, the learned values of ``a`` (per layer and head) and the mean training step
time of each similarity.

The default size is a reduced Spikformer (``spikformer_4_384`` with the given ``embed_dim``,
``depth``, ``num_heads``) so that a CPU can run it; on a GPU pass ``--embed-dim 384 --depth 4
--heads 12 --T 4 --epochs ...`` for the paper's configuration.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch

import xorsnn
from xorsnn.training import TrainConfig, train

RESULTS = Path(__file__).resolve().parent / "results"

VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "dot": ("dot product (paper)", {"similarity": "dot"}),
    "axnor_fixed": ("a-XNOR, fixed a = 0.25", {"similarity": "axnor", "a": 0.25, "a_learnable": False}),
    "axnor_learn": ("a-XNOR, learnable a per head (init 0.25)", {"similarity": "axnor", "a": 0.25,
                                                                 "a_learnable": True, "a_granularity": "head"}),
    "axnor_learn_center": ("a-XNOR, learnable a per head, attn_norm=center",
                           {"similarity": "axnor", "a": 0.25, "a_learnable": True, "a_granularity": "head",
                            "attn_norm": "center"}),
}


def run_variant(key: str, args: argparse.Namespace) -> dict[str, Any]:
    """Train one variant; returns its row (accuracies, wall time, learned a, step time)."""
    label, kwargs = VARIANTS[key]
    model_kwargs = {"embed_dim": args.embed_dim, "depth": args.depth, "num_heads": args.heads, **kwargs}
    cfg = TrainConfig(
        model="spikformer_4_384", model_kwargs=model_kwargs, dataset="cifar10", data_dir=str(args.data_dir),
        train_subset=args.train_subset, test_subset=args.test_subset, T=args.T, epochs=args.epochs,
        batch_size=args.batch, optimizer="adamw", lr=args.lr, weight_decay=0.06, schedule="cosine",
        warmup_epochs=0.2 if args.epochs > 1 else 0.0, seed=args.seed, device=args.device,
        out_dir=str(Path(args.runs) / key), progress=False, keep_last=1,
    )
    t0 = time.perf_counter()
    result = train(cfg)
    wall = time.perf_counter() - t0
    steps = args.epochs * -(-(args.train_subset or 50000) // args.batch)
    a_values = result.model.a_values() if hasattr(result.model, "a_values") else {}
    return {
        "variant": key, "label": label, "model_kwargs": model_kwargs,
        "best_acc": result.best_test_acc, "final_acc": result.final_test_acc,
        "wall_s": wall, "train_step_s": wall / max(steps, 1),
        "a_values": {k: [round(float(v), 4) for v in (vals if isinstance(vals, list) else [vals])]
                     for k, vals in a_values.items()},
        "epochs": args.epochs, "train_subset": args.train_subset, "test_subset": args.test_subset, "T": args.T,
        "batch": args.batch, "lr": args.lr, "seed": args.seed, "device": str(args.device),
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
                   f"Python {platform.python_version()}, xorsnn {xorsnn.__version__}",
        "load_after": round(os.getloadavg()[0], 2),
    }


def write_table(rows: list[dict[str, Any]], path: Path) -> None:
    """The markdown table of every stored variant."""
    lines = [
        "# Spikformer on CIFAR-10: dot product vs a-XNOR attention",
        "",
        "Produced by `benchmarks/transformer_cifar10.py` (command per row below). One recipe for all "
        "variants: AdamW (weight decay 0.06, none on BN/bias), cosine schedule, random crop + flip, "
        "cross-entropy on the time-mean, same seed and data order. **A CPU-budget run**: a reduced "
        "Spikformer on a CIFAR-10 subset for a few epochs -- far from the paper's schedule (300 epochs, "
        "Spikformer-4-384, T = 4, ~95 %); it compares the similarity options under one budget, it does "
        "not reproduce the paper's accuracy.",
        "",
        "| variant | seed | model | T | epochs | train / test images | best acc | final acc | wall time | s / step "
        "| learned a |",
        "|---|---:|---|---:|---:|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        mk = r["model_kwargs"]
        model = f"Spikformer-{mk['depth']}-{mk['embed_dim']}, {mk['num_heads']} heads"
        a = "; ".join(f"{k.replace('blocks.', 'L').replace('.attn', '')}: "
                      + ", ".join(f"{v:.3f}" for v in vals) for k, vals in r["a_values"].items()) or "--"
        lines.append(
            f"| {r['label']} | {r['seed']} | {model} | {r['T']} | {r['epochs']} | "
            f"{r['train_subset']} / {r['test_subset']} | "
            f"{100 * r['best_acc']:.2f} % | {100 * r['final_acc']:.2f} % | {r['wall_s'] / 60:.1f} min | "
            f"{r['train_step_s']:.3f} | {a} |"
        )
    lines += ["", "Mean over seeds (final accuracy; the spread between seeds is the noise level of this budget):", ""]
    for key, (label, _) in VARIANTS.items():
        accs = [100 * r["final_acc"] for r in rows if r["variant"] == key]
        if accs:
            lines.append(f"- {label}: {sum(accs) / len(accs):.2f} % over {len(accs)} seed(s) "
                         f"(min {min(accs):.2f}, max {max(accs):.2f})")
    lines += ["", "Runs (command, machine, 1-minute load average after the run; the CPU was shared with other "
              "jobs, so wall times are indicative -- the step-time bar is measured separately in "
              "`attention_similarity_cpu.md`):", ""]
    for r in rows:
        lines.append(f"- {r['variant']}: `{r['command']}` -- {r['machine']}, device {r['device']}, seed {r['seed']}, "
                     f"batch {r['batch']}, lr {r['lr']}, load {r['load_after']}")
    path.write_text("\n".join(lines) + "\n")


def _ordered(rows: dict[tuple[str, int], dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows.values(), key=lambda r: (list(VARIANTS).index(r["variant"]), r["seed"]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data_dir", type=Path)
    ap.add_argument("--variants", nargs="+", default=["dot", "axnor_fixed", "axnor_learn"], choices=list(VARIANTS))
    ap.add_argument("--embed-dim", type=int, default=128)
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--T", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--train-subset", type=int, default=10000)
    ap.add_argument("--test-subset", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--runs", default="runs/transformer_cifar10")
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--table-only", action="store_true", help="rewrite the table from stored results only")
    args = ap.parse_args(argv)

    args.results.mkdir(parents=True, exist_ok=True)
    store = args.results / "transformer_cifar10.json"
    rows = {(r["variant"], r["seed"]): r for r in json.loads(store.read_text())} if store.exists() else {}
    for key in [] if args.table_only else args.variants:
        row = run_variant(key, args)
        print(f"{key}: best {100 * row['best_acc']:.2f} %  final {100 * row['final_acc']:.2f} %  "
              f"{row['wall_s']:.0f} s  a={row['a_values']}", flush=True)
        rows[(key, args.seed)] = row
        store.write_text(json.dumps(list(rows.values()), indent=1))
        write_table(_ordered(rows), args.results / "transformer_cifar10.md")
    if args.table_only:
        write_table(_ordered(rows), args.results / "transformer_cifar10.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

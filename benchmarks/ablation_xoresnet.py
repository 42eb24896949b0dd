"""XOResNet ablation: shortcut families, XOR readings and OR forms under one short recipe.

    flock /work/cpu.lock env OMP_NUM_THREADS=2 python benchmarks/ablation_xoresnet.py \\
        --datasets fashion_mnist --depths 20 --variants all --data-dir /work/data

Every variant is trained with :func:`xorsnn.training.train` under the same recipe (dataset subset,
epochs, T, batch, AdamW + cosine, seed), evaluated on a seeded test subset, then analysed with
:func:`xorsnn.analysis.analyze` on a few test batches: firing rates, spike redundancy (shortcut /
backbone overlap, non-binary block outputs, XOR novelty), SOPs and energy under both conventions.

The study is meant to run in several short invocations (a subset of variants / datasets / depths /
seeds each). Rows are merged into ``benchmarks/results/ablation_xoresnet.json`` (keyed by
``dataset/depth/variant/seed``) and ``benchmarks/results/ablation_xoresnet.md`` is re-rendered from
the whole file every time (``--render-only`` just re-renders).
"""

from __future__ import annotations

import argparse
import logging
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from study_common import RESULTS, command_line, fmt, load_rows, machine, merge_rows, summarize_report  # noqa: E402

from xorsnn.analysis import analyze  # noqa: E402
from xorsnn.data import DataBundle, load_dataset  # noqa: E402
from xorsnn.training import DistContext, TrainConfig, make_loaders, train  # noqa: E402

# name -> (registry prefix, model arguments, description)
VARIANTS: dict[str, tuple[str, dict[str, Any], str]] = {
    "spiking": ("spiking_resnet", {}, "Spiking ResNet, SN(F(x) + x)"),
    "sew_add": ("sew_resnet", {"connect": "add"}, "SEW-ResNet, ADD"),
    "sew_iand": ("sew_resnet", {"connect": "iand"}, "SEW-ResNet, IAND"),
    "ms": ("ms_resnet", {}, "MS-ResNet (membrane shortcut)"),
    "oa": ("oa_resnet", {}, "OA shortcut only, OR = a+b-ab"),
    "xor_input": ("xoresnet", {"xor_mode": "input"}, "OA + XOR (input), OR = a+b-ab [library default]"),
    "xor_output": ("xoresnet", {"xor_mode": "output"}, "OA + XOR (output), OR = a+b-ab"),
    "xor_input_max": ("xoresnet", {"xor_mode": "input", "or_form": "max"}, "OA + XOR (input), OR = max"),
    "xor_output_max": ("xoresnet", {"xor_mode": "output", "or_form": "max"}, "OA + XOR (output), OR = max"),
    "oa_nozi": ("oa_resnet", {"zero_init_residual": False}, "OA only, last BN not zero-initialised"),
    "xor_input_nozi": ("xoresnet", {"xor_mode": "input", "zero_init_residual": False},
                       "OA + XOR (input), last BN not zero-initialised"),
}
DEFAULT_VARIANTS = ["spiking", "sew_add", "sew_iand", "ms", "oa", "xor_input", "xor_output", "xor_input_max"]

JSON_PATH = RESULTS / "ablation_xoresnet.json"
MD_PATH = RESULTS / "ablation_xoresnet.md"


@dataclass(frozen=True)
class Recipe:
    """The training budget shared by every variant of one table."""

    train_subset: int | None = 10_000
    test_subset: int | None = 2_000
    epochs: int = 1
    T: int = 2
    batch_size: int = 64
    lr: float = 5e-3
    weight_decay: float = 5e-4
    augment: bool = False
    analyze_batches: int = 4
    analyze_batch_size: int = 64


def model_name(variant: str, depth: int) -> str:
    """Registered model name of ``variant`` at ``depth`` (``ValueError`` for unknown variants)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; valid variants are {sorted(VARIANTS)}")
    return f"{VARIANTS[variant][0]}{depth}"


def run_variant(variant: str, dataset: str, depth: int, seed: int, recipe: Recipe, data: DataBundle) -> dict[str, Any]:
    """Train one variant with ``recipe`` on ``data`` and analyse it; returns one results row.

    The row holds the test accuracy (on ``recipe.test_subset`` seeded test images), training wall
    time, and the :func:`study_common.summarize_report` columns of the analysis.
    """
    name = model_name(variant, depth)
    _, kwargs, desc = VARIANTS[variant]
    with tempfile.TemporaryDirectory(prefix="xorsnn_ablation_") as tmp:
        cfg = TrainConfig(
            model=name, model_kwargs=dict(kwargs), dataset=dataset, train_subset=recipe.train_subset,
            test_subset=recipe.test_subset, T=recipe.T, epochs=recipe.epochs, batch_size=recipe.batch_size,
            optimizer="adamw", lr=recipe.lr, weight_decay=recipe.weight_decay, schedule="cosine",
            augment=recipe.augment, seed=seed, out_dir=tmp, progress=False, keep_last=1, device="cpu",
        )
        t0 = time.perf_counter()
        result = train(cfg, data)
        train_s = time.perf_counter() - t0
    model = result.model
    # analysis on the first test batches (same seeded subset as the evaluation)
    acfg = cfg.updated(eval_batch_size=recipe.analyze_batch_size)
    _, test_loader = make_loaders(acfg, data, DistContext(device=torch.device("cpu")))
    batches = []
    for x, y in test_loader:
        batches.append((x, y))
        if len(batches) >= recipe.analyze_batches:
            break
    t1 = time.perf_counter()
    report = analyze(model, batches, T=recipe.T)
    analyze_s = time.perf_counter() - t1
    last = result.metrics[-1]
    return {
        "variant": variant,
        "description": desc,
        "model": name,
        "model_kwargs": kwargs,
        "dataset": dataset,
        "depth": depth,
        "seed": seed,
        "test_acc": 100 * result.final_test_acc,
        "train_acc": 100 * last["train_acc"],
        "train_loss": last["train_loss"],
        "train_s": train_s,
        "analyze_s": analyze_s,
        "params_M": sum(p.numel() for p in model.parameters()) / 1e6,
        "recipe": asdict(recipe),
        "machine": machine(),
        "command": command_line(),
        **summarize_report(report),
    }


def row_key(row: dict[str, Any]) -> str:
    return f"{row['dataset']}/{row['depth']}/{row['variant']}/seed{row['seed']}"


# -- markdown ---------------------------------------------------------------------------------------
_COLUMNS = [
    ("test_acc", "test acc (%)", ".2f"),
    ("train_acc", "train acc (%)", ".1f"),
    ("neuron_rate", "neuron rate", ".3f"),
    ("input_rate", "syn. input rate", ".3f"),
    ("overlap", "S∧A overlap", ".4f"),
    ("overlap_of_backbone", "overlap / A", ".3f"),
    ("nonbinary_out", "non-binary out", ".3f"),
    ("novel", "XOR novelty", ".3f"),
    ("sops", "SOPs (M)", ".2f"),
    ("energy_45nm_uJ", "E 45nm (µJ)", ".3f"),
    ("energy_77fJ_uJ", "E 77fJ (µJ)", ".3f"),
    ("train_s", "train (s)", ".0f"),
]


def _cell(row: dict[str, Any], key: str, spec: str) -> str:
    value = row.get(key)
    if key == "sops" and value is not None:
        value = value / 1e6
    return fmt(value, spec)


def render(rows: dict[str, dict[str, Any]], source: str = "ablation_xoresnet.json") -> str:
    """The markdown report of all rows: one table per dataset and depth (seed-0 rows), seed spread."""
    lines = [
        "# XOResNet ablation",
        "",
        f"Generated by `benchmarks/ablation_xoresnet.py` from `{source}` (do not edit by hand).",
        "",
        "Columns: test accuracy on the seeded test subset; neuron rate = spikes / neuron outputs over all spiking "
        "layers; syn. input rate = MAC-weighted non-zero fraction of synaptic-layer inputs; S∧A overlap = fraction "
        "of positions where the shortcut and backbone both spike (blocks with a spike-level merge only; `–` = no "
        "such block: Spiking ResNet and MS-ResNet merge currents/membranes); overlap / A = share of backbone spikes "
        "already on the shortcut; non-binary out = fraction of block outputs not in {0,1} (SEW-ADD's 2s, MS's "
        "membranes); XOR novelty = nnz(XOR(x_l, x_l-1)) / nnz(x_l) on blocks with an active meta-residual; SOPs "
        "and energies are per inference (graded/real inputs priced as MACs; first layer dense), from "
        "`xorsnn.analysis.analyze` on the first test batches. train (s) is wall time on a shared 2-core machine "
        "(other jobs ran beside some rows): not a speed comparison.",
        "",
    ]
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for row in rows.values():
        groups.setdefault((row["dataset"], row["depth"]), []).append(row)
    order = list(VARIANTS)
    for (dataset, depth), group in sorted(groups.items()):
        seed0 = min(r["seed"] for r in group)
        main = sorted((r for r in group if r["seed"] == seed0), key=lambda r: order.index(r["variant"]))
        recipe = main[0]["recipe"]
        lines += [
            f"## {dataset}, depth {depth} (seed {seed0})",
            "",
            f"Recipe: {recipe['train_subset']} training images, {recipe['epochs']} epoch(s), T={recipe['T']}, batch "
            f"{recipe['batch_size']}, AdamW lr {recipe['lr']:g} (cosine, wd {recipe['weight_decay']:g}), "
            f"augmentation {'on' if recipe['augment'] else 'off'}; test subset {recipe['test_subset']}; analysis on "
            f"{recipe['analyze_batches']}x{recipe['analyze_batch_size']} test images.",
            "",
            "| variant | model | " + " | ".join(h for _, h, _ in _COLUMNS) + " |",
            "|---|---|" + "---|" * len(_COLUMNS),
        ]
        for r in main:
            args = ", ".join(f"{k}={v}" for k, v in (r["model_kwargs"] or {}).items())
            lines.append(f"| {r['variant']} | `{r['model']}`{f' ({args})' if args else ''} | "
                         + " | ".join(_cell(r, k, s) for k, _, s in _COLUMNS) + " |")
        lines.append("")
        multi = {}
        for r in group:
            multi.setdefault(r["variant"], []).append(r)
        spread = {v: rs for v, rs in multi.items() if len(rs) > 1}
        if spread:
            lines += ["Seed spread (same recipe; the seed changes initialisation, data order and both subsets):", "",
                      "| variant | seeds | test acc (%) per seed | mean | std |", "|---|---|---|---|---|"]
            for v, rs in sorted(spread.items(), key=lambda kv: order.index(kv[0])):
                rs = sorted(rs, key=lambda r: r["seed"])
                accs = [r["test_acc"] for r in rs]
                std = statistics.stdev(accs) if len(accs) > 1 else math.nan
                lines.append(f"| {v} | {', '.join(str(r['seed']) for r in rs)} | "
                             f"{', '.join(f'{a:.2f}' for a in accs)} | {statistics.mean(accs):.2f} | {std:.2f} |")
            lines.append("")
    machines = {(r["machine"]["device"], r["machine"]["cpu_count"], r["machine"]["torch_threads"],
                 r["machine"]["torch"]) for r in rows.values()}
    commands = sorted({r["command"] for r in rows.values()})
    total = sum(r["train_s"] + r["analyze_s"] for r in rows.values())
    lines += ["## Runs", "",
              "Machine(s): " + "; ".join(f"{d}, {c} CPU cores, {t} torch threads, torch {v}"
                                         for d, c, t, v in sorted(machines)) + ".",
              f"Total wall time of all rows (training + analysis): {total / 60:.1f} min.", "",
              "Commands (each under `flock /work/cpu.lock env OMP_NUM_THREADS=2`):", "", "```"]
    lines += commands
    lines += ["```", ""]
    return "\n".join(lines)


# -- command line -----------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=["fashion_mnist"], help="datasets (default: fashion_mnist)")
    ap.add_argument("--depths", nargs="+", type=int, default=[20], help="6n+2 depths (default: 20)")
    ap.add_argument("--variants", nargs="+", default=["all"],
                    help=f"variants or 'all' ({', '.join(DEFAULT_VARIANTS)}); extra: xor_output_max, oa_nozi, "
                         "xor_input_nozi")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--data-dir", default=None, help="dataset directory (default: $XORSNN_DATA)")
    ap.add_argument("--train-subset", type=int, default=Recipe.train_subset)
    ap.add_argument("--test-subset", type=int, default=Recipe.test_subset)
    ap.add_argument("--epochs", type=int, default=Recipe.epochs)
    ap.add_argument("--T", type=int, default=Recipe.T)
    ap.add_argument("--batch-size", type=int, default=Recipe.batch_size)
    ap.add_argument("--lr", type=float, default=Recipe.lr)
    ap.add_argument("--analyze-batches", type=int, default=Recipe.analyze_batches)
    ap.add_argument("--skip-existing", action="store_true", help="skip runs already in the results file")
    ap.add_argument("--results", type=Path, default=JSON_PATH, help="JSON file the rows are merged into")
    ap.add_argument("--markdown", type=Path, default=MD_PATH, help="markdown file rendered from all rows")
    ap.add_argument("--render-only", action="store_true", help="only re-render the markdown")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")

    if not args.render_only:
        variants = DEFAULT_VARIANTS if args.variants == ["all"] else args.variants
        for v in variants:
            model_name(v, 20)  # validate names before any training
        recipe = Recipe(train_subset=args.train_subset, test_subset=args.test_subset, epochs=args.epochs, T=args.T,
                        batch_size=args.batch_size, lr=args.lr, analyze_batches=args.analyze_batches)
        done = load_rows(args.results) if args.skip_existing else {}
        for dataset in args.datasets:
            data = load_dataset(dataset, args.data_dir or TrainConfig().resolved_data_dir(), T=recipe.T)
            for depth in args.depths:
                for seed in args.seeds:
                    for v in variants:
                        key = f"{dataset}/{depth}/{v}/seed{seed}"
                        if key in done:
                            print(f"{key}: already in {args.results}, skipped", flush=True)
                            continue
                        row = run_variant(v, dataset, depth, seed, recipe, data)
                        merge_rows(args.results, {row_key(row): row})
                        print(f"{key}: test acc {row['test_acc']:.2f}%  neuron rate {row['neuron_rate']:.3f}  "
                              f"SOPs {row['sops'] / 1e6:.2f}M  train {row['train_s']:.0f}s", flush=True)
    rows = load_rows(args.results)
    if rows:
        args.markdown.write_text(render(rows, args.results.name))
        print(f"wrote {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

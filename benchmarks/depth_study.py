"""Depth study: gradient flow and short-budget learning of XOResNet, SEW- and MS-ResNet at 20-482 layers.

    flock /work/cpu.lock env OMP_NUM_THREADS=2 python benchmarks/depth_study.py \\
        --families xoresnet sew_resnet ms_resnet --depths 20 56 110 --data-dir /work/data

For every (family, depth) of the He et al. 6n+2 CIFAR layout, on a Fashion-MNIST subset:

1. **at initialisation**: the first/last block weight-gradient-norm ratio
   (:func:`xorsnn.analysis.grad_norm_ratio`) of the mean-output cross-entropy on a fixed batch of
   ``--grad-batch`` training images (BN in train mode);
2. **a short training run**: ``--steps`` AdamW steps (batch ``--batch-size``, constant lr), the same
   for every network;
3. **after training**: the same gradient ratio on the same batch, the mean training loss of the
   first and last 10 steps, and the test accuracy on ``--test-subset`` seeded test images.

Rows are merged into ``benchmarks/results/depth_study.json`` (keyed ``family/depth/seed``), and
``benchmarks/results/depth_study.md`` is re-rendered from the whole file.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from study_common import RESULTS, command_line, fmt, load_rows, machine, merge_rows  # noqa: E402

import xorsnn  # noqa: E402
from xorsnn.analysis import block_gradient_stats, find_blocks, grad_norm_ratio  # noqa: E402
from xorsnn.data import DataBundle, load_dataset  # noqa: E402
from xorsnn.training import DistContext, TrainConfig, evaluate, make_loaders, make_optimizer, mean_ce_loss  # noqa: E402

FAMILIES = {"xoresnet": "XOResNet (OA + XOR input)", "sew_resnet": "SEW-ResNet (ADD)", "ms_resnet": "MS-ResNet",
            "oa_resnet": "OA only", "spiking_resnet": "Spiking ResNet"}
JSON_PATH = RESULTS / "depth_study.json"
MD_PATH = RESULTS / "depth_study.md"


@dataclass(frozen=True)
class Budget:
    """The fixed short budget every network gets."""

    steps: int = 40
    batch_size: int = 16
    T: int = 2
    lr: float = 2e-3
    weight_decay: float = 5e-4
    grad_batch: int = 16
    train_subset: int = 5_000
    test_subset: int = 1_000


def _param_norm(module: nn.Module) -> float:
    return math.sqrt(sum(float((p.grad.double() ** 2).sum()) for p in module.parameters() if p.grad is not None))


def grad_ratios(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[float, float]:
    """``(all-parameter ratio, weight-only ratio)`` of first/last residual block gradient norms.

    One forward/backward of the mean-output cross-entropy on ``batch`` in train mode; BN buffers
    are restored and the gradients cleared afterwards. *All-parameter* includes BN scales and shifts
    (the definition of the known init ratios in docs/xoresnet.md); *weight-only* is
    :func:`xorsnn.analysis.grad_norm_ratio` (conv/linear weights). With zero-initialised last BNs,
    identity blocks have exactly zero weight gradients at initialisation, so the weight-only ratio
    is undefined (``nan``) there.
    """
    buffers = {n: b.clone() for n, b in model.named_buffers()}
    was_training = model.training
    model.zero_grad(set_to_none=True)
    model.train()
    try:
        mean_ce_loss(model(batch[0]), batch[1]).backward()
        blocks = [m for _, m in find_blocks(model)]
        last = _param_norm(blocks[-1])
        all_ratio = _param_norm(blocks[0]) / last if last > 0 else float("nan")
        weight_ratio = grad_norm_ratio(block_gradient_stats(model))
    finally:
        model.zero_grad(set_to_none=True)
        with torch.no_grad():
            for n, b in model.named_buffers():
                b.copy_(buffers[n])
        model.train(was_training)
    return all_ratio, weight_ratio


def run_depth(family: str, depth: int, seed: int, budget: Budget, data: DataBundle) -> dict[str, Any]:
    """Gradient ratios before/after ``budget.steps`` training steps and the test accuracy of one network."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; valid families are {sorted(FAMILIES)}")
    cfg = TrainConfig(model=f"{family}{depth}", dataset=data.info.name, train_subset=budget.train_subset,
                      test_subset=budget.test_subset, T=budget.T, batch_size=budget.batch_size,
                      eval_batch_size=100, augment=False, seed=seed, device="cpu")
    torch.manual_seed(seed)
    model = xorsnn.create_model(cfg.model, num_classes=data.info.num_classes, in_channels=data.info.in_channels,
                                T=budget.T)
    ctx = DistContext(device=torch.device("cpu"))
    train_loader, test_loader = make_loaders(cfg, data, ctx)
    train_loader.set_epoch(0)
    it = iter(train_loader)
    grad_x, grad_y = next(it)
    grad_batch = (grad_x[: budget.grad_batch], grad_y[: budget.grad_batch])

    t0 = time.perf_counter()
    ratio_init, wratio_init = grad_ratios(model, grad_batch)
    opt = make_optimizer(model, "adamw", budget.lr, budget.weight_decay, 0.9, False)
    losses: list[float] = []
    epoch = 0
    model.train()
    t_train = time.perf_counter()
    while len(losses) < budget.steps:
        try:
            x, y = next(it)
        except StopIteration:
            epoch += 1
            train_loader.set_epoch(epoch)
            it = iter(train_loader)
            continue
        loss = mean_ce_loss(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        if not math.isfinite(losses[-1]):
            break
    train_s = time.perf_counter() - t_train
    ratio_after, wratio_after = grad_ratios(model, grad_batch)
    test = evaluate(model, test_loader, ctx)
    k = min(10, len(losses))
    return {
        "family": family,
        "description": FAMILIES[family],
        "depth": depth,
        "seed": seed,
        "params_M": sum(p.numel() for p in model.parameters()) / 1e6,
        "grad_ratio_init": ratio_init,
        "grad_ratio_after": ratio_after,
        "weight_grad_ratio_init": wratio_init,
        "weight_grad_ratio_after": wratio_after,
        "loss_first": sum(losses[:k]) / k,
        "loss_last": sum(losses[-k:]) / k,
        "steps": len(losses),
        "test_acc": 100 * test["acc"],
        "test_count": int(test["count"]),
        "train_s": train_s,
        "s_per_step": train_s / max(len(losses), 1),
        "total_s": time.perf_counter() - t0,
        "budget": asdict(budget),
        "dataset": data.info.name,
        "machine": machine(),
        "command": command_line(),
    }


def render(rows: dict[str, dict[str, Any]], source: str = "depth_study.json") -> str:
    """Markdown table of all rows (family, then depth)."""
    order = list(FAMILIES)
    ordered = sorted(rows.values(), key=lambda r: (order.index(r["family"]), r["depth"], r["seed"]))
    b = ordered[0]["budget"]
    lines = [
        "# Depth study: gradient flow and short-budget learning at 20-482 layers",
        "",
        f"Generated by `benchmarks/depth_study.py` from `{source}` (do not edit by hand).",
        "",
        f"Data: {ordered[0]['dataset']}, {b['train_subset']} training images (seeded subset), T={b['T']}, batch "
        f"{b['batch_size']}, {b['steps']} AdamW steps at constant lr {b['lr']:g} (wd {b['weight_decay']:g}), no "
        f"augmentation; test accuracy on {b['test_subset']} seeded test images (chance = 10%). Gradient ratio = "
        f"gradient norm (all parameters, BN included) of the first residual block / that of the last block, "
        f"mean-output cross-entropy on one fixed batch of {b['grad_batch']} training images, BN in train mode "
        "(> 1: gradients grow towards the input; << 1: they vanish). Weight-grad ratio: conv weights only "
        "(`xorsnn.analysis.grad_norm_ratio`); it is undefined at initialisation, where the zero-initialised "
        "last BN of every block gives identity blocks exactly zero weight gradients.",
        "",
        "| family | depth | params (M) | grad ratio at init | grad ratio after | weight-grad ratio after | "
        "train loss first 10 | train loss last 10 | test acc (%) | s/step | wall (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in ordered:
        lines.append(
            f"| {r['family']} | {r['depth']} | {r['params_M']:.2f} | {fmt(r['grad_ratio_init'], '.3g')} | "
            f"{fmt(r['grad_ratio_after'], '.3g')} | {fmt(r['weight_grad_ratio_after'], '.3g')} | "
            f"{fmt(r['loss_first'], '.3f')} | {fmt(r['loss_last'], '.3f')} | "
            f"{fmt(r['test_acc'], '.1f')} | {r['s_per_step']:.2f} | {r['total_s']:.0f} |"
        )
    machines = {(r["machine"]["device"], r["machine"]["cpu_count"], r["machine"]["torch_threads"],
                 r["machine"]["torch"]) for r in ordered}
    total = sum(r["total_s"] for r in ordered)
    lines += ["", "Machine(s): " + "; ".join(f"{d}, {c} CPU cores, {t} torch threads, torch {v}"
                                             for d, c, t, v in sorted(machines)) + ".",
              f"Total wall time of all rows: {total / 60:.1f} min.", "",
              "Commands (each under `flock /work/cpu.lock env OMP_NUM_THREADS=2`):", "", "```"]
    lines += sorted({r["command"] for r in ordered})
    lines += ["```", ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--families", nargs="+", default=["xoresnet", "sew_resnet", "ms_resnet"])
    ap.add_argument("--depths", nargs="+", type=int, default=[20, 56, 110, 482])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--dataset", default="fashion_mnist")
    ap.add_argument("--data-dir", default=None, help="dataset directory (default: $XORSNN_DATA)")
    ap.add_argument("--steps", type=int, default=Budget.steps)
    ap.add_argument("--batch-size", type=int, default=Budget.batch_size)
    ap.add_argument("--lr", type=float, default=Budget.lr)
    ap.add_argument("--T", type=int, default=Budget.T)
    ap.add_argument("--train-subset", type=int, default=Budget.train_subset)
    ap.add_argument("--test-subset", type=int, default=Budget.test_subset)
    ap.add_argument("--results", type=Path, default=JSON_PATH)
    ap.add_argument("--markdown", type=Path, default=MD_PATH)
    ap.add_argument("--render-only", action="store_true")
    args = ap.parse_args(argv)

    if not args.render_only:
        budget = Budget(steps=args.steps, batch_size=args.batch_size, lr=args.lr, T=args.T,
                        train_subset=args.train_subset, test_subset=args.test_subset)
        data = load_dataset(args.dataset, args.data_dir or TrainConfig().resolved_data_dir(), T=budget.T)
        for depth in args.depths:
            for family in args.families:
                for seed in args.seeds:
                    row = run_depth(family, depth, seed, budget, data)
                    merge_rows(args.results, {f"{family}/{depth}/seed{seed}": row})
                    print(f"{family}{depth} seed {seed}: grad ratio {row['grad_ratio_init']:.3g} -> "
                          f"{row['grad_ratio_after']:.3g}, loss {row['loss_first']:.3f} -> {row['loss_last']:.3f}, "
                          f"test acc {row['test_acc']:.1f}%  ({row['s_per_step']:.2f} s/step, {row['total_s']:.0f}s)",
                          flush=True)
    rows = load_rows(args.results)
    if rows:
        notes = args.markdown.with_name(args.markdown.stem + "_notes.md")  # hand-written, kept across re-renders
        extra = "\n" + notes.read_text() if notes.exists() else ""
        args.markdown.write_text(render(rows, args.results.name) + extra)
        print(f"wrote {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Collect finished training runs into a markdown table of measurements.

    python benchmarks/record_runs.py RUN_DIR [RUN_DIR ...] --out benchmarks/results/training_runs.md

Each ``RUN_DIR`` is an ``xorsnn train`` output directory; its ``result.json`` (model, dataset,
accuracies, epochs, wall time, device, torch version and the exact command line) and ``config.yaml``
(the full configuration) are read, nothing is re-run. These are measurements, not tests.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml


def row(run: Path) -> str:
    """One table row for the run directory ``run``."""
    res = json.loads((run / "result.json").read_text())
    cfg = yaml.safe_load((run / "config.yaml").read_text()) if (run / "config.yaml").exists() else {}
    subset = f"{res.get('train_subset') or 'all'} / {res.get('test_subset') or 'all'}"
    recipe = (f"{cfg.get('optimizer', '?')} lr {cfg.get('lr', '?')}, batch {cfg.get('batch_size', '?')}, "
              f"{cfg.get('loss', '?')}, aug {cfg.get('augment', '?')}")
    return (f"| {res['dataset']} | {res['model']} | {res.get('T', cfg.get('T', '?'))} | {res['epochs']} | {subset} | "
            f"{recipe} | {100 * res['best_test_acc']:.2f} % | {100 * res['final_test_acc']:.2f} % | "
            f"{res['wall_time_s'] / 60:.1f} min | {res.get('device_name', res['device'])} | "
            f"torch {res.get('torch', '?')} | `{res.get('command', '?')}` |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "training_runs.md")
    ap.add_argument("--title", default="Training runs")
    ap.add_argument("--note", default="", help="a paragraph printed under the title")
    args = ap.parse_args(argv)
    lines = [f"# {args.title}", ""]
    if args.note:
        lines += [args.note, ""]
    lines += ["| dataset | model | T | epochs | train / test images | recipe | best acc | final acc | wall time "
              "| device | versions | command |", "|---|---|---:|---:|---|---|---:|---:|---:|---|---|---|"]
    lines += [row(run) for run in args.runs]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Attention-neuron firing rates at initialisation: dot vs a-XNOR under each ``attn_norm``.

Shows the scale issue of a-XNOR (``docs/transformers.md``, "Scale"): at the paper's scale the (0, 0)
pairs saturate the attention neuron. Forward pass only, random images, fixed ``a``.

    python benchmarks/attention_init_rates.py            # ~1 min on 2 CPU cores

Writes ``benchmarks/results/attention_init_rates.md``.
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

import torch

import xorsnn
from xorsnn.analysis import record_attention


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["spikformer_4_384", "sdt_2_512"])
    p.add_argument("--a", type=float, default=0.25)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--T", type=int, default=4)
    p.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    variants = [("dot", {})] + [
        (f"axnor, {norm}", {"similarity": "axnor", "a": args.a, "a_learnable": False, "attn_norm": norm})
        for norm in ("none", "match_dot", "center")
    ]
    lines = [
        "# Attention-neuron firing rate at initialisation",
        "",
        f"- command: `python {' '.join([sys.argv[0]] + (argv if argv is not None else sys.argv[1:]))}`",
        f"- torch {torch.__version__}, Python {platform.python_version()}; batch {args.batch} of torch.rand images "
        f"(32x32, seed 1), T = {args.T}, model seed 0, fixed a = {args.a}",
        "- rate of SSA's `SN_attn` output / SDSA's KV mask, per layer; Q rate averaged over layers",
        "",
        "| model | similarity, attn_norm | attention-neuron rate per layer | mean Q rate |",
        "|---|---|---|---|",
    ]
    for name in args.models:
        for label, kw in variants:
            torch.manual_seed(0)
            model = xorsnn.create_model(name, T=args.T, **kw)
            torch.manual_seed(1)
            x = torch.rand(args.batch, 3, 32, 32)
            with torch.no_grad(), record_attention(model) as rec:
                model(x)
            rates = " / ".join(f"{r.rates['attn']:.3f}" for r in rec.values())
            q = sum(r.rates["q"] for r in rec.values()) / len(rec)
            lines.append(f"| {name} | {label} | {rates} | {q:.3f} |")
    text = "\n".join(lines) + "\n"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "attention_init_rates.md").write_text(text)
    print(text)
    return text


if __name__ == "__main__":
    main()

"""Bit-packed CPU engine vs PyTorch fp32: latency and throughput of a binary-weight, binary-spike ResNet.

Usage (2 cores, as recorded in benchmarks/results/bench_infer.md)::

    OMP_NUM_THREADS=2 python benchmarks/bench_infer.py --threads 2 --batch 1 64 --T 4 \\
        --arch resnet18 xoresnet18 msc_resnet18

Writes ``benchmarks/results/bench_infer.md`` (machine, versions, command, table). The same numbers are
printed by ``xorsnn bench-infer``. Needs numba (``pip install 'xorsnn[deploy]'``).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from xorsnn.export.bench import bench_infer, format_results, machine_info


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", choices=("resnet18", "xoresnet18", "msc_resnet18", "resnet20"), nargs="+",
                   default=["resnet18"])
    p.add_argument("--batch", type=int, nargs="+", default=[1, 64])
    p.add_argument("--T", type=int, default=4)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_infer.md"))
    args = p.parse_args()
    rows = [row for arch in args.arch for row in bench_infer(args.batch, args.T, args.repeats, args.threads, arch)]
    table = format_results(rows)
    print(table)
    text = (f"# Bit-packed engine vs PyTorch fp32 (CPU)\n\nMachine: {machine_info()}\n\n"
            f"Command: `OMP_NUM_THREADS={args.threads} python benchmarks/bench_infer.py "
            f"{shlex.join(sys.argv[1:])}`\n\n{table}\n")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()

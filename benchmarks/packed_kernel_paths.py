"""Why numba: one binary-spike x ±1 convolution computed three ways (2 threads).

* PyTorch fp32 ``conv2d`` (oneDNN);
* numpy: packed spikes, im2col of the words, ``np.bitwise_count(cols AND w)`` summed (chunked);
* numba: the engine's ``pack_spikes`` + ``popcount_conv`` kernels.

Usage: ``OMP_NUM_THREADS=2 python benchmarks/packed_kernel_paths.py`` -> ``benchmarks/results/packed_kernel_paths.md``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numba
import numpy as np
import torch

from xorsnn.export._packed_kernels import pack_spikes, popcount_conv
from xorsnn.export.bench import machine_info
from xorsnn.export.packed_core import pack_weight as _pack_weight


def numpy_path(x: torch.Tensor, wp: np.ndarray, out_channels: int) -> np.ndarray:
    n, _, h, w = x.shape
    xp, _ = pack_spikes(x.numpy(), 1)
    cw = xp.shape[-1]
    cols = np.stack([xp[:, kh:kh + h, kw:kw + w, :] for kh in range(3) for kw in range(3)], axis=3)
    cols = cols.reshape(n * h * w, 9 * cw)
    wt = wp.reshape(9 * cw, out_channels).T
    out = np.empty((n * h * w, out_channels), np.int64)
    for i in range(0, n * h * w, 4096):
        blk = cols[i:i + 4096]
        ones = np.bitwise_count(blk).sum(-1, dtype=np.int64)[:, None]
        out[i:i + 4096] = 2 * np.bitwise_count(blk[:, None, :] & wt[None]).sum(-1, dtype=np.int64) - ones
    return out.reshape(n, h, w, out_channels).transpose(0, 3, 1, 2)


def main() -> None:
    torch.set_num_threads(2)
    numba.set_num_threads(2)
    rows = []
    for n, c, h in ((16, 64, 32), (16, 256, 8)):
        torch.manual_seed(0)
        x = (torch.rand(n, c, h, h) < 0.2).float()
        w = torch.where(torch.randn(c, c, 3, 3) >= 0, 1.0, -1.0)
        wp = _pack_weight(w)
        ref = torch.nn.functional.conv2d(x, w, padding=1)
        out = np.empty((n, c, h, h), np.float32)
        assert np.array_equal(numpy_path(x, wp, c), ref.numpy().astype(np.int64))
        paths = {
            "torch fp32 conv2d": lambda x=x, w=w: torch.nn.functional.conv2d(x, w, padding=1),
            "numpy bitwise_count (im2col)": lambda x=x, wp=wp, c=c: numpy_path(x, wp, c),
            "numba pack + popcount_conv": lambda x=x, wp=wp, out=out: popcount_conv(
                pack_spikes(x.numpy(), 1)[0], wp, 1, 0, out),
        }
        for name, f in paths.items():
            f()
            t0 = time.perf_counter()
            for _ in range(5):
                f()
            rows.append(f"| {n}x{c}x{h}x{h}, 3x3, {c} out | {name} | {(time.perf_counter() - t0) / 5 * 1e3:.1f} |")
    table = "| input, conv | path | ms |\n|---|---|---:|\n" + "\n".join(rows)
    print(table)
    out_path = Path(__file__).parent / "results" / "packed_kernel_paths.md"
    out_path.write_text(f"# One binary-spike x ±1 conv, three ways\n\nMachine: {machine_info()}\n\n"
                        f"Command: `OMP_NUM_THREADS=2 python benchmarks/packed_kernel_paths.py`\n\n{table}\n")


if __name__ == "__main__":
    main()

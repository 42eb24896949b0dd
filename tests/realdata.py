"""Locate real datasets for tests and load a few real test images (Fashion-MNIST, CIFAR-10).

Where the data comes from, in order: ``$XORSNN_DATA`` (a directory laid out by
``shared/tools/prepare_data.py``, as ``.ci/run`` provides), else ``.ci/data`` laid out once from the
shared data (``../shared`` next to the repository). Tests skip with a reason when neither exists.
Nothing is downloaded.
"""

from __future__ import annotations

import gzip
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
_CACHE = REPO / ".ci" / "data"
FMNIST_IMAGES = Path("FashionMNIST/raw/t10k-images-idx3-ubyte.gz")
CIFAR_TEST = Path("cifar-10-batches-py/test_batch")
_MARKER = {"fashion_mnist": FMNIST_IMAGES, "fashion-mnist": FMNIST_IMAGES, "cifar10": CIFAR_TEST}


def _prepare_script() -> Path | None:
    for root in (REPO.parent / "shared", REPO / "shared", Path("/work/shared")):
        script = root / "tools" / "prepare_data.py"
        if script.is_file() and (root / "data").is_dir():
            return script
    return None


def _locate(need: str) -> tuple[Path | None, str]:
    """A directory holding ``need`` ("fashion_mnist" or "cifar10") in the official layout, or a reason."""
    marker = _MARKER[need]
    env = os.environ.get("XORSNN_DATA")
    if env and (Path(env) / marker).is_file():
        return Path(env), ""
    if (_CACHE / marker).is_file():
        return _CACHE, ""
    script = _prepare_script()
    if script is None:
        return None, (f"real data for {need} not found: set XORSNN_DATA to a directory prepared by "
                      "../shared/tools/prepare_data.py (CI does this)")
    try:
        subprocess.run([sys.executable, str(script), str(_CACHE)], check=True, capture_output=True, timeout=300)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        return None, f"could not lay out the shared data with {script}: {exc}"
    if (_CACHE / marker).is_file():
        return _CACHE, ""
    return None, f"{script} did not produce {marker}"


def data_dir(need: str) -> Path:
    """A directory holding ``need`` ("fashion_mnist" or "cifar10") in the official layout, or skip."""
    root, reason = _locate(need)
    if root is None:
        pytest.skip(reason)
    return root


def find_or_prepare(relative: Path, only: str, tmp_dir: Path | None = None) -> tuple[Path | None, str]:
    """Path of ``relative`` inside a prepared data directory holding ``only``, or ``(None, reason)``."""
    root, reason = _locate(only)
    if root is None:
        return None, reason
    return (root / relative, "") if (root / relative).is_file() else (None, f"{root / relative} missing")


def fashion_mnist(path: Path, n: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The first ``n`` Fashion-MNIST test images, normalised: ``[n, 1, 28, 28]``."""
    with gzip.open(path, "rb") as f:
        raw = f.read(16 + n * 28 * 28)
    img = np.frombuffer(raw[16:], dtype=np.uint8).reshape(n, 1, 28, 28)
    x = torch.from_numpy(img.astype(np.float64) / 255.0)
    return ((x - 0.2860) / 0.3530).to(dtype)


def cifar10(path: Path, n: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``n`` CIFAR-10 test images spread over the classes, normalised: ``[n, 3, 32, 32]``."""
    with open(path, "rb") as f:
        batch = pickle.load(f, encoding="latin1")
    data = np.asarray(batch["data"])
    idx = np.linspace(0, len(data) - 1, n).astype(int)  # the test set is grouped by class
    x = torch.from_numpy(data[idx].reshape(n, 3, 32, 32).astype(np.float64) / 255.0)
    mean = torch.tensor([0.4913, 0.4821, 0.4465], dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor([0.2452, 0.2428, 0.2606], dtype=torch.float64).view(1, 3, 1, 1)
    return ((x - mean) / std).to(dtype)

<<<<<<< HEAD
"""Locate the real datasets for tests: $XORSNN_DATA (set by .ci/run), else lay out ../shared/data once."""

from __future__ import annotations

import os
=======
"""A few real test images (Fashion-MNIST, CIFAR-10) for exactness tests.

Where the data comes from, in order: ``$XORSNN_DATA`` (a directory laid out by
``shared/tools/prepare_data.py``, as the CI provides), else a temporary directory prepared from the
shared data (``/work/shared`` or ``../shared`` next to the repository). Tests skip with a reason
when neither exists. Nothing is downloaded.
"""

from __future__ import annotations

import gzip
import os
import pickle
>>>>>>> feat/binary
import subprocess
import sys
from pathlib import Path

<<<<<<< HEAD
import pytest

REPO = Path(__file__).resolve().parent.parent
_CACHE = REPO / ".ci" / "data"


def data_dir(need: str) -> Path:
    """A directory holding ``need`` ("fashion_mnist" or "cifar10") in the official layout, or skip."""
    marker = {"fashion_mnist": "FashionMNIST/raw/train-images-idx3-ubyte.gz",
              "cifar10": "cifar-10-batches-py/test_batch"}
    env = os.environ.get("XORSNN_DATA")
    if env and (Path(env) / marker[need]).exists():
        return Path(env)
    if (_CACHE / marker[need]).exists():
        return _CACHE
    for shared in (REPO.parent / "shared", REPO / "shared"):
        tool = shared / "tools" / "prepare_data.py"
        if tool.exists():
            try:
                subprocess.run([sys.executable, str(tool), str(_CACHE)], check=True, capture_output=True, timeout=300)
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
                pytest.skip(f"could not lay out the shared data with {tool}: {exc}")
            if (_CACHE / marker[need]).exists():
                return _CACHE
    pytest.skip(f"real data for {need} not found: set XORSNN_DATA to a directory prepared by "
                "../shared/tools/prepare_data.py (CI does this)")
=======
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
FMNIST_IMAGES = Path("FashionMNIST/raw/t10k-images-idx3-ubyte.gz")
CIFAR_TEST = Path("cifar-10-batches-py/test_batch")


def _prepare_script() -> Path | None:
    for root in (Path("/work/shared"), REPO.parent / "shared"):
        script = root / "tools" / "prepare_data.py"
        if script.is_file() and (root / "data").is_dir():
            return script
    return None


def find_or_prepare(relative: Path, only: str, tmp_dir: Path) -> tuple[Path | None, str]:
    """Path of ``relative`` inside a prepared data directory, or ``(None, reason)``."""
    env = os.environ.get("XORSNN_DATA")
    if env and (Path(env) / relative).is_file():
        return Path(env) / relative, ""
    script = _prepare_script()
    if script is None:
        return None, "no real data: set XORSNN_DATA or provide ../shared (prepare_data.py)"
    if only == "cifar10":
        try:
            import PIL  # noqa: F401
        except ImportError:
            return None, "CIFAR-10 preparation needs Pillow (pip install pillow) or XORSNN_DATA with CIFAR-10"
    if not (tmp_dir / relative).is_file():
        proc = subprocess.run([sys.executable, str(script), str(tmp_dir), "--only", only], capture_output=True,
                              text=True, timeout=300)
        if proc.returncode != 0:
            return None, f"prepare_data.py failed: {proc.stderr[-300:]}"
    return tmp_dir / relative, ""


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
>>>>>>> feat/binary

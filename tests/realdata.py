"""Locate the real datasets for tests: $XORSNN_DATA (set by .ci/run), else lay out ../shared/data once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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

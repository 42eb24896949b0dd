"""CIFAR-10 and CIFAR-100 from the official python pickles.

``ROOT/cifar-10-batches-py/{data_batch_1..5, test_batch}`` and ``ROOT/cifar-100-python/{train, test}``.
Files are validated by structure (10,000 / 50,000 rows of 3072 bytes, label range), never by
md5: local copies may be re-encoded (e.g. the shared lossy CIFAR-10 copy).
"""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .base import DataBundle, DatasetError, DatasetInfo, ImageArrays

__all__ = ["CIFAR10_INFO", "CIFAR100_INFO", "load_cifar10", "load_cifar100"]

CIFAR10_INFO = DatasetInfo(
    name="cifar10",
    num_classes=10,
    in_channels=3,
    image_size=(32, 32),
    mean=(0.4914, 0.4822, 0.4465),
    std=(0.2470, 0.2435, 0.2616),
    crop_padding=4,
    hflip=True,
)
CIFAR100_INFO = dataclasses.replace(
    CIFAR10_INFO, name="cifar100", num_classes=100, mean=(0.5071, 0.4865, 0.4409), std=(0.2673, 0.2564, 0.2762)
)


def _how_to_get(name: str) -> str:
    archive = {"cifar10": "cifar-10-python.tar.gz", "cifar100": "cifar-100-python.tar.gz"}[name]
    return (f"Get it with `xorsnn train ... --dataset {name} --download`, or extract {archive} from "
            "https://www.cs.toronto.edu/~kriz/cifar.html into DATA_DIR.")


def _unpickle(path: Path, name: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            obj = pickle.load(f, encoding="latin1")  # noqa: S301 - the official format is a pickle
    except FileNotFoundError:
        raise DatasetError(f"missing file {path}. {_how_to_get(name)}") from None
    except Exception as exc:  # truncated / not a pickle
        raise DatasetError(f"cannot read {path} ({type(exc).__name__}: {exc}); the file is corrupt. "
                           f"{_how_to_get(name)}") from None
    if not isinstance(obj, dict) or "data" not in obj:
        raise DatasetError(f"{path} is not a CIFAR batch (no 'data' entry). {_how_to_get(name)}")
    return {str(k): v for k, v in obj.items()}


def _batch(path: Path, name: str, label_key: str, rows: int, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    d = _unpickle(path, name)
    data = np.asarray(d["data"])
    if label_key not in d:
        raise DatasetError(f"{path} has no '{label_key}' entry. {_how_to_get(name)}")
    labels = np.asarray(d[label_key], dtype=np.int64)
    if data.shape != (rows, 3072) or data.dtype != np.uint8:
        raise DatasetError(f"{path}: data has shape {data.shape} dtype {data.dtype}, expected ({rows}, 3072) uint8. "
                           f"{_how_to_get(name)}")
    if labels.shape != (rows,) or labels.min() < 0 or labels.max() >= num_classes:
        raise DatasetError(f"{path}: labels have shape {labels.shape} and range [{labels.min()}, {labels.max()}], "
                           f"expected ({rows},) in [0, {num_classes - 1}]. {_how_to_get(name)}")
    return data.reshape(rows, 3, 32, 32), labels


def _arrays(parts: list[tuple[np.ndarray, np.ndarray]]) -> ImageArrays:
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return ImageArrays(torch.from_numpy(images), torch.from_numpy(labels))


def load_cifar10(root: str | Path) -> DataBundle:
    """CIFAR-10: uint8 ``[50000, 3, 32, 32]`` / ``[10000, 3, 32, 32]`` and labels 0..9."""
    folder = Path(root) / "cifar-10-batches-py"
    train = [_batch(folder / f"data_batch_{i}", "cifar10", "labels", 10000, 10) for i in range(1, 6)]
    test = [_batch(folder / "test_batch", "cifar10", "labels", 10000, 10)]
    return DataBundle(CIFAR10_INFO, _arrays(train), _arrays(test))


def load_cifar100(root: str | Path) -> DataBundle:
    """CIFAR-100 (fine labels): uint8 ``[50000, 3, 32, 32]`` / ``[10000, 3, 32, 32]`` and labels 0..99."""
    folder = Path(root) / "cifar-100-python"
    train = [_batch(folder / "train", "cifar100", "fine_labels", 50000, 100)]
    test = [_batch(folder / "test", "cifar100", "fine_labels", 10000, 100)]
    return DataBundle(CIFAR100_INFO, _arrays(train), _arrays(test))

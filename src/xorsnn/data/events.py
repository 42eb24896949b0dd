"""Event-camera data: frame integration and CIFAR10-DVS (through the optional ``tonic`` package).

CIFAR10-DVS has no official train/test split. xorsnn uses the split of SEW-ResNet /
SpikingJelly (``split_to_train_test_set(0.9, ..., random_split=False)``): within every class,
samples are ordered by their index in the dataset (tonic's file order), the first 90 % form the
training set and the last 10 % the test set (9,000 / 1,000 samples). The split is deterministic
and does not depend on any random seed.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from .base import DataBundle, DatasetError, DatasetInfo

__all__ = ["events_to_frames", "split_per_class", "CIFAR10DVSFrames", "load_cifar10_dvs", "CIFAR10_DVS_INFO"]

CIFAR10_DVS_INFO = DatasetInfo(
    name="cifar10_dvs",
    num_classes=10,
    in_channels=2,
    image_size=(128, 128),
    mean=(0.0, 0.0),
    std=(1.0, 1.0),
    crop_padding=0,
    hflip=True,
    temporal=True,
    notes="per-class 90/10 split in dataset order (SEW-ResNet / SpikingJelly convention)",
)


def events_to_frames(events: np.ndarray, T: int, sensor_size: tuple[int, int], split_by: str = "number") -> np.ndarray:
    """Integrate events into ``T`` frames ``[T, 2, H, W]`` of per-pixel, per-polarity event counts.

    Args:
        events: structured array with fields ``x``, ``y``, ``p`` (polarity 0/1, or -1/1) and ``t``,
            in time order.
        T: number of frames.
        sensor_size: ``(W, H)`` of the sensor (tonic's convention).
        split_by: ``"number"`` -- every frame gets the same number of events (SpikingJelly's default for
            DVS classification); ``"time"`` -- frames cover equal time windows.
    """
    if T < 1:
        raise ValueError(f"T must be >= 1, got {T}")
    if split_by not in ("number", "time"):
        raise ValueError(f"split_by must be 'number' or 'time', got {split_by!r}")
    w, h = sensor_size
    frames = np.zeros((T, 2, h, w), dtype=np.float32)
    n = len(events)
    if n == 0:
        return frames
    x, y = events["x"].astype(np.int64), events["y"].astype(np.int64)
    p = (events["p"].astype(np.int64) > 0).astype(np.int64)
    if split_by == "number":
        frame_idx = (np.arange(n) * T) // n
    else:
        t = events["t"].astype(np.float64)
        span = max(t[-1] - t[0], 1e-12)
        frame_idx = np.minimum(((t - t[0]) / span * T).astype(np.int64), T - 1)
    np.add.at(frames, (frame_idx, p, y, x), 1.0)
    return frames


def split_per_class(labels: np.ndarray, train_fraction: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic per-class split: the first ``train_fraction`` of each class (in index order) trains."""
    train, test = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        k = int(round(len(idx) * train_fraction))
        train.append(idx[:k])
        test.append(idx[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


class CIFAR10DVSFrames(Dataset):
    """A split of CIFAR10-DVS as frames: ``(frames [T, 2, H, W] float, label)``."""

    def __init__(self, base: Any, indices: np.ndarray, T: int, size: int | None, split_by: str = "number") -> None:
        self.base, self.indices, self.T, self.size, self.split_by = base, indices, T, size, split_by
        self.sensor_size = tuple(getattr(base, "sensor_size", (128, 128, 2))[:2])

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        events, label = self.base[int(self.indices[i])]
        frames = torch.from_numpy(events_to_frames(events, self.T, self.sensor_size, self.split_by))
        if self.size is not None and frames.shape[-1] != self.size:
            frames = torch.nn.functional.interpolate(frames, size=(self.size, self.size), mode="area")
        return frames, int(label)


def load_cifar10_dvs(root: str | Path, T: int, size: int | None = None, download: bool = False,
                     split_by: str = "number") -> DataBundle:
    """CIFAR10-DVS via ``tonic`` with the deterministic per-class 90/10 split (see module doc)."""
    try:
        import tonic
    except ImportError:
        raise DatasetError("CIFAR10-DVS needs the optional 'tonic' package: pip install 'xorsnn[dvs]'") from None
    root = Path(root)
    folder = root / "CIFAR10DVS"
    if not folder.exists() and not download:
        raise DatasetError(f"missing folder {folder}. Get CIFAR10-DVS with --download (tonic fetches it, ~5 GB) "
                           f"or place tonic's CIFAR10DVS folder under {root}")
    base = tonic.datasets.CIFAR10DVS(save_to=str(root))
    labels = np.asarray(getattr(base, "targets", [base[i][1] for i in range(len(base))]))
    train_idx, test_idx = split_per_class(labels, 0.9)
    info = CIFAR10_DVS_INFO if size is None else dataclasses.replace(CIFAR10_DVS_INFO, image_size=(size, size))
    return DataBundle(info, CIFAR10DVSFrames(base, train_idx, T, size, split_by),
                      CIFAR10DVSFrames(base, test_idx, T, size, split_by))

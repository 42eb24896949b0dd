"""In-memory image datasets and the metadata the trainer needs.

Small-image datasets (digits, Fashion-MNIST, CIFAR) are held as one ``uint8`` tensor
``[N, C, H, W]`` plus ``int64`` labels ``[N]``. The batch iterator moves them to the training
device once and does augmentation there (see :mod:`xorsnn.data.augment`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["DatasetInfo", "ImageArrays", "DataBundle", "DatasetError"]


class DatasetError(ValueError):
    """A dataset file is missing or corrupt; the message names the file and how to get it."""


@dataclass(frozen=True)
class DatasetInfo:
    """What a model and the augmentation need to know about a dataset.

    Attributes:
        name: canonical dataset name.
        num_classes: number of labels ``K``.
        in_channels: image channels ``C``.
        image_size: ``(H, W)``.
        mean, std: per-channel normalisation constants (on the [0, 1] scale).
        crop_padding: padding of the random-crop augmentation (0 disables cropping).
        hflip: whether horizontal flips are label-preserving.
        temporal: samples are sequences ``[T, C, H, W]`` (event data) rather than static images.
        notes: provenance notes (splits, re-encodings).
    """

    name: str
    num_classes: int
    in_channels: int
    image_size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_padding: int = 0
    hflip: bool = False
    temporal: bool = False
    notes: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Every field but ``notes``, in field order, tuples as lists (JSON-ready)."""
        values = dataclasses.asdict(self)
        del values["notes"]
        return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


@dataclass
class ImageArrays:
    """A split held in memory: ``images`` uint8 ``[N, C, H, W]``, ``labels`` int64 ``[N]``."""

    images: torch.Tensor
    labels: torch.Tensor
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.images.dim() != 4:
            raise ValueError(f"images must be [N, C, H, W], got shape {tuple(self.images.shape)}")
        if self.labels.dim() != 1 or self.labels.shape[0] != self.images.shape[0]:
            raise ValueError(
                f"labels must be [N] with N = {self.images.shape[0]}, got shape {tuple(self.labels.shape)}"
            )

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, n: int | None, seed: int = 0) -> ImageArrays:
        """A class-balanced-in-expectation random subset of ``n`` samples (all if ``n`` is None or >= N)."""
        if n is None or n >= len(self):
            return self
        if n < 1:
            raise ValueError(f"subset size must be >= 1, got {n}")
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(len(self), generator=g)[:n].sort().values
        return ImageArrays(self.images[idx], self.labels[idx], dict(self.extra))


@dataclass
class DataBundle:
    """Train and test splits of one dataset plus its :class:`DatasetInfo`.

    ``train``/``test`` are :class:`ImageArrays` for in-memory datasets, or any
    ``torch.utils.data.Dataset`` returning ``(image_tensor, label)`` for large ones (ImageFolder,
    event data).
    """

    info: DatasetInfo
    train: Any
    test: Any
